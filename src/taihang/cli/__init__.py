"""The `taihang` command."""
