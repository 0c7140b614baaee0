"""Errors of the contract compiler and runtime.

`OutOfGas` and `LimitExceeded` derive from `BaseException`: contract code has no `try`, and
nothing on the contract path may ever swallow them (a stray `except Exception` in a helper
would turn an exhausted budget into a normal return). `Revert` carries the contract's own
message. Every other exception raised while a contract runs is reported by its class name
only (`normalise_error`), never by CPython's message text, which changes between versions and
can contain memory addresses.
"""

from __future__ import annotations

from taihang.errors import InvalidInput


class ContractCompileError(InvalidInput):
    """The source is not an acceptable contract; `line` and `reason` say where and why.

    `column` is the 0-based offset in the line of the offending node (`ast`'s `col_offset`)
    when the checker knows it, else None; tools use it to put a caret under the problem.
    """

    code = "contract_rejected"

    def __init__(
        self, line: int, reason: str, column: int | None = None, *, detail: str = ""
    ) -> None:
        super().__init__(f"line {line}: {reason}")
        self.line = line
        self.reason = reason
        self.column = column
        # Local tools may show `detail` (CPython's own parser message); receipts never carry
        # it, because its wording may change between CPython releases.
        self.detail = detail


class OutOfGas(BaseException):
    """The call's gas is spent. Uncatchable by contract code."""


class LimitExceeded(BaseException):
    """A size, depth or width limit was hit; `limit` names which. Uncatchable."""

    def __init__(self, limit: str) -> None:
        super().__init__(limit)
        self.limit = limit


class Revert(Exception):
    """An explicit `revert(message)` or a failed `require`; the message is the contract's."""

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


class ForbiddenOperation(Exception):
    """An operation the language refuses at run time (e.g. `%` with a str on the left)."""


class ReadOnlyError(Exception):
    """A `@view` call tried to write storage, emit an event or call a `@public` method."""


class InvalidValue(Exception):
    """A value that cannot cross the contract boundary (storage, events, calls, returns)."""


def normalise_error(exc: BaseException) -> str:
    """The stable text recorded for an unexpected error: its class name, nothing else."""
    return type(exc).__name__
