"""EDGE: durable storage. The `KVStore` interface and its RocksDB engine, the ledger store
(blocks, transaction index, receipts, state and its Merkle tree) and consensus records."""
