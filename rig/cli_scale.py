"""The `rig daemon-scale` command (rig.cli wires it in).

    rig daemon-scale [--vms N ...] [--seconds S] [--timeline] [--results DIR]

autoballoond's decision time per input (p50, p99) and CPU (percent of one core) against
a simulated host of N VMs, for each N (rig/bench/daemon_scale.py says how). No VM, no
root: it runs anywhere, but measures the machine it runs on, so run it on an idle one.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from rig.errors import UsageError
from rig.progress import Progress

COMMANDS = ("daemon-scale",)
SIZES = (10, 50, 100, 500)  # the sizes; its targets are for 500
SECONDS = 30.0


def add_parsers(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("daemon-scale", help="autoballoond's decision time and CPU against "
                       "a simulated host of N VMs (p50/p99 ms per input, CPU %% of a core)")
    p.add_argument("--vms", type=int, nargs="+", default=list(SIZES),
                   metavar="N", help="host sizes to measure (default: %(default)s)")
    p.add_argument("--seconds", type=float, default=SECONDS,
                   help="seconds measured per size, after a warm-up (default: %(default)s)")
    p.add_argument("--timeline", action="store_true",
                   help="the daemon writes a timeline (to /dev/null), as the rig runs it; "
                   "default: none, as a host runs it")
    p.add_argument("--results", type=Path, default=Path("results"),
                   help="results root (default: ./results); the JSON goes to "
                   "<results>/daemon-scale/<stamp>/")


def dispatch(args: argparse.Namespace, progress: Progress) -> int:
    from rig.bench import daemon_scale

    if any(n < 1 for n in args.vms):
        raise UsageError("--vms: every size must be at least 1")
    if not args.seconds > 0:
        raise UsageError("--seconds must be more than 0")
    command = " ".join(["rig", *sys.argv[1:]])
    results, out = daemon_scale.run(args.vms, args.seconds, args.results, command,
                                    progress.info, timeline=args.timeline)
    print(daemon_scale.table(results))
    print(f"{daemon_scale.RESULT_JSON} in {out}")
    return 0


__all__ = ["COMMANDS", "add_parsers", "dispatch"]
