"""autoballoonctl: show and steer a running autoballoond."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from autoballoon.config import ConfigError, parse_assignments
from autoballoon.control import request

DEFAULT_SOCKET = Path("/run/autoballoon/autoballoond.sock")


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="autoballoonctl", description=__doc__)
    p.add_argument("--socket", type=Path, default=DEFAULT_SOCKET)
    p.add_argument("--json", action="store_true", help="print the raw answer")
    sub = p.add_subparsers(dest="cmd", required=True)
    sub.add_parser("show", help="state per VM")
    for verb in ("enable", "disable"):
        sp = sub.add_parser(verb, help=f"{verb} automation for a VM, or globally")
        sp.add_argument("vm", nargs="?")
    pol = sub.add_parser("policy", help="switch the policy at runtime")
    pol.add_argument("name")
    pol.add_argument("params", nargs="*", metavar="NAME=VALUE",
                     help="parameter overrides (TOML values), e.g. step_mib=64")
    args = p.parse_args(argv)
    req: dict[str, object] = {"cmd": args.cmd}
    if args.cmd in ("enable", "disable"):
        req["vm"] = args.vm
    if args.cmd == "policy":
        req["name"] = args.name
        try:
            req["params"] = parse_assignments(args.params)
        except ConfigError as e:
            print(f"autoballoonctl: {e}", file=sys.stderr)
            return 2
    try:
        reply = request(args.socket, req)
    except OSError as e:
        print(f"autoballoonctl: cannot reach the daemon at {args.socket}: {e.strerror or e}; "
              "is autoballoond running?", file=sys.stderr)
        return 2
    except ValueError:
        print(f"autoballoonctl: the daemon at {args.socket} gave no valid answer",
              file=sys.stderr)
        return 2
    if args.json or args.cmd != "show" or not reply.get("ok"):
        print(json.dumps(reply))
        return 0 if reply.get("ok") else 2
    print(f"policy {reply['policy']}, automation {'on' if reply['enabled'] else 'off'}, "
          f"last host level {reply['last_host_level']}")
    print(f"{'vm':<28} {'target':>7} {'actual':>7} {'max':>6} {'auto':>6}  state")
    for name, v in sorted(reply["vms"].items()):
        state = "manual" if v["manual"] else ("on" if v["enabled"] else "off")
        if v.get("deviation"):  # a balloon size no target of the daemon's explains
            state += f", balloon {v['deviation']} its targets"
        print(f"{name:<28} {v['target_mib']:>7} {v['actual_mib'] or '-':>7} "
              f"{v['max_mib']:>6} {v['auto_inflated_mib']:>6}  {state}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
