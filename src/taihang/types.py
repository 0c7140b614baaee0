"""NewType ids and units shared by every package."""

from typing import NewType

Height = NewType("Height", int)
Round = NewType("Round", int)
Epoch = NewType("Epoch", int)
Nonce = NewType("Nonce", int)
Gas = NewType("Gas", int)
ChannelId = NewType("ChannelId", str)
OrgId = NewType("OrgId", str)
Address = NewType("Address", str)  # lowercase hex of the first 20 bytes of the suite hash of a key
TxId = NewType("TxId", bytes)
BlockId = NewType("BlockId", bytes)
Hash = NewType("Hash", bytes)
PublicKey = NewType("PublicKey", bytes)
Signature = NewType("Signature", bytes)
