"""Print the gas calibration table (ns per gas of every micro-loop against the reference loop).

Usage: `.venv/bin/python scripts/gas_table.py [--budget GAS] [--repeats N] [--suite ed25519|sm]
[--markdown] [--only SUBSTRING]`. The absolute figures depend on the machine and its load;
the ratios are what `tests/unit/execution/contracts/test_gas_calibration.py` checks.
"""

from __future__ import annotations

import argparse
import os
import platform
import time

from taihang.crypto.suite import get_suite
from taihang.execution.contracts.calibration import BUDGET_DEFAULT, CATALOGUE, calibrate


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--budget", type=int, default=BUDGET_DEFAULT)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--suite", default="ed25519")
    parser.add_argument("--markdown", action="store_true")
    parser.add_argument("--only", default="")
    options = parser.parse_args()
    suite = get_suite(options.suite)
    started = time.perf_counter()
    print(
        f"# {platform.python_implementation()} {platform.python_version()}, "
        f"{os.cpu_count()} CPUs, load average {os.getloadavg()[0]:.2f}, "
        f"budget {options.budget:,} gas, best of {options.repeats}, suite {options.suite}"
    )
    if options.markdown:
        print("| operation | ns/gas | ratio to reference | ended |")
        print("|---|---:|---:|---|")
    rows = []
    for loop in CATALOGUE:
        if options.only not in loop.name:
            continue
        result = calibrate(
            loop, time.perf_counter_ns, suite, repeats=options.repeats, budget=options.budget
        )
        ended = result.error[0] if result.error else "ok"
        flag = "" if result.ended_as_expected else " (UNEXPECTED END)"
        rows.append(result)
        if options.markdown:
            name = loop.name.replace("|", "\\|")
            print(f"| {name} | {result.loop_ns_per_gas:.1f} | {result.ratio:.2f} | {ended}{flag} |")
        else:
            print(
                f"{loop.name:45} {result.loop_ns_per_gas:10.1f} ns/gas {result.ratio:8.2f}x "
                f"(ref {result.reference_ns_per_gas:.1f}) {ended}{flag}",
                flush=True,
            )
    print(
        f"# {len(rows)} loops in {time.perf_counter() - started:.1f} s, load average "
        f"{os.getloadavg()[0]:.2f}"
    )


if __name__ == "__main__":
    main()
