"""CopyBias names the token that goes on copying the question's arithmetic, and none elsewhere,
and the tokens that would split it."""

from __future__ import annotations

import re

from agent.models.copying import CopyBias

# A tokenizer shaped like SmolLM2's where it matters: ` (`, ` "(` and `))` are tokens, numbers are whole.
PIECES = re.compile(r' ?"\(| ?"| ?\(|\)\)|\d+| ?[^\s\d]|\s')
VOCABULARY: dict[str, int] = {}


def tokenize(text: str) -> list[int]:
    return [VOCABULARY.setdefault(piece, len(VOCABULARY)) for piece in PIECES.findall(text)]


def named(tokens: tuple[list[int], list[int]]) -> set[str]:
    """The favoured tokens' texts."""
    return {text for text, token in VOCABULARY.items() if token in tokens[0]}


def split(tokens: tuple[list[int], list[int]]) -> set[str]:
    return {text for text, token in VOCABULARY.items() if token in tokens[1]}


def test_a_copy_goes_on_where_the_question_does() -> None:
    bias = CopyBias("What is 3 * (14 + (6 * 7))?", tokenize)
    assert named(bias.tokens("3 * (14 +")) == {" ("}  # the nested group the small model dropped
    assert named(bias.tokens("3 * (14 + (6")) == {" *"}
    trailing = CopyBias("What is (81 / 9 - 2) * 11?", tokenize)
    assert named(trailing.tokens("(81 / 9")) == {" -"}  # not the `)` it preferred


def test_where_a_string_opens_its_first_token_starts_a_stretch_of_the_question() -> None:
    bias = CopyBias("What is (900 - 150) / 25, and 7 more?", tokenize)
    assert named(bias.tokens(None)) == {' "(', ' "'}  # ` "(` for the group, ` "` for 7
    assert named(bias.tokens("")) == {"(", "7"}


def test_every_place_a_stretch_occurs_is_continued() -> None:
    bias = CopyBias("Is 12 * 3 more than 12 / 4?", tokenize)
    assert named(bias.tokens("12")) == {" *", " /"}


def test_what_the_model_computes_itself_gets_no_bias() -> None:
    bias = CopyBias("Janet has 16 eggs and eats 3 of them. How many are left?", tokenize)
    assert bias.spans == ["16", "3"]
    assert bias.tokens("16 - 3") == ([], [])  # each number copied whole: nothing of the question follows
    assert bias.tokens("x") == ([], [])  # nothing of the question ends the string
    assert not CopyBias("Who wrote Hamlet?", tokenize)  # no arithmetic: the sampler skips it


def test_a_token_that_copies_only_the_start_of_the_favoured_one_is_a_split() -> None:
    bias = CopyBias("What is ((17 - 9) * (23 + 4)) / 6?", tokenize)
    after = bias.tokens("((17 - 9) * (23 + 4")
    assert named(after) == {"))"} and split(after) == {")"}  # `)` then ` /` lost a group here
    assert named(bias.tokens("")) == {"("} and split(bias.tokens("")) == set()  # `((` is no token here
    assert split(bias.tokens("((")) == {"1"}  # numbers are whole in this tokenizer
