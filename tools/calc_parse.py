"""The calculator's allow-list: Python expression source -> sympy objects, never `eval`.

`parse` turns model text into source (`calc_text`), parses it with `ast`, and walks the tree:
numbers, the operators in `OPERATORS`, one comparison, calls of the functions in `FUNCTIONS`,
the constants, plain names (as symbols), tuples and lists. Everything else (attributes,
subscripts, lambdas, comprehensions, strings, statements, ...) is refused with
`ToolError("disallowed syntax: ...")`, named. `sympify` and `parse_expr` are never used: both
run `eval`.

It does not: compute anything beyond what the allowed functions do, or print results.
"""

from __future__ import annotations

import ast
from typing import Any

from tools.calc_functions import CONSTANTS, FUNCTIONS, OPERATORS, RELATIONS, brief
from tools.calc_text import to_source
from tools.registry import ToolError

_REFUSED = {
    ast.Attribute: "attribute access",
    ast.Subscript: "subscript",
    ast.Slice: "slice",
    ast.Lambda: "lambda",
    ast.ListComp: "comprehension",
    ast.SetComp: "comprehension",
    ast.DictComp: "comprehension",
    ast.GeneratorExp: "comprehension",
    ast.JoinedStr: "f-string",
    ast.Dict: "dict literal",
    ast.Set: "set literal",
    ast.IfExp: "conditional expression",
    ast.NamedExpr: "assignment",
    ast.Starred: "starred argument",
    ast.BoolOp: "and/or",
    ast.Await: "await",
    ast.Yield: "yield",
    ast.YieldFrom: "yield",
}
_STATEMENTS = {
    ast.Import: "import",
    ast.ImportFrom: "import",
    ast.Assign: "assignment",
    ast.AugAssign: "assignment",
    ast.AnnAssign: "assignment",
    ast.FunctionDef: "function definition",
    ast.ClassDef: "class definition",
    ast.For: "loop",
    ast.While: "loop",
    ast.With: "with statement",
    ast.Delete: "del statement",
    ast.Global: "global statement",
    ast.Raise: "raise statement",
    ast.Try: "try statement",
    ast.Assert: "assert statement",
    ast.If: "if statement",
    ast.Return: "return statement",
}


_OPERATOR_SIGNS = {
    ast.BitAnd: "&",
    ast.BitOr: "|",
    ast.BitXor: "^",
    ast.LShift: "<<",
    ast.RShift: ">>",
    ast.MatMult: "@",
    ast.Invert: "~",
    ast.Not: "not",
    ast.Is: "is",
    ast.IsNot: "is not",
    ast.In: "in",
    ast.NotIn: "not in",
}


def parse(text: str) -> Any:
    """Normalise, parse and build: model text -> sympy object, through the allow-list only."""
    source = to_source(text)
    if not source:
        raise ToolError("empty expression")
    try:
        tree = ast.parse(source, mode="eval")
    except SyntaxError as exc:
        _refuse_statement(source)
        at = exc.offset or 0
        where = f"near {source[max(0, at - 11) : at + 10]!r}" if 0 < at <= len(source) else "at the end"
        raise ToolError(f"syntax error {where}: {exc.msg} (read as {source!r})") from None
    except ValueError as exc:
        raise ToolError(f"syntax error: {exc}") from None
    return _build(tree.body, source, _bound_names(tree))


_BINDERS = {
    "diff",
    "differentiate",
    "derivative",
    "integrate",
    "integral",
    "limit",
    "lim",
    "sum",
    "summation",
    "product",
    "solve",
}


def _bound_names(tree: ast.AST) -> frozenset[str]:
    """`i` or `e` named as the variable of a sum, integral, limit, ...: there they are not constants."""
    names = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Call) and isinstance(node.func, ast.Name) and node.func.id in _BINDERS:
            for arg in node.args[1:]:
                first = arg.elts[0] if isinstance(arg, ast.Tuple) and arg.elts else arg
                if isinstance(first, ast.Name):
                    names.add(first.id)
    return frozenset(names & {"i", "e"})


def _refuse_statement(source: str) -> None:
    """Name the statement (import, assignment, ...) a text is, if it is one."""
    try:
        statements = ast.parse(source, mode="exec").body
    except (SyntaxError, ValueError):
        return
    for statement in statements:
        for kind, what in _STATEMENTS.items():
            if isinstance(statement, kind):
                raise ToolError(f"disallowed syntax: {what} in {_excerpt(source, statement)!r}")


def _excerpt(source: str, node: ast.AST) -> str:
    text = ast.get_source_segment(source, node) or ""
    return text if len(text) <= 40 else text[:37] + "..."


def _build(node: ast.AST, source: str, bound: frozenset[str]) -> Any:
    import sympy as sp

    if isinstance(node, ast.Constant):
        value, text = node.value, (ast.get_source_segment(source, node) or "").replace("_", "")
        if isinstance(value, bool) or not isinstance(value, (int, float, complex)):
            raise ToolError(f"disallowed syntax: {type(value).__name__} literal {_excerpt(source, node)!r}")
        if isinstance(value, int):
            return sp.Integer(value)
        if isinstance(value, complex):  # `3j`: an imaginary literal, exact like any decimal
            return sp.Rational(text[:-1]) * sp.I
        return sp.Rational(text)  # from the digits written, so 0.1 is exactly 1/10
    if isinstance(node, ast.Name):
        name = node.id
        if name.startswith("_"):
            raise ToolError(f"disallowed syntax: name {name!r}")
        if name in CONSTANTS and name not in bound:
            return CONSTANTS[name]
        if name in FUNCTIONS:
            raise ToolError(f"{name!r} is a function: write {name}(...)")
        return sp.Symbol(name)
    if isinstance(node, ast.BinOp) and type(node.op) in OPERATORS:
        left, right = _build(node.left, source, bound), _build(node.right, source, bound)
        if isinstance(left, (list, tuple)) or isinstance(right, (list, tuple)):
            raise ToolError(
                f"no arithmetic on lists or tuples in {_excerpt(source, node)!r}; write Matrix([[...]]) for a matrix"
            )
        return OPERATORS[type(node.op)](left, right)
    if isinstance(node, ast.UnaryOp) and isinstance(node.op, (ast.USub, ast.UAdd)):
        operand = _build(node.operand, source, bound)
        if isinstance(operand, (list, tuple)):
            raise ToolError(f"no arithmetic on lists or tuples in {_excerpt(source, node)!r}")
        return -operand if isinstance(node.op, ast.USub) else operand
    if isinstance(node, (ast.BinOp, ast.UnaryOp)):
        sign = _OPERATOR_SIGNS.get(type(node.op), type(node.op).__name__)
        raise ToolError(f"disallowed syntax: operator {sign!r} in {_excerpt(source, node)!r}")
    if isinstance(node, ast.Compare):
        if len(node.ops) != 1 or type(node.ops[0]) not in RELATIONS:
            raise ToolError(
                f"disallowed syntax: comparison {_excerpt(source, node)!r} (use one of = == != < <= > >=, unchained)"
            )
        left, right = _build(node.left, source, bound), _build(node.comparators[0], source, bound)
        return RELATIONS[type(node.ops[0])](left, right)
    if isinstance(node, ast.Call):
        if not isinstance(node.func, ast.Name):
            _build(node.func, source, bound)  # names the refused part: attribute, lambda, subscript, ...
            raise ToolError(f"disallowed syntax: call of {_excerpt(source, node.func)!r}")
        name = node.func.id
        if name not in FUNCTIONS:
            known = ", ".join(sorted(set(FUNCTIONS) - {"Abs", "Matrix"}, key=str.lower))
            raise ToolError(f"disallowed syntax: call of unknown function {name!r} (known: {known})")
        if node.keywords:
            raise ToolError(f"disallowed syntax: keyword argument in {_excerpt(source, node)!r}")
        args = [_build(a, source, bound) for a in node.args]
        try:
            return FUNCTIONS[name](*args)
        except TypeError as exc:
            raise ToolError(f"{name}({', '.join(map(brief, args))}) could not be evaluated: {exc}") from None
    if isinstance(node, ast.Tuple):
        return tuple(_build(e, source, bound) for e in node.elts)
    if isinstance(node, ast.List):
        return [_build(e, source, bound) for e in node.elts]
    what = _REFUSED.get(type(node), type(node).__name__)
    raise ToolError(f"disallowed syntax: {what} in {_excerpt(source, node)!r}")
