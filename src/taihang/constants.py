"""Protocol limits and domain tags. Changing any of these is a protocol change."""

from typing import Final

PROTOCOL_VERSION: Final = 1
STORE_SCHEMA_VERSION: Final = 1

# Domain tags: every signed or hashed value is `tag || canonical bytes` (DESIGN.md §4).
TAG_TX: Final = b"taihang/tx/v1"
TAG_BLOCK: Final = b"taihang/block/v1"
TAG_VOTE: Final = b"taihang/vote/v1"
TAG_TIMEOUT: Final = b"taihang/timeout/v1"
TAG_PROPOSAL: Final = b"taihang/proposal/v1"
TAG_GENESIS: Final = b"taihang/genesis/v1"
TAG_VALIDATOR_SET: Final = b"taihang/validator-set/v1"
TAG_RECEIPT: Final = b"taihang/receipt/v1"
TAG_ADDRESS: Final = b"taihang/address/v1"

# Codec limits.
ENCODED_BYTES_MAX: Final = 16 * 1024 * 1024  # any single decoded value (blocks are the largest)
NESTING_DEPTH_MAX: Final = 32  # dynamic values (contract args, return values, events)
BIG_INT_BITS_MAX: Final = 512  # contract integers; beyond int64 they use the big-int extension

# Transaction limits.
TX_BYTES_MAX: Final = 64 * 1024
TX_ARGS_BYTES_MAX: Final = 48 * 1024
NAME_CHARS_MAX: Final = 64  # contract and method names, channel ids
GAS_LIMIT_MAX: Final = 10_000_000
# Block gas: a proposer fills a block until its transactions' gas limits add up to this, and
# execution rejects a transaction that could take the block's gas used past it. It bounds a
# block's execution (about 0.1 us per gas: ~100 s for a block of the worst contracts) and
# holds 1,000 transactions at the default limit of 1,000,000, more with tighter limits.
BLOCK_GAS_LIMIT: Final = 1_000_000_000
TX_EXPIRY_HEIGHTS_MAX: Final = 100_000  # a tx may not be valid further ahead than this

# Execution results.
EVENT_DATA_BYTES_MAX: Final = 16 * 1024
RETURN_VALUE_BYTES_MAX: Final = 16 * 1024
STATE_KEY_BYTES_MAX: Final = 512
STATE_VALUE_BYTES_MAX: Final = 64 * 1024

# Execution lag: header h carries exec_root for e <= h - EXEC_LAG_MIN (DESIGN.md §3).
EXEC_LAG_MIN: Final = 3

ED25519_PUBLIC_KEY_BYTES: Final = 32
ED25519_SIGNATURE_BYTES: Final = 64
HASH_BYTES: Final = 32
ADDRESS_BYTES: Final = 20
