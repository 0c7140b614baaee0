"""Fixtures and fakes for tests only; edges never import it (import-linter contract)."""
