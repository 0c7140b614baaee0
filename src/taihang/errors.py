"""The error tree (STYLE.md §Errors).

First decide deterministic or transient, then local or remote. `InvalidInput` and its children
carry a stable `code` that the API returns in `application/problem+json` bodies and that clients
switch on; the message says, in words, what was wrong.
"""

from __future__ import annotations


class TaihangError(Exception):
    """Root of every error Taihang raises on purpose."""

    code: str = "internal"

    def __init__(self, message: str, *, code: str | None = None) -> None:
        super().__init__(message)
        if code is not None:
            self.code = code

    @property
    def message(self) -> str:
        return str(self.args[0]) if self.args else ""


class InvalidInput(TaihangError):
    """A deterministic rejection: every node gives the same answer for the same input."""

    code = "invalid_input"


class DecodeError(InvalidInput):
    """Bytes that are not the canonical encoding of the expected type."""

    code = "malformed"


class InvalidTransaction(InvalidInput):
    code = "invalid_transaction"


class InvalidBlock(InvalidInput):
    code = "invalid_block"


class InvalidSignature(InvalidInput):
    code = "bad_signature"


class InvalidCertificate(InvalidInput):
    code = "bad_certificate"


class InvalidProof(InvalidInput):
    code = "bad_proof"


class PermissionDenied(InvalidInput):
    code = "permission_denied"


class ProtocolViolation(InvalidInput):
    """A peer broke the protocol; `peer` names it so the transport can charge it."""

    code = "protocol_violation"

    def __init__(self, message: str, *, peer: str, code: str | None = None) -> None:
        super().__init__(message, code=code)
        self.peer = peer


class MempoolRejection(InvalidInput):
    """A transaction the mempool will not hold; `code` is one of `mempool.RejectCode`."""

    code = "mempool_rejected"


class ContractError(TaihangError):
    """A deterministic failure inside execution; the transaction gets a failed receipt."""

    code = "contract_error"


class ContractReverted(ContractError):
    code = "reverted"


class OutOfGas(ContractError):
    code = "out_of_gas"


class TransientError(TaihangError):
    """Environmental; retry. Never changes consensus state."""

    code = "unavailable"


class NotFound(TaihangError):
    code = "not_found"


class BlockNotFound(NotFound):
    code = "block_not_found"


class TransactionNotFound(NotFound):
    code = "transaction_not_found"


class ChannelNotFound(NotFound):
    code = "channel_not_found"


class KeyNotFound(NotFound):
    code = "key_not_found"


class ConfigurationError(TaihangError):
    """Found at start-up: fail fast with a precise message."""

    code = "configuration"


class StoreError(TaihangError):
    """The store is not what this node expects (schema version, corruption, wrong network)."""

    code = "store"
