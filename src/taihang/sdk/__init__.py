"""The Python SDK: key files, transaction building and signing, submitting, queries, events."""
