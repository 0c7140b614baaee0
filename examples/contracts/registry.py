# ruff: noqa: F821  (the sandbox provides public, view, require and revert)
# A name registry: anyone registers a free name to themselves with a value; only the name's
# owner may change the value, transfer the name to another address or release it.
# Deploy:  taihang contract deploy examples/contracts/registry.py --name registry
# Invoke:  taihang contract invoke registry register --args '["acme", "https://acme.example"]'
#          taihang contract invoke registry transfer --args '["acme", "<address>"]'
# Query:   taihang contract call registry owner_of --args '["acme"]'
# Test:    taihang contract test examples/contracts/test_registry.py

PREFIX = "name/"
NAME_CHARS_MAX = 64
VALUE_CHARS_MAX = 256
LIST_MAX = 100


def check_name(name):
    require(isinstance(name, str), "name must be a string")
    require(len(name) > 0 and len(name) <= NAME_CHARS_MAX, "name must be 1 to 64 characters")


def check_value(value):
    require(isinstance(value, str), "value must be a string")
    require(len(value) <= VALUE_CHARS_MAX, "value must be at most 256 characters")


def owned(ctx, name):
    check_name(name)
    record = ctx.storage.get(PREFIX + name)
    require(record is not None, "name is not registered")
    require(record["owner"] == ctx.sender, "only the owner may do this")
    return record


@public
def register(ctx, name, value):
    check_name(name)
    check_value(value)
    require(not ctx.storage.has(PREFIX + name), "name is already registered")
    record = {"owner": ctx.sender, "value": value, "registered_at": ctx.height}
    ctx.storage.set(PREFIX + name, record)
    ctx.emit("Registered", {"name": name, "owner": ctx.sender})


@public
def set_value(ctx, name, value):
    record = owned(ctx, name)
    check_value(value)
    record["value"] = value
    ctx.storage.set(PREFIX + name, record)
    ctx.emit("ValueChanged", {"name": name, "value": value})


@public
def transfer(ctx, name, new_owner):
    record = owned(ctx, name)
    require(isinstance(new_owner, str) and len(new_owner) > 0, "new owner must be an address")
    require(new_owner != ctx.sender, "the name already belongs to you")
    record["owner"] = new_owner
    ctx.storage.set(PREFIX + name, record)
    ctx.emit("Transferred", {"name": name, "from": ctx.sender, "to": new_owner})


@public
def release(ctx, name):
    owned(ctx, name)
    ctx.storage.delete(PREFIX + name)
    ctx.emit("Released", {"name": name, "owner": ctx.sender})


@view
def owner_of(ctx, name):
    check_name(name)
    record = ctx.storage.get(PREFIX + name)
    return None if record is None else record["owner"]


@view
def lookup(ctx, name):
    check_name(name)
    return ctx.storage.get(PREFIX + name)


@view
def names(ctx, prefix, limit):
    require(isinstance(prefix, str), "prefix must be a string")
    require(isinstance(limit, int) and limit > 0 and limit <= LIST_MAX, "limit must be 1 to 100")
    return [key[len(PREFIX) :] for key, record in ctx.storage.items(PREFIX + prefix, limit)]
