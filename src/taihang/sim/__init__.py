"""The deterministic cluster simulator (`taihang sim`, tests/sim): real cores, simulated world.

Theory of operation: N unmodified consensus cores run in one process against a simulated
clock, network, disk and executor (`engine`), under a fault plan drawn from one seed
(`plan`, `network`), while checkers watch every step (`checkers`). A run is a pure function
of the seed, the flags and the code, so any failing seed replays bit for bit (`runner`,
`trace`). See docs/simulator.md. Node, api, net and store never import this package.

The package imports nothing on its own, so that registering the CLI command (`sim.cli`)
keeps `taihang --help` fast; import `taihang.sim.runner` for the API.
"""
