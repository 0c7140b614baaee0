"""Taihang: a high-performance consortium blockchain in Python."""

__version__ = "0.1.0"
