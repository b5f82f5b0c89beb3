"""From finished episodes to their `Result`: `to_result` for one, `vote` for several (self-consistency).

Answers are extracted and compared with `agent.core.grading`. This module reads graph states; it
runs nothing.
"""

from __future__ import annotations

from dataclasses import replace

from agent.core.graph import State, usage_of
from agent.core.records import Result, Verification, Votes


def to_result(state: State) -> Result:
    """The `Result` of a finished episode's state."""
    from agent.core.grading import extract_answer, is_equivalent, normalize

    answer = state.get("answer")
    calls = tuple(state.get("tool_calls", ()))
    first = state.get("first_answer")
    verification = None
    if first is not None:
        confirmed = answer is not None and is_equivalent(extract_answer(answer), extract_answer(first))
        verification = Verification(first, len(calls) > state.get("verify_from", 0), confirmed)
    return Result(
        answer=answer,
        reasoning=state.get("reasoning", ""),
        tool_calls=calls,
        usage=usage_of(state),
        stop_reason=state.get("stop_reason", "answer"),
        normalized=None if answer is None else normalize(extract_answer(answer)),
        verification=verification,
        tainted=bool(state.get("untrusted")),
    )


def vote(results: list[Result]) -> tuple[int, Result]:
    """The majority answer of independent episodes, with its vote share, and which episode it is.

    Answers are grouped by mathematical equivalence; a tie goes to the answer seen first. The
    winning group's first episode is returned (by index, and as a result carrying the vote), so
    that a conversation goes on from the transcript whose answer the user was shown.
    """
    from agent.core.grading import is_equivalent

    groups: list[list[int]] = []
    for index, result in enumerate(results):
        if result.normalized is None:
            continue
        for group in groups:
            if is_equivalent(result.normalized, results[group[0]].normalized or ""):
                group.append(index)
                break
        else:
            groups.append([index])
    winner = max(groups, key=len)[0] if groups else 0
    share = max(map(len, groups), default=0) / len(results)
    tainted = any(r.tainted for r in results)  # web text in any episode could have swayed the vote
    return winner, replace(results[winner], votes=Votes(tuple(r.normalized for r in results), share), tainted=tainted)
