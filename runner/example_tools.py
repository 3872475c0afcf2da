"""Example tool functions, named by ``_target_`` in the packaged tools/ presets (calculator).

A tool is any importable function: the runner calls it with the model's arguments as keyword
arguments and sends back what it returns (a string as is, anything else as JSON). An
exception it raises goes back to the model as ``error: <ExceptionType>: <message>``.
"""

from __future__ import annotations

import ast
import operator
from collections.abc import Callable

_MAX_LENGTH = 1000  # characters: keeps the parser's recursion and the work small
_MAX_BITS = 10_000  # largest whole-number result a power may have
_BINARY: dict[type[ast.operator], Callable[[float, float], float]] = {
    ast.Add: operator.add,
    ast.Sub: operator.sub,
    ast.Mult: operator.mul,
    ast.Div: operator.truediv,
    ast.Pow: operator.pow,
}
_UNARY: dict[type[ast.unaryop], Callable[[float], float]] = {
    ast.UAdd: operator.pos,
    ast.USub: operator.neg,
}


def calculate(expression: str) -> int | float:
    """The value of an arithmetic expression: numbers, + - * / ** and parentheses only.

    Raises ``ValueError`` for anything else (names, calls, other operators), and
    ``ZeroDivisionError`` for a division by zero.
    """
    if not isinstance(expression, str) or not expression.strip():
        raise ValueError("expression must be a non-empty string, e.g. '12 * (3 + 4)'")
    if len(expression) > _MAX_LENGTH:
        raise ValueError(f"expression is longer than {_MAX_LENGTH} characters")
    try:
        tree = ast.parse(expression.strip(), mode="eval")
    except SyntaxError as exc:
        raise ValueError(f"not an arithmetic expression: {exc.msg}") from None
    return _evaluate(tree.body)


def _evaluate(node: ast.expr) -> int | float:
    if isinstance(node, ast.Constant) and type(node.value) in (int, float):
        return node.value  # type: ignore[return-value]
    if isinstance(node, ast.BinOp) and type(node.op) in _BINARY:
        left, right = _evaluate(node.left), _evaluate(node.right)
        if isinstance(node.op, ast.Pow):
            _check_power(left, right)
        return _BINARY[type(node.op)](left, right)
    if isinstance(node, ast.UnaryOp) and type(node.op) in _UNARY:
        return _UNARY[type(node.op)](_evaluate(node.operand))
    raise ValueError(
        f"{ast.unparse(node)!r} is not allowed: use numbers, + - * / ** and parentheses"
    )


def _check_power(base: float, exponent: float) -> None:
    """A whole-number power is computed exactly, so its size is capped before it is."""
    exact = isinstance(base, int) and isinstance(exponent, int)
    if exact and exponent > 0 and max(abs(int(base)).bit_length() - 1, 0) * exponent > _MAX_BITS:
        raise ValueError(f"{base} ** {exponent} is too large a number")
