"""Ledger sync: catching up with the committed chain from peers, in ranges under a commit proof.

`messages` holds the wire forms; `verify` the pure checks (a peer's certified tip, a range's
hash links down from what is already verified); `plan` the sans-IO download state machine
the node's syncer drives (`taihang.node.syncer`).
"""
