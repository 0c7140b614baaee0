"""Cryptography: the `CryptoSuite` protocol, its suites, hashing and Merkle trees.

Every primitive here is a native library call (libsodium through PyNaCl, OpenSSL through
hashlib); Python only orchestrates. Key generation takes a seed from the caller, so that the
randomness stays at the edges (DESIGN.md §4).
"""

from taihang.crypto.hashing import sha256, tagged_hash
from taihang.crypto.suite import CryptoSuite, get_suite, known_suites

__all__ = ["CryptoSuite", "get_suite", "known_suites", "sha256", "tagged_hash"]
