"""The node runtime (an edge): wires the cores to drivers, timers, worker pools and TLS identity."""
