"""The allow-list check: which Python a contract may contain (spec: contracts.md, "The language").

Every node type, name and attribute is checked against an allow-list; anything else is a
`ContractCompileError` with the line and a reason a contract author understands. The check is
iterative for nesting depth (so a deeply nested source is refused deterministically, before
anything recursive runs) and then a recursive walk of a tree known to be shallow.
"""

from __future__ import annotations

import ast
from typing import Final

from taihang.execution.contracts.errors import ContractCompileError

NESTING_MAX: Final = 64  # AST depth; well inside CPython's own recursion limits
INT_LITERAL_BITS_MAX: Final = 512
DECORATORS: Final = frozenset({"public", "view"})

# Names a contract may never use, even as a local: they are missing from the sandbox anyway,
# but refusing them at deploy gives a clear reason instead of a run-time NameError.
FORBIDDEN_NAMES: Final = frozenset(
    {
        "id", "hash", "repr", "getattr", "setattr", "delattr", "hasattr", "type", "open",
        "print", "eval", "exec", "compile", "globals", "locals", "vars", "dir", "set",
        "frozenset", "float", "complex", "pow", "input", "format", "object", "super",
        "iter", "next", "map", "filter", "breakpoint", "memoryview", "bytearray", "callable",
        "classmethod", "staticmethod", "property", "issubclass", "help", "exit", "quit",
    }
)  # fmt: skip

_REJECTED: Final[dict[type[ast.AST], str]] = {
    ast.Import: "import is not allowed",
    ast.ImportFrom: "import is not allowed",
    ast.ClassDef: "class definitions are not allowed",
    ast.Lambda: "lambda is not allowed; use a def",
    ast.Try: "try/except is not allowed; errors revert the transaction",
    ast.TryStar: "try/except* is not allowed",
    ast.Raise: "raise is not allowed; use revert(message)",
    ast.Assert: "assert is not allowed; use require(condition, message)",
    ast.With: "with is not allowed",
    ast.AsyncWith: "async with is not allowed",
    ast.Global: "global is not allowed; state lives in ctx.storage",
    ast.Nonlocal: "nonlocal is not allowed",
    ast.Yield: "yield (generators) is not allowed",
    ast.YieldFrom: "yield from (generators) is not allowed",
    ast.AsyncFunctionDef: "async functions are not allowed",
    ast.Await: "await is not allowed",
    ast.AsyncFor: "async for is not allowed",
    ast.Set: "set literals are not allowed (their order depends on the hash seed); use a dict",
    ast.SetComp: "set comprehensions are not allowed; use a dict",
    ast.GeneratorExp: "generator expressions are not allowed; use a list comprehension",
    ast.JoinedStr: "f-strings are not allowed; use + and str()",
    ast.FormattedValue: "f-strings are not allowed; use + and str()",
    ast.Starred: "starred expressions (*x) are not allowed",
    ast.NamedExpr: "assignment expressions (:=) are not allowed",
    ast.Match: "match statements are not allowed",
    ast.Div: "true division / is not allowed (no floats); use //",
    ast.MatMult: "the @ operator is not allowed",
}

_ALLOWED: Final[frozenset[type[ast.AST]]] = frozenset(
    {
        ast.Module, ast.FunctionDef, ast.arguments, ast.arg, ast.Return, ast.Assign,
        ast.AugAssign, ast.AnnAssign, ast.For, ast.While, ast.If, ast.Expr, ast.Pass,
        ast.Break, ast.Continue, ast.Delete, ast.BoolOp, ast.BinOp, ast.UnaryOp, ast.IfExp,
        ast.Dict, ast.List, ast.Tuple, ast.ListComp, ast.DictComp, ast.comprehension,
        ast.Compare, ast.Call, ast.keyword, ast.Constant, ast.Attribute, ast.Subscript,
        ast.Slice, ast.Name, ast.Load, ast.Store, ast.Del,
        ast.And, ast.Or, ast.Not, ast.USub, ast.UAdd, ast.Invert,
        ast.Add, ast.Sub, ast.Mult, ast.FloorDiv, ast.Mod, ast.Pow, ast.LShift, ast.RShift,
        ast.BitAnd, ast.BitOr, ast.BitXor,
        ast.Eq, ast.NotEq, ast.Lt, ast.LtE, ast.Gt, ast.GtE, ast.In, ast.NotIn, ast.Is,
        ast.IsNot,
    }
)  # fmt: skip


def reject(node: ast.AST | None, reason: str) -> ContractCompileError:
    if node is None:
        return ContractCompileError(1, reason)
    return ContractCompileError(
        getattr(node, "lineno", 1), reason, getattr(node, "col_offset", None)
    )


def validate_nesting(tree: ast.AST) -> None:
    """Refuse trees deeper than `NESTING_MAX`, without recursion."""
    stack: list[tuple[ast.AST, int, int, int | None]] = [(tree, 0, 1, None)]
    while stack:
        node, depth, line, column = stack.pop()
        line = getattr(node, "lineno", line)
        column = getattr(node, "col_offset", column)
        if depth > NESTING_MAX:
            raise ContractCompileError(
                line, f"code nested deeper than {NESTING_MAX} levels", column
            )
        stack.extend((child, depth + 1, line, column) for child in ast.iter_child_nodes(node))


def is_immutable_literal(node: ast.expr) -> bool:
    """A constant that cannot carry state between calls: int/str/bytes/bool/None, tuples."""
    if isinstance(node, ast.Constant):
        return node.value is None or isinstance(node.value, bool | int | str | bytes)
    if isinstance(node, ast.UnaryOp) and isinstance(node.op, ast.USub | ast.UAdd):
        return isinstance(node.operand, ast.Constant) and type(node.operand.value) is int
    if isinstance(node, ast.Tuple):
        return all(is_immutable_literal(item) for item in node.elts)
    return False


def validate_module(tree: ast.Module) -> None:
    """Check the whole module; raises `ContractCompileError` at the first problem."""
    validate_nesting(tree)
    for index, statement in enumerate(tree.body):
        if isinstance(statement, ast.FunctionDef):
            _validate_def(statement)
        elif _is_docstring(statement) and index == 0:
            continue
        elif isinstance(statement, ast.Assign | ast.AnnAssign):
            _validate_constant(statement)
        elif type(statement) in _REJECTED:
            raise reject(statement, _REJECTED[type(statement)])
        else:
            raise reject(
                statement, "module top level may only hold defs and immutable literal constants"
            )
    _Checker().visit(tree)


def _is_docstring(node: ast.stmt) -> bool:
    return isinstance(node, ast.Expr) and isinstance(node.value, ast.Constant)


def _validate_constant(node: ast.Assign | ast.AnnAssign) -> None:
    targets = node.targets if isinstance(node, ast.Assign) else [node.target]
    if len(targets) != 1 or not isinstance(targets[0], ast.Name):
        raise reject(node, "a module constant must be assigned to a single name")
    if node.value is None or not is_immutable_literal(node.value):
        raise reject(
            node,
            "module constants must be immutable literals (int, str, bytes, bool, None, tuple);"
            " mutable module state would leak between transactions",
        )


def _validate_def(node: ast.FunctionDef) -> None:
    for decorator in node.decorator_list:
        if not (isinstance(decorator, ast.Name) and decorator.id in DECORATORS):
            raise reject(decorator, "the only decorators allowed are @public and @view")
    if len(node.decorator_list) > 1:
        raise reject(node, "a function takes one decorator, @public or @view")
    args = node.args
    if args.vararg is not None:
        raise reject(node, "*args parameters are not allowed")
    if args.kwarg is not None:
        raise reject(node, "**kwargs parameters are not allowed")
    if args.kwonlyargs:
        raise reject(node, "keyword-only parameters are not allowed")
    for default in args.defaults:
        if not is_immutable_literal(default):
            raise reject(default, "default arguments must be immutable literals")
    if node.decorator_list and not (args.posonlyargs or args.args):
        raise reject(node, "a @public or @view function takes ctx as its first parameter")


class _Checker(ast.NodeVisitor):
    """The per-node allow-list; `visit` raises at the first node that is not allowed."""

    def __init__(self) -> None:
        self.function_depth = 0
        # Position of the innermost node that has one (operators have none).
        self.line = 1
        self.column: int | None = None

    def visit(self, node: ast.AST) -> None:
        line, column = self.line, self.column
        self.line = getattr(node, "lineno", line)
        self.column = getattr(node, "col_offset", column)
        super().visit(node)
        self.line, self.column = line, column

    def generic_visit(self, node: ast.AST) -> None:
        kind = type(node)
        if kind in _REJECTED:
            raise ContractCompileError(self.line, _REJECTED[kind], self.column)
        if kind not in _ALLOWED:
            raise ContractCompileError(
                self.line, f"{kind.__name__} is not allowed in a contract", self.column
            )
        super().generic_visit(node)

    def visit_FunctionDef(self, node: ast.FunctionDef) -> None:
        if self.function_depth > 0:
            raise reject(node, "nested functions are not allowed; define them at top level")
        _check_name(node, node.name)
        args = node.args
        for arg in [*args.posonlyargs, *args.args]:
            _check_name(arg, arg.arg)
        self.function_depth += 1
        for default in args.defaults:
            self.visit(default)
        for statement in node.body:  # annotations are dropped, never run: not checked
            self.visit(statement)
        self.function_depth -= 1

    def visit_Name(self, node: ast.Name) -> None:
        _check_name(node, node.id)

    def visit_Attribute(self, node: ast.Attribute) -> None:
        if node.attr.startswith("_"):
            raise reject(node, f"attribute {node.attr!r}: names starting with _ are not allowed")
        if not isinstance(node.ctx, ast.Load):
            raise reject(node, "attribute assignment is not allowed; use a dict or ctx.storage")
        self.visit(node.value)

    def visit_Constant(self, node: ast.Constant) -> None:
        value = node.value
        if value is None or isinstance(value, bool | str | bytes):
            return
        if type(value) is int:
            if value.bit_length() > INT_LITERAL_BITS_MAX:
                raise reject(node, f"integer literal wider than {INT_LITERAL_BITS_MAX} bits")
            return
        if isinstance(value, float | complex):
            raise reject(node, "float and complex numbers are not allowed; use fixed-point ints")
        raise reject(node, f"a constant of type {type(value).__name__} is not allowed")

    def visit_Compare(self, node: ast.Compare) -> None:
        if len(node.ops) != 1:
            raise reject(node, "chained comparisons are not allowed; write a < b and b < c")
        if isinstance(node.ops[0], ast.Is | ast.IsNot):
            right = node.comparators[0]
            if not (isinstance(right, ast.Constant) and right.value in (None, True, False)):
                raise reject(node, "'is' may only compare with None, True or False; use ==")
        self.generic_visit(node)

    def visit_Call(self, node: ast.Call) -> None:
        if not isinstance(node.func, ast.Name | ast.Attribute):
            raise reject(node, "only named functions and methods may be called")
        for keyword in node.keywords:
            if keyword.arg is None:
                raise reject(keyword, "**kwargs arguments are not allowed")
            _check_name(keyword, keyword.arg)
        self.generic_visit(node)

    def visit_Assign(self, node: ast.Assign) -> None:
        subscripts = [t for t in node.targets if isinstance(t, ast.Subscript)]
        if subscripts and len(node.targets) > 1:
            raise reject(node, "assign to an item in a statement of its own")
        for target in node.targets:
            _check_target(target, allow_subscript=True)
        self.generic_visit(node)

    def visit_AnnAssign(self, node: ast.AnnAssign) -> None:
        if not isinstance(node.target, ast.Name) or node.value is None:
            raise reject(node, "an annotated assignment must give a value to a plain name")
        _check_name(node.target, node.target.id)
        self.visit(node.value)  # the annotation is dropped, never run

    def visit_AugAssign(self, node: ast.AugAssign) -> None:
        _check_target(node.target, allow_subscript=True, allow_tuple=False)
        self.generic_visit(node)

    def visit_For(self, node: ast.For) -> None:
        _check_target(node.target, allow_subscript=False)
        self.generic_visit(node)

    def visit_comprehension(self, node: ast.comprehension) -> None:
        if node.is_async:
            raise reject(node.target, "async comprehensions are not allowed")
        _check_target(node.target, allow_subscript=False)
        self.generic_visit(node)

    def visit_Dict(self, node: ast.Dict) -> None:
        if any(key is None for key in node.keys):
            raise reject(node, "dict unpacking (**d) is not allowed")
        self.generic_visit(node)

    def visit_Delete(self, node: ast.Delete) -> None:
        for target in node.targets:
            if not isinstance(target, ast.Subscript):
                raise reject(node, "del may only remove an item: del d[key]")
            _check_target(target, allow_subscript=True)
        self.generic_visit(node)


def _check_name(node: ast.AST, name: str) -> None:
    if name.startswith("_"):
        raise reject(node, f"name {name!r}: names starting with _ are not allowed")
    if name in FORBIDDEN_NAMES:
        raise reject(node, f"name {name!r} is not available in contracts")


def _check_target(target: ast.expr, *, allow_subscript: bool, allow_tuple: bool = True) -> None:
    if isinstance(target, ast.Name):
        return
    if isinstance(target, ast.Subscript) and allow_subscript:
        if isinstance(target.slice, ast.Slice):
            raise reject(target, "slice assignment is not allowed")
        return
    if isinstance(target, ast.Tuple | ast.List) and allow_tuple:
        for item in target.elts:
            if not isinstance(item, ast.Name):
                raise reject(item, "only plain names may be unpacked into")
        return
    if isinstance(target, ast.Attribute):
        raise reject(target, "attribute assignment is not allowed; use a dict or ctx.storage")
    raise reject(target, "this assignment target is not allowed")
