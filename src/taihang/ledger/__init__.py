"""Ledger types: transactions, blocks, headers, certificates, receipts, events and genesis."""
