# ruff: noqa: F821  (the sandbox provides public, view and require)
# A fungible token: the example of shared/spec/contracts.md ("The contract API").
# Deploy:  taihang contract deploy examples/contracts/token.py --name token --args '[1000]'
# Invoke:  taihang contract invoke token transfer --args '["<address>", 10]'
# Query:   taihang contract call token balance_of --args '["<address>"]'


@public
def init(ctx, supply):
    ctx.storage.set("balance/" + ctx.sender, supply)


@public
def transfer(ctx, to, amount):
    require(amount > 0, "amount must be positive")
    balance = ctx.storage.get("balance/" + ctx.sender, 0)
    require(balance >= amount, "insufficient balance")
    ctx.storage.set("balance/" + ctx.sender, balance - amount)
    ctx.storage.set("balance/" + to, ctx.storage.get("balance/" + to, 0) + amount)
    ctx.emit("Transfer", {"from": ctx.sender, "to": to, "amount": amount})


@view
def balance_of(ctx, owner):
    return ctx.storage.get("balance/" + owner, 0)
