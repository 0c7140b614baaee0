"""The built-in contracts: `members` (registration by org admins), `kv` and `asset`.

Argument checking is part of each method: a wrong type or count reverts the transaction with
a message that says which argument was wrong.
"""

from __future__ import annotations

import re
from typing import Final

from taihang.codec import Value
from taihang.errors import ContractReverted
from taihang.execution.context import CallContext, ViewContext, require
from taihang.ledger.transaction import compute_address

ADDRESS_PATTERN: Final = re.compile(r"[0-9a-f]{40}\Z")
AMOUNT_MAX: Final = 2**63 - 1
KV_KEY_CHARS_MAX: Final = 256
GRANTABLE_ROLES: Final = ("admin", "member", "issuer", "auditor")


def _expect_args(method: str, args: list[Value], count: int) -> None:
    if len(args) != count:
        raise ContractReverted(f"{method} takes {count} arguments, got {len(args)}")


def _address_arg(value: Value, name: str) -> str:
    if not isinstance(value, str) or ADDRESS_PATTERN.match(value) is None:
        raise ContractReverted(f"{name} must be a 40-character lowercase hex address")
    return value


def _amount_arg(value: Value, name: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or not 0 < value <= AMOUNT_MAX:
        raise ContractReverted(f"{name} must be an integer between 1 and {AMOUNT_MAX}")
    return value


def _unknown(contract: str, method: str) -> ContractReverted:
    return ContractReverted(f"contract {contract} has no method {method!r}")


def get_member(ctx: CallContext | ViewContext, address: str) -> dict[str, Value] | None:
    member = ctx.read_other("members", f"member/{address}")
    return member if isinstance(member, dict) else None


def has_role(ctx: CallContext | ViewContext, address: str, role: str) -> bool:
    member = get_member(ctx, address)
    return member is not None and role in member.get("roles", [])


class MembersContract:
    """Membership: an org admin registers keys of its own org (until governance exists)."""

    name: Final = "members"

    def call(self, ctx: CallContext, method: str, args: list[Value]) -> Value:
        if method != "add":
            raise _unknown(self.name, method)
        _expect_args(method, args, 2)
        public_key, roles = args
        admin = get_member(ctx, ctx.sender)
        require(
            admin is not None and "admin" in admin["roles"], "only an org admin may add members"
        )
        assert admin is not None
        require(
            isinstance(public_key, bytes) and len(public_key) == ctx.suite.public_key_bytes,
            f"public_key must be {ctx.suite.public_key_bytes} bytes",
        )
        assert isinstance(public_key, bytes)
        address = compute_address(ctx.suite, public_key)
        require(
            isinstance(roles, list) and 0 < len(roles) <= len(GRANTABLE_ROLES),
            "roles must be a non-empty list",
        )
        require(
            all(r in GRANTABLE_ROLES for r in roles), f"roles must be among {list(GRANTABLE_ROLES)}"
        )
        require(get_member(ctx, address) is None, f"{address} is already a member")
        member = {"public_key": public_key, "org": admin["org"], "roles": sorted(set(roles))}
        ctx.write(f"member/{address}", member)
        ctx.emit("MemberAdded", {"address": address, "org": admin["org"], "roles": member["roles"]})
        return None

    def view(self, ctx: ViewContext, method: str, args: list[Value]) -> Value:
        if method != "get":
            raise _unknown(self.name, method)
        _expect_args(method, args, 1)
        return get_member(ctx, _address_arg(args[0], "address"))


class KvContract:
    """A key-value store per caller: each sender writes only under its own address."""

    name: Final = "kv"

    @staticmethod
    def _key(ctx: CallContext | ViewContext, owner: str, key: Value) -> str:
        if not isinstance(key, str) or not 0 < len(key) <= KV_KEY_CHARS_MAX:
            raise ContractReverted(f"key must be a string of 1 to {KV_KEY_CHARS_MAX} characters")
        return f"{owner}/{key}"

    def call(self, ctx: CallContext, method: str, args: list[Value]) -> Value:
        if method == "put":
            _expect_args(method, args, 2)
            ctx.write(self._key(ctx, ctx.sender, args[0]), args[1])
            ctx.emit("Put", {"owner": ctx.sender, "key": args[0]})
            return None
        if method == "delete":
            _expect_args(method, args, 1)
            ctx.delete(self._key(ctx, ctx.sender, args[0]))
            ctx.emit("Delete", {"owner": ctx.sender, "key": args[0]})
            return None
        if method == "get":
            _expect_args(method, args, 1)
            return ctx.read(self._key(ctx, ctx.sender, args[0]))
        raise _unknown(self.name, method)

    def view(self, ctx: ViewContext, method: str, args: list[Value]) -> Value:
        if method != "get":
            raise _unknown(self.name, method)
        _expect_args(method, args, 2)
        owner = _address_arg(args[0], "owner")
        return ctx.read(self._key(ctx, owner, args[1]))


class AssetContract:
    """One fungible asset per channel: issued by members with the `issuer` role."""

    name: Final = "asset"

    def call(self, ctx: CallContext, method: str, args: list[Value]) -> Value:
        if method == "transfer":
            _expect_args(method, args, 2)
            return self._transfer(ctx, _address_arg(args[0], "to"), _amount_arg(args[1], "amount"))
        if method == "issue":
            _expect_args(method, args, 2)
            return self._issue(ctx, _address_arg(args[0], "to"), _amount_arg(args[1], "amount"))
        raise _unknown(self.name, method)

    def _transfer(self, ctx: CallContext, to: str, amount: int) -> Value:
        balance = ctx.read(f"balance/{ctx.sender}", 0)
        require(balance >= amount, f"insufficient balance: {balance} < {amount}")
        ctx.write(f"balance/{ctx.sender}", balance - amount)
        ctx.write(f"balance/{to}", ctx.read(f"balance/{to}", 0) + amount)
        ctx.emit("Transfer", {"from": ctx.sender, "to": to, "amount": amount})
        return None

    def _issue(self, ctx: CallContext, to: str, amount: int) -> Value:
        require(has_role(ctx, ctx.sender, "issuer"), "only an issuer may issue")
        supply = ctx.read("supply", 0)
        require(supply + amount <= AMOUNT_MAX, "issue would exceed the maximum supply")
        ctx.write("supply", supply + amount)
        ctx.write(f"balance/{to}", ctx.read(f"balance/{to}", 0) + amount)
        ctx.emit("Issue", {"to": to, "amount": amount})
        return None

    def view(self, ctx: ViewContext, method: str, args: list[Value]) -> Value:
        if method == "balance":
            _expect_args(method, args, 1)
            return ctx.read(f"balance/{_address_arg(args[0], 'owner')}", 0)
        if method == "supply":
            _expect_args(method, args, 0)
            return ctx.read("supply", 0)
        raise _unknown(self.name, method)
