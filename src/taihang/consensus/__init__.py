"""Consensus. For now the single-validator profile (`solo`); the Jolteon core arrives with the
consensus issue and keeps the same block, header and certificate shapes."""
