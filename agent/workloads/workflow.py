"""Scripted workflows: a YAML file of agent steps, each prompt filled from variables and earlier answers.

    name: Compound interest
    vars:                 # inputs: a default, or null for one that must be given (--var NAME=VALUE)
      principal: 1000
    defaults:             # options for every step
      max_steps: 4
    steps:
      - id: compute       # the step's answer becomes the variable {{compute}} for later steps
        prompt: "What is {{principal}} * 1.05^10?"
        tools: [calculator]
      - id: report
        prompt: "Write one sentence reporting {{compute}}."
        tools: []
    output: report        # the answer printed at the end (default: the last step's)

Step options: `prompt` (required), `tools` (built-in names; [] for none; by default the
agent's), and any agent option of `agent.core.settings` by name (`max_steps`, `max_tokens`,
`thinking_budget`, `verify`, ...), checked against its type. The whole file is checked before
anything runs, and every problem is reported as `FILE:LINE: where: what`, with a suggestion for
a misspelt key or variable. Each step is one episode on an agent derived from the one given.

This module does not loop, branch or run steps in parallel, and templates do no more than
substitute `{{name}}`: a workflow is a straight pipeline, so that a file reads as what it does.
"""

from __future__ import annotations

import difflib
import os
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path
from typing import Any

from agent.core.records import Result
from agent.core.settings import OPTIONS, check_option

_PLACEHOLDER = re.compile(r"\{\{\s*([^{}]*?)\s*\}\}")
_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
_TOP_KEYS = ("name", "description", "vars", "defaults", "steps", "output")
_STEP_KEYS = ("tools", *(name for name in OPTIONS if name != "examples"))
"""What a step (or `defaults`) may set: its tools, and any agent option by name."""


class WorkflowError(ValueError):
    """A workflow file is invalid; the message starts with `FILE:LINE:`, one line per problem."""


@dataclass(frozen=True)
class Step:
    """One agent task of a workflow."""

    id: str
    """Its name; its answer is the variable `{{id}}` for the steps after it."""
    prompt: str
    """The question, with `{{name}}` placeholders."""
    options: Mapping[str, Any] = field(default_factory=dict)
    """Agent options: tools, max_steps, max_tokens, max_seconds, tool_choice (defaults merged in)."""
    line: int = 0
    """Where the step starts in the file."""


@dataclass(frozen=True)
class Workflow:
    """A checked workflow file."""

    name: str
    """Its title."""
    variables: Mapping[str, str | None]
    """Inputs and their defaults (None: must be given)."""
    steps: tuple[Step, ...]
    """The steps, in order."""
    output: str
    """The step whose answer is the workflow's answer."""
    path: str = ""
    """The file it came from."""

    def bind(self, given: Mapping[str, str]) -> dict[str, str]:
        """The inputs with `given` applied; `WorkflowError` for an unknown or missing one."""
        for name in given:
            if name not in self.variables:
                hint = _suggest(name, self.variables)
                raise WorkflowError(f"{self.path}: --var {name}: the workflow has no such variable{hint}")
        values = {name: given.get(name, default) for name, default in self.variables.items()}
        missing = [name for name, value in values.items() if value is None]
        if missing:
            raise WorkflowError(f"{self.path}: give a value with --var for: {', '.join(missing)}")
        return {name: str(value) for name, value in values.items()}

    def run(
        self,
        agent: Any,
        variables: Mapping[str, str] | None = None,
        *,
        approval: str | None = None,
        ask: Callable[[Any, Step, str, bool], Result] | None = None,
    ) -> WorkflowResult:
        """Run the steps in order, stopping at the first step without an answer.

        Each step runs on an agent derived from `agent` (`Agent.derive`): its options, observers
        and checkpointer, with the step's tools and options laid over them. `agent` may also be a
        model (an `Agent` with the built-in tools is made on it) and `approval` its policy.
        A step whose prompt uses the answer of a tainted step (one that web text could have
        steered, `Result.tainted`) starts tainted itself, so its code waits for approval.
        `ask(agent, step, prompt, tainted)` runs one step (the CLI streams it and asks for
        approvals); by default `agent.run(prompt, tainted=tainted)`.
        """
        from agent.api import Agent
        from tools import default_tools

        base = agent if isinstance(agent, Agent) else Agent(agent)
        if approval is not None:
            base = base.derive(approval=approval)
        values = self.bind(variables or {})
        results: list[tuple[str, Result]] = []
        tainted_steps: set[str] = set()
        for step in self.steps:
            prompt = fill(step.prompt, values)
            tainted = any(name in tainted_steps for name in _PLACEHOLDER.findall(step.prompt))
            options = dict(step.options)
            tools = default_tools(options.pop("tools")) if "tools" in options else None
            step_agent = base.derive(tools, **options)
            result = ask(step_agent, step, prompt, tainted) if ask else step_agent.run(prompt, tainted=tainted)
            results.append((step.id, result))
            if result.tainted:
                tainted_steps.add(step.id)
            if result.answer is None:
                break
            values[step.id] = result.answer
        return WorkflowResult(tuple(results), values.get(self.output) if len(results) == len(self.steps) else None)


@dataclass(frozen=True)
class WorkflowResult:
    """What a workflow run produced."""

    steps: tuple[tuple[str, Result], ...]
    """Each step run, by id, with its result; a step without an answer ends the run."""
    answer: str | None
    """The output step's answer, or None if the run stopped early."""


def fill(template: str, values: Mapping[str, str]) -> str:
    """Substitute `{{name}}` placeholders (all names were checked when the file was loaded)."""
    return _PLACEHOLDER.sub(lambda m: values[m.group(1)], template)


def load_workflow(path: str | os.PathLike[str]) -> Workflow:
    """Read and check a workflow file; `WorkflowError` says where and what is wrong."""
    import yaml

    text = Path(path).read_text(encoding="utf-8")
    where = str(path)
    try:
        root = yaml.compose(text, Loader=yaml.SafeLoader)
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        line = mark.line + 1 if mark else 1
        raise WorkflowError(f"{where}:{line}: not valid YAML: {exc.problem or exc.context}") from None
    return _Checker(where).workflow(root)


class _Checker:
    """Turns the YAML node tree into a `Workflow`, with line numbers for every problem.

    Problems are collected, not raised one by one: a part that is wrong is left out and the
    checking goes on, so one `WorkflowError` lists every problem of the file, in the order found.
    A step left out still defines its id, so later steps are not blamed for using it.
    """

    def __init__(self, path: str) -> None:
        self.path = path
        self.problems: list[str] = []
        self.misspelt: dict[int, set[str]] = {}  # per mapping node: the allowed keys a typo stood for

    def fail(self, node: Any, what: str, problem: str) -> WorkflowError:
        line = node.start_mark.line + 1 if node is not None else 1
        return WorkflowError(f"{self.path}:{line}: {what}: {problem}")

    def note(self, error: WorkflowError) -> None:
        """Keep a problem and go on checking."""
        self.problems.append(str(error))

    def stop(self, error: WorkflowError) -> WorkflowError:
        """A problem past which nothing can be checked, after those found so far."""
        return WorkflowError("\n".join([*self.problems, str(error)]))

    def mapping(self, node: Any, what: str, allowed: tuple[str, ...]) -> dict[str, tuple[Any, Any]]:
        import yaml

        if not isinstance(node, yaml.MappingNode):
            raise self.fail(node, what, "must be a mapping of keys to values")
        out: dict[str, tuple[Any, Any]] = {}
        for key, value in node.value:
            try:
                name = self.scalar(key, what)
            except WorkflowError as exc:
                self.note(exc)
                continue
            if allowed and name not in allowed:
                hint = _suggest(name, allowed)
                if hint:
                    self.misspelt.setdefault(id(node), set()).update(difflib.get_close_matches(name, allowed, n=1))
                self.note(self.fail(key, what, f"unknown key {name!r}{hint}; allowed: {', '.join(allowed)}"))
            elif name in out:
                self.note(self.fail(key, what, f"{name!r} is given twice"))
            else:
                out[name] = (key, value)
        return out

    def scalar(self, node: Any, what: str) -> Any:
        import yaml

        if not isinstance(node, yaml.ScalarNode):
            raise self.fail(node, what, "must be a single value, not a list or mapping")
        return yaml.SafeLoader(self.path).construct_object(node)

    def workflow(self, root: Any) -> Workflow:
        import yaml

        if root is None:
            raise WorkflowError(f"{self.path}:1: the file is empty; a workflow needs steps")
        top = self.mapping(root, "workflow", _TOP_KEYS)
        if "steps" not in top:
            raise self.stop(self.fail(root, "workflow", "needs a 'steps' list"))
        variables: dict[str, str | None] = {}
        for name, (key, value) in (
            self.guarded(lambda: self.mapping(top["vars"][1], "vars", ()), {}).items() if "vars" in top else ()
        ):
            if not isinstance(name, str) or not _NAME.fullmatch(name):
                self.note(self.fail(key, "vars", f"{name!r} is not a variable name (letters, digits, _)"))
                continue
            raw = self.guarded(partial(self.scalar, value, f"vars.{name}"), None)
            variables[name] = None if raw is None else str(raw)
        defaults = self.guarded(lambda: self.options(top["defaults"][1], "defaults"), {}) if "defaults" in top else {}
        steps_node = top["steps"][1]
        if not isinstance(steps_node, yaml.SequenceNode) or not steps_node.value:
            raise self.stop(self.fail(steps_node, "steps", "must be a non-empty list of steps"))
        known = set(variables)
        steps: list[Step] = []
        for index, node in enumerate(steps_node.value, start=1):
            step = self.guarded(partial(self.step, node, index, steps_node, variables, known, defaults), None)
            if step is not None:
                steps.append(step)
        ids = [s.id for s in steps]
        output = steps[-1].id if steps else ""
        if "output" in top:
            output = self.guarded(lambda: self.scalar(top["output"][1], "output"), output)
            if output not in known - set(variables):
                self.note(
                    self.fail(
                        top["output"][1],
                        "output",
                        f"names no step{_suggest(str(output), ids)}; steps: {', '.join(ids)}",
                    )
                )
        name = self.guarded(lambda: self.scalar(top["name"][1], "name"), None) if "name" in top else None
        if self.problems:
            raise WorkflowError("\n".join(self.problems))
        return Workflow(str(name or Path(self.path).stem), variables, tuple(steps), output, self.path)

    def guarded(self, check: Callable[[], Any], instead: Any) -> Any:
        """`check()`, or `instead` when it raises a problem (which is kept)."""
        try:
            return check()
        except WorkflowError as exc:
            self.note(exc)
            return instead

    def step(
        self,
        node: Any,
        index: int,
        steps_node: Any,
        variables: dict[str, str | None],
        known: set[str],
        defaults: dict[str, Any],
    ) -> Step | None:
        """One step, checked; its id joins `known` even when something else in it is wrong."""
        what = f"steps[{index}]"
        before = len(self.problems)
        fields = self.mapping(node, what, ("id", "prompt", *_STEP_KEYS))
        for required in ("id", "prompt"):
            if required not in fields and required not in self.misspelt.get(id(node), ()):
                self.note(self.fail(node, what, f"needs {required!r}"))
        step_id: Any = None
        if "id" in fields:
            step_id = self.guarded(lambda: self.scalar(fields["id"][1], f"{what}.id"), None)
            if not isinstance(step_id, str) or not _NAME.fullmatch(step_id):
                self.note(self.fail(fields["id"][1], f"{what}.id", f"{step_id!r} is not a name (letters, digits, _)"))
                step_id = None
            elif step_id in known:
                clash = "a variable" if step_id in variables else "an earlier step"
                self.note(self.fail(fields["id"][1], f"{what}.id", f"{step_id!r} is already the name of {clash}"))
                step_id = None
        label = step_id or what
        prompt: Any = None
        if "prompt" in fields:
            prompt_node = fields["prompt"][1]
            prompt = self.guarded(lambda: self.scalar(prompt_node, f"{label}.prompt"), None)
            if not isinstance(prompt, str) or not prompt.strip():
                self.note(self.fail(prompt_node, f"{label}.prompt", "must be non-empty text"))
                prompt = None
            later = _step_ids(steps_node.value[index:])
            for match in _PLACEHOLDER.finditer(prompt or ""):
                name = match.group(1)
                if name in known:
                    continue
                if name == step_id:
                    problem = f"{{{{{name}}}}} is this step's own answer; a step can use only earlier ones"
                elif name in later:
                    problem = f"{{{{{name}}}}} is the answer of a later step; a step can use only earlier ones"
                else:
                    problem = f"unknown variable {{{{{name}}}}}{_suggest(name, known)}; known here: "
                    problem += ", ".join(sorted(known)) or "none"
                self.note(self.fail(prompt_node, f"{label}.prompt", problem))
        options = {**defaults, **self.options(node, label, fields)}
        if step_id is not None:
            known.add(step_id)
        if len(self.problems) > before or step_id is None or prompt is None:
            return None
        return Step(step_id, prompt, options, node.start_mark.line + 1)

    def options(self, node: Any, what: str, fields: dict[str, tuple[Any, Any]] | None = None) -> dict[str, Any]:
        """Agent options of a step (or of `defaults`), checked for type and tool names."""
        import yaml

        from tools import BUILTIN

        fields = fields if fields is not None else self.mapping(node, what, _STEP_KEYS)
        options: dict[str, Any] = {}
        for key in _STEP_KEYS:
            if key not in fields:
                continue
            value_node = fields[key][1]
            if key == "tools":
                if (
                    isinstance(value_node, yaml.ScalarNode)
                    and self.guarded(partial(self.scalar, value_node, "tools"), None) == "none"
                ):
                    options[key] = []
                    continue
                if not isinstance(value_node, yaml.SequenceNode):
                    self.note(
                        self.fail(value_node, f"{what}.tools", "must be a list of tool names, such as [calculator]")
                    )
                    continue
                names = [self.guarded(partial(self.scalar, n, f"{what}.tools"), None) for n in value_node.value]
                for name, item in zip(names, value_node.value, strict=True):
                    if name is not None and name not in BUILTIN:
                        hint = _suggest(str(name), BUILTIN)
                        self.note(
                            self.fail(
                                item, f"{what}.tools", f"no built-in tool {name!r}{hint}; tools: {', '.join(BUILTIN)}"
                            )
                        )
                options[key] = names
                continue
            try:
                value = self.scalar(value_node, f"{what}.{key}")
            except WorkflowError as exc:
                self.note(exc)
                continue
            problem = check_option(key, value)
            if problem is not None:
                self.note(self.fail(value_node, f"{what}.{key}", problem))
                continue
            options[key] = value
        return options


def _step_ids(nodes: list[Any]) -> set[str]:
    """The ids written in these step nodes, whatever else is wrong with them."""
    import yaml

    return {
        value.value
        for node in nodes
        if isinstance(node, yaml.MappingNode)
        for key, value in node.value
        if isinstance(key, yaml.ScalarNode) and key.value == "id" and isinstance(value, yaml.ScalarNode)
    }


def _suggest(name: str, choices: Any) -> str:
    close = difflib.get_close_matches(name, [str(c) for c in choices], n=1)
    return f" (did you mean {close[0]!r}?)" if close else ""


def parse_vars(items: list[str]) -> dict[str, str]:
    """`--var NAME=VALUE` options as a dict."""
    values: dict[str, str] = {}
    for item in items:
        name, sep, value = item.partition("=")
        if not sep or not _NAME.fullmatch(name.strip()):
            raise WorkflowError(f"--var {item!r}: write it as NAME=VALUE")
        values[name.strip()] = value
    return values
