"""The metering rewrite: routes every priced operation through a runtime helper.

Runs on a tree that `checker` accepted. Helper names start with `_t_`, which contract code can
never spell (names starting with `_` are refused), so a contract cannot call, shadow or read
them. The rewrite, with `H` for a helper:

- function body      -> `H.enter()` then the body inside `try: ... finally: H.leave()`
                        (gas `CALL`, call depth);
- `for x in it`      -> `for x in _t_each(it)` (gas `LOOP` per item drawn);
- `while c:`         -> `_t_tick()` first in the body (gas `LOOP` per iteration);
- comprehension      -> each `for` draws from `_t_item(it)` (gas `ITEM` per item), dict
                        comprehension keys go through `_t_key`, and the result through
                        `_t_comp` (the new object's gas and the sequence limit);
- `a OP b`           -> `_t_<Op>(a, b)`: sizes checked and gas charged before C code runs;
- `a CMP b`          -> `_t_<Cmp>(a, b)` (except `is`, which only meets None/True/False);
- `a[i]`, `a[i:j]`   -> `_t_getitem(a, i)`, `_t_slice(a, i, j, k)`;
- `a[i] = v`         -> `_t_setitem(a, i, v)`; `a[i] OP= v` -> `_t_augitem(a, i, _t_<Op>, v)`;
                        `del a[i]` -> `_t_delitem(a, i)`;
- `x.name`           -> `_t_attr(x, "name")`; `x.name(...)` -> `_t_method(x, "name", ...)`;
- `[..]`, `(..)`     -> `_t_built(n, [..])`; `{k: v}` -> `_t_dict([k..], [v..])`.
"""

from __future__ import annotations

import ast
from collections.abc import Iterable
from typing import Final

from taihang.execution.contracts import gas

PREFIX: Final = "_t_"


def static_cost(nodes: Iterable[ast.AST]) -> int:
    """Gas for the unpriced syntax that one pass over `nodes` may run (`gas.for_nodes`).

    Counts every expression and statement node, both branches of an `if` included, except
    what runs per iteration of a nested loop or per item of a comprehension: those are
    charged at each iteration and item. Call on the source tree, before the rewrite.
    """
    count = 0
    stack = list(nodes)
    while stack:
        node = stack.pop()
        if isinstance(node, ast.expr | ast.stmt):
            count += 1
        if isinstance(node, ast.For):
            stack.extend([node.iter, *node.orelse])
        elif isinstance(node, ast.While):
            stack.extend([node.test, *node.orelse])
        elif isinstance(node, ast.ListComp | ast.DictComp):
            stack.append(node.generators[0].iter)
        else:
            stack.extend(ast.iter_child_nodes(node))
    return gas.for_nodes(count)


def _item_costs(generators: list[ast.comprehension], results: list[ast.expr]) -> list[int]:
    """Per-item gas of each `for` of a comprehension: its target and ifs, and for the
    innermost one the element (and key) built per item."""
    costs = []
    for index, generator in enumerate(generators):
        nodes: list[ast.AST] = [generator.target, *generator.ifs]
        if index > 0:
            nodes.append(generator.iter)
        if index == len(generators) - 1:
            nodes.extend(results)
        costs.append(gas.ITEM + static_cost(nodes))
    return costs


def helper(name: str) -> ast.Name:
    return ast.Name(id=PREFIX + name, ctx=ast.Load())


def call_helper(name: str, *args: ast.expr) -> ast.Call:
    return ast.Call(func=helper(name), args=list(args), keywords=[])


def _statement(call: ast.expr) -> ast.Expr:
    return ast.Expr(value=call)


class MeteringRewriter(ast.NodeTransformer):
    """Rewrites a checked module in place; see the module docstring for the mapping."""

    def visit_FunctionDef(self, node: ast.FunctionDef) -> ast.FunctionDef:
        cost = gas.CALL + static_cost(node.body)
        node.returns = None
        node.decorator_list = []  # @public/@view are recorded by the compiler, not run
        for arg in [*node.args.posonlyargs, *node.args.args]:
            arg.annotation = None
        body: list[ast.stmt] = []
        for statement in node.body:
            rewritten = self.visit(statement)
            body.extend(rewritten if isinstance(rewritten, list) else [rewritten])
        guarded = ast.Try(
            body=body,
            handlers=[],
            orelse=[],
            finalbody=[_statement(call_helper("leave"))],
        )
        node.body = [_statement(call_helper("enter", ast.Constant(value=cost))), guarded]
        return node

    def visit_AnnAssign(self, node: ast.AnnAssign) -> ast.Assign:
        assert node.value is not None  # checker: annotated assignments carry a value
        return ast.Assign(targets=[node.target], value=self.visit(node.value))

    def visit_Assign(self, node: ast.Assign) -> ast.stmt:
        value = self.visit(node.value)
        target = node.targets[0]
        if isinstance(target, ast.Subscript):
            return _statement(
                call_helper("setitem", self.visit(target.value), self.visit(target.slice), value)
            )
        node.value = value
        return node

    def visit_AugAssign(self, node: ast.AugAssign) -> ast.stmt:
        op = helper(type(node.op).__name__)
        value = self.visit(node.value)
        target = node.target
        if isinstance(target, ast.Subscript):
            return _statement(
                call_helper(
                    "augitem", self.visit(target.value), self.visit(target.slice), op, value
                )
            )
        assert isinstance(target, ast.Name)
        load = ast.Name(id=target.id, ctx=ast.Load())
        return ast.Assign(
            targets=[target], value=ast.Call(func=op, args=[load, value], keywords=[])
        )

    def visit_Delete(self, node: ast.Delete) -> list[ast.stmt]:
        statements: list[ast.stmt] = []
        for target in node.targets:
            assert isinstance(target, ast.Subscript)
            call = call_helper("delitem", self.visit(target.value), self.visit(target.slice))
            statements.append(_statement(call))
        return statements

    def visit_For(self, node: ast.For) -> ast.For:
        cost = gas.LOOP + static_cost([node.target, *node.body])
        self.generic_visit(node)
        node.iter = call_helper("each", node.iter, ast.Constant(value=cost))
        return node

    def visit_While(self, node: ast.While) -> ast.While:
        cost = gas.LOOP + static_cost([node.test, *node.body])
        self.generic_visit(node)
        node.body.insert(0, _statement(call_helper("tick", ast.Constant(value=cost))))
        return node

    def _meter_items(self, generators: list[ast.comprehension], costs: list[int]) -> None:
        for generator, cost in zip(generators, costs, strict=True):
            generator.iter = call_helper("item", generator.iter, ast.Constant(value=cost))

    def visit_DictComp(self, node: ast.DictComp) -> ast.Call:
        costs = _item_costs(node.generators, [node.key, node.value])
        self.generic_visit(node)
        self._meter_items(node.generators, costs)
        node.key = call_helper("key", node.key)
        return call_helper("comp", node)

    def visit_ListComp(self, node: ast.ListComp) -> ast.Call:
        costs = _item_costs(node.generators, [node.elt])
        self.generic_visit(node)
        self._meter_items(node.generators, costs)
        return call_helper("comp", node)

    def visit_BinOp(self, node: ast.BinOp) -> ast.Call:
        return call_helper(type(node.op).__name__, self.visit(node.left), self.visit(node.right))

    def visit_Compare(self, node: ast.Compare) -> ast.expr:
        op = node.ops[0]
        if isinstance(op, ast.Is | ast.IsNot):
            # Identity with None/True/False is cheap and exact, but both sides are ordinary
            # expressions: they must be metered and checked like any other.
            node.left = self.visit(node.left)
            node.comparators = [self.visit(c) for c in node.comparators]
            return node
        return call_helper(
            type(op).__name__, self.visit(node.left), self.visit(node.comparators[0])
        )

    def visit_Subscript(self, node: ast.Subscript) -> ast.expr:
        # Only loads reach here: stores and deletes are rewritten by their statements.
        value = self.visit(node.value)
        index = node.slice
        if isinstance(index, ast.Slice):
            parts = [
                self.visit(part) if part is not None else ast.Constant(value=None)
                for part in (index.lower, index.upper, index.step)
            ]
            return call_helper("slice", value, *parts)
        return call_helper("getitem", value, self.visit(index))

    def visit_Attribute(self, node: ast.Attribute) -> ast.Call:
        return call_helper("attr", self.visit(node.value), ast.Constant(value=node.attr))

    def visit_Call(self, node: ast.Call) -> ast.Call:
        args = [self.visit(arg) for arg in node.args]
        keywords = [ast.keyword(arg=k.arg, value=self.visit(k.value)) for k in node.keywords]
        func = node.func
        if isinstance(func, ast.Attribute):
            target = self.visit(func.value)
            return ast.Call(
                func=helper("method"),
                args=[target, ast.Constant(value=func.attr), *args],
                keywords=keywords,
            )
        # The checker lets only names be called; visiting keeps that from being load-bearing.
        return ast.Call(func=self.visit(func), args=args, keywords=keywords)

    def visit_List(self, node: ast.List) -> ast.expr:
        self.generic_visit(node)
        if not isinstance(node.ctx, ast.Load):
            return node
        return call_helper("built", ast.Constant(value=len(node.elts)), node)

    def visit_Tuple(self, node: ast.Tuple) -> ast.expr:
        self.generic_visit(node)
        if not isinstance(node.ctx, ast.Load):
            return node
        return call_helper("built", ast.Constant(value=len(node.elts)), node)

    def visit_Dict(self, node: ast.Dict) -> ast.Call:
        keys = [self.visit(key) for key in node.keys if key is not None]
        values = [self.visit(value) for value in node.values]
        return call_helper(
            "dict", ast.List(elts=keys, ctx=ast.Load()), ast.List(elts=values, ctx=ast.Load())
        )


# Nodes that must not survive the rewrite: each is an operation whose cost or reach depends on
# its operands, and the rewrite routes every one of them through a helper.
_UNMETERED: Final = (ast.Attribute, ast.BinOp, ast.Subscript, ast.AugAssign)


def assert_metered(tree: ast.Module) -> None:
    """Fail (a compiler bug, never a contract's fault) if an operation escaped the rewrite."""
    for node in ast.walk(tree):
        if isinstance(node, _UNMETERED):
            raise AssertionError(f"unmetered {type(node).__name__} at line {node.lineno}")
        if isinstance(node, ast.Compare) and not isinstance(node.ops[0], ast.Is | ast.IsNot):
            raise AssertionError(f"unmetered comparison at line {node.lineno}")
