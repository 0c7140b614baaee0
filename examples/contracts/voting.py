# ruff: noqa: F821  (the sandbox provides public, view, require and revert)
# Multi-party approval: a proposal names its approvers and how many approvals it needs; each
# approver approves at most once (and may revoke while it is open); when the approvals reach
# the threshold the proposal is executed, and stays so. The proposer may cancel it while open.
# Deploy:  taihang contract deploy examples/contracts/voting.py --name voting
# Invoke:  taihang contract invoke voting propose --args '["raise the limit", ["<a1>", "<a2>"], 2]'
#          taihang contract invoke voting approve --args '[1]'
# Query:   taihang contract call voting proposal --args '[1]'
# Test:    taihang contract test examples/contracts/test_voting.py

APPROVERS_MAX = 32
DESCRIPTION_CHARS_MAX = 256
OPEN = "open"
EXECUTED = "executed"
CANCELLED = "cancelled"


def key(proposal_id):
    return "proposal/" + str(proposal_id)


def load(ctx, proposal_id):
    require(isinstance(proposal_id, int), "proposal id must be an integer")
    proposal = ctx.storage.get(key(proposal_id))
    require(proposal is not None, "no such proposal")
    return proposal


def load_open(ctx, proposal_id):
    proposal = load(ctx, proposal_id)
    require(proposal["status"] == OPEN, "proposal is " + proposal["status"])
    return proposal


@public
def propose(ctx, description, approvers, threshold):
    require(isinstance(description, str), "description must be a string")
    require(len(description) > 0, "description must not be empty")
    require(len(description) <= DESCRIPTION_CHARS_MAX, "description must be at most 256 chars")
    require(isinstance(approvers, list), "approvers must be a list of addresses")
    require(
        len(approvers) > 0 and len(approvers) <= APPROVERS_MAX, "a proposal has 1 to 32 approvers"
    )
    require(all([isinstance(a, str) and len(a) > 0 for a in approvers]), "approvers are addresses")
    require(len({a: True for a in approvers}) == len(approvers), "approvers must be distinct")
    require(isinstance(threshold, int), "threshold must be an integer")
    require(threshold > 0, "threshold must be 1 to the approvers")
    require(threshold <= len(approvers), "threshold must be 1 to the approvers")
    proposal_id = ctx.storage.get("next_id", 1)
    ctx.storage.set("next_id", proposal_id + 1)
    proposal = {
        "id": proposal_id,
        "proposer": ctx.sender,
        "description": description,
        "approvers": approvers,
        "threshold": threshold,
        "approvals": [],
        "status": OPEN,
        "executed_at": None,
    }
    ctx.storage.set(key(proposal_id), proposal)
    ctx.emit("Proposed", {"id": proposal_id, "proposer": ctx.sender, "threshold": threshold})
    return proposal_id


@public
def approve(ctx, proposal_id):
    proposal = load_open(ctx, proposal_id)
    require(ctx.sender in proposal["approvers"], "only a listed approver may approve")
    require(ctx.sender not in proposal["approvals"], "already approved")
    proposal["approvals"].append(ctx.sender)
    ctx.emit("Approved", {"id": proposal_id, "approver": ctx.sender})
    if len(proposal["approvals"]) >= proposal["threshold"]:
        proposal["status"] = EXECUTED
        proposal["executed_at"] = ctx.height
        ctx.emit("Executed", {"id": proposal_id, "approvals": len(proposal["approvals"])})
    ctx.storage.set(key(proposal_id), proposal)
    return proposal["status"]


@public
def revoke(ctx, proposal_id):
    proposal = load_open(ctx, proposal_id)
    require(ctx.sender in proposal["approvals"], "nothing to revoke: not approved")
    proposal["approvals"].pop(proposal["approvals"].index(ctx.sender))
    ctx.storage.set(key(proposal_id), proposal)
    ctx.emit("Revoked", {"id": proposal_id, "approver": ctx.sender})


@public
def cancel(ctx, proposal_id):
    proposal = load_open(ctx, proposal_id)
    require(ctx.sender == proposal["proposer"], "only the proposer may cancel")
    proposal["status"] = CANCELLED
    ctx.storage.set(key(proposal_id), proposal)
    ctx.emit("Cancelled", {"id": proposal_id})


@view
def proposal(ctx, proposal_id):
    return load(ctx, proposal_id)


@view
def is_executed(ctx, proposal_id):
    return load(ctx, proposal_id)["status"] == EXECUTED


@view
def approvals_needed(ctx, proposal_id):
    proposal = load(ctx, proposal_id)
    return max(proposal["threshold"] - len(proposal["approvals"]), 0)
