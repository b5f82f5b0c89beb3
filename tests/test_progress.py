"""eval's progress bar says how long is left from the first item on."""

from __future__ import annotations

import io

from rich.console import Console

from agent.cli.eval import _rich_progress, time_left
from agent.workloads.evaluation import ItemResult


def test_time_left_is_the_pace_so_far_times_the_items_left() -> None:
    assert time_left(6.0, 1, 9) == "0:00:54"
    assert time_left(100.0, 4, 200) == "1:23:20"
    assert time_left(0.0, 0, 5) == "-:--:--"
    assert time_left(3.0, 2, 0) == "0:00:00"


def test_the_bar_shows_time_left_after_the_first_item_counting_only_this_run() -> None:
    out = io.StringIO()
    now = [100.0]
    progress = _rich_progress(Console(file=out, width=120, force_terminal=False), "smol", clock=lambda: now[0])
    with progress as bar:
        bar.start(10, 2, 1)  # two items resumed from an earlier run: they took no time here
        now[0] += 6.0
        bar.advance(ItemResult(id="3", config="base", prediction="1", reference="1", correct=True))
        rendered = progress.bar.get_renderable()
        text = "".join(segment.text for segment in Console(width=120).render(rendered))
    assert "3/10" in text
    assert "0:00:42 left" in text  # 6 s per item, 7 items left
