"""Saved prompt states on disk: what is stored comes back, anything else is refused, the directory stays bounded."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from agent.models.prompt_cache import PromptCache

KEY = "model.gguf|123|456|0.3|kv1"


def state(n: int, fill: int = 7) -> memoryview:
    return memoryview(bytes([fill]) * n)


def test_a_saved_state_comes_back_for_exactly_its_tokens(tmp_path: Path) -> None:
    cache = PromptCache(tmp_path)
    cache.save(KEY, [1, 2, 3], memoryview(b"kv-bytes"))
    assert bytes(cache.load(KEY, [1, 2, 3]) or b"") == b"kv-bytes"
    assert cache.load(KEY, [1, 2]) is None
    assert cache.load(KEY, [1, 2, 3, 4]) is None
    assert cache.load("other.gguf|123|456|0.3|kv1", [1, 2, 3]) is None


@pytest.mark.parametrize("where", ["payload", "tokens", "truncated", "magic"])
def test_a_damaged_file_is_refused_with_a_warning_and_removed(tmp_path: Path, where: str) -> None:
    cache = PromptCache(tmp_path)
    tokens = list(range(40))
    cache.save(KEY, tokens, state(1000))
    path = cache.path(KEY, tokens)
    blob = bytearray(path.read_bytes())
    if where == "payload":
        blob[-500] ^= 0xFF
    elif where == "tokens":
        at = blob.index((5).to_bytes(4, "little"))
        blob[at] = 6
    elif where == "truncated":
        del blob[-10:]
    else:
        blob[0] ^= 0xFF
    path.write_bytes(bytes(blob))
    with pytest.warns(UserWarning, match="corrupt or not for this prompt"):
        assert cache.load(KEY, tokens) is None
    assert not path.exists()


def test_a_file_for_other_tokens_under_this_name_is_refused(tmp_path: Path) -> None:
    cache = PromptCache(tmp_path)
    cache.save(KEY, [9, 9, 9], memoryview(b"state of nines"))
    os.replace(cache.path(KEY, [9, 9, 9]), cache.path(KEY, [1, 2, 3]))
    with pytest.warns(UserWarning):
        assert cache.load(KEY, [1, 2, 3]) is None


def test_the_least_recently_used_files_go_first(tmp_path: Path) -> None:
    cache = PromptCache(tmp_path, max_bytes=3500)  # three states fit, not four
    for k in range(3):
        cache.save(KEY, [k], state(1000))
        path = cache.path(KEY, [k])
        os.utime(path, ns=(10**18 + k, 10**18 + k))  # distinct ages, whatever the clock's resolution
    cache.load(KEY, [0])  # used again: now the newest
    cache.save(KEY, [3], state(1000))
    left = sorted(p.name for p in tmp_path.iterdir())
    assert cache.path(KEY, [0]).name in left and cache.path(KEY, [3]).name in left
    assert cache.path(KEY, [1]).name not in left  # the oldest unused one
    assert len(left) == 3 and sum(p.stat().st_size for p in tmp_path.iterdir()) <= 3500


def test_a_state_larger_than_the_bound_is_not_stored(tmp_path: Path) -> None:
    cache = PromptCache(tmp_path, max_bytes=100)
    cache.save(KEY, [1], state(1000))
    assert list(tmp_path.iterdir()) == []


def test_an_unwritable_directory_only_warns(tmp_path: Path) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("not a directory")
    cache = PromptCache(blocker / "kv")
    with pytest.warns(UserWarning, match="could not save"):
        cache.save(KEY, [1], state(10))
    assert cache.load(KEY, [1]) is None
