"""A light-client check: verify a balance against the state root with `taihang.crypto` only.

python examples/sdk/state_proof.py .taihang
"""

import sys
from pathlib import Path

from taihang.cli.network import load_network
from taihang.crypto.hashing import get_hash
from taihang.crypto.jmt import verify_state_proof
from taihang.crypto.proof_json import state_proof_from_json
from taihang.sdk.client import Client

network = load_network(Path(sys.argv[1] if len(sys.argv) > 1 else ".taihang"))
admin_address = network.keystore.load("admin").address

with Client(network.api) as client:
    read = client.get_state("asset", f"balance/{admin_address}", proof=True)
assert read.proof is not None and read.value_bytes is not None
verify_state_proof(
    bytes.fromhex(read.state_root),
    bytes.fromhex(read.state_key),
    bytes.fromhex(read.value_bytes),
    state_proof_from_json(read.proof),
    get_hash(read.hash),  # SHA-256 on ed25519 channels, SM3 on sm channels
)
print(
    f"balance {read.value} proven against state root {read.state_root[:16]}… "
    f"at height {read.height}"
)
