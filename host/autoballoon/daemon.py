"""autoballoond: collectors -> model -> libvirt, one thread of decisions.

The command line: configuration (``config.py``), logging, the control socket, and the
decision loop (``loop.py``: inputs, model, per-VM workers, the timeline). Errors and
warnings are always logged to stderr, one JSON object per line with its level; the
timeline (--timeline) stays the detailed record of every input and command.

Each VM's target, how much of it automation took, and its enabled and manual flags are
kept in the domain's own metadata, so a restarted daemon resumes without a jump in targets
and never gives back more than it took.
"""

from __future__ import annotations

import argparse
import json
import logging
import signal
import sys
from pathlib import Path
from types import FrameType
from typing import TextIO

from autoballoon.config import ConfigError, DaemonConfig, load_config, parse_assignments
from autoballoon.control import ControlServer
from autoballoon.loop import Daemon
from autoballoon.policies import POLICIES
from autoballoon.saved_state import STATE_NS
from autoballoon.timeline import Timeline
from autoballoon.timeline import event_fields as _event_fields

log = logging.getLogger("autoballoond")


class JsonFormatter(logging.Formatter):
    """One JSON object per record: time, level, logger, msg (and exc, the traceback)."""

    def format(self, record: logging.LogRecord) -> str:
        rec = {"time": self.formatTime(record), "level": record.levelname,
               "logger": record.name, "msg": record.getMessage()}
        if record.exc_info:
            rec["exc"] = self.formatException(record.exc_info)
        return json.dumps(rec, default=str)


def setup_logging(stream: TextIO, level: int = logging.INFO) -> None:
    handler = logging.StreamHandler(stream)
    handler.setFormatter(JsonFormatter())
    logging.basicConfig(level=level, handlers=[handler], force=True)


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="autoballoond", description=__doc__.splitlines()[0])
    p.add_argument("--config", type=Path, help="TOML file with a [daemon] table")
    p.add_argument("--uri")
    p.add_argument("--metadata-ns", dest="metadata_ns")
    p.add_argument("--name-pattern", dest="name_pattern")
    p.add_argument("--policy", choices=sorted(POLICIES))
    p.add_argument("--pressure", dest="pressure_kind",
                   choices=("vmpressure", "psi-cgroup", "psi-host", "none"))
    p.add_argument("--pressure-path", dest="pressure_path")
    p.add_argument("--pressure-min-interval", dest="pressure_min_interval_s", type=float,
                   help="at most one host pressure event per this many seconds")
    p.add_argument("--policy-param", dest="policy_params", action="append", default=[],
                   metavar="NAME=VALUE", help="override a policy parameter (TOML value)")
    p.add_argument("--timeline", help="append a JSONL timeline here")
    p.add_argument("--control-socket", dest="control_socket")
    p.add_argument("--tick", dest="tick_s", type=float)
    p.add_argument("--stats-period", dest="stats_period_s", type=float)
    return p


def main(argv: list[str] | None = None) -> int:
    args = vars(_parser().parse_args(argv))
    setup_logging(sys.stderr)
    config_path = args.pop("config")
    try:
        args["policy_params"] = parse_assignments(args["policy_params"])
        text = config_path.read_text() if config_path else ""
        config = load_config(text, args)
        config.pressure_config()
    except (ConfigError, OSError) as e:
        print(f"autoballoond: {e}", file=sys.stderr)
        return 2
    except UnicodeDecodeError as e:
        print(f"autoballoond: {config_path} is not UTF-8 text ({e.reason} at byte {e.start})",
              file=sys.stderr)
        return 2
    try:
        out = open(config.timeline, "a") if config.timeline else None  # noqa: SIM115
    except OSError as e:
        print(f"autoballoond: cannot append to the timeline {config.timeline}: "
              f"{e.strerror or e}", file=sys.stderr)
        return 2
    daemon = Daemon(config, Timeline(out))

    def on_signal(_sig: int, _frame: FrameType | None) -> None:
        daemon.stop()

    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)
    server = ControlServer(Path(config.control_socket), daemon.control)
    try:
        server.start()
    except OSError as e:
        print(f"autoballoond: cannot serve the control socket: {e}", file=sys.stderr)
        if out is not None:
            out.close()
        return 2
    log.info("managing %s with policy %s", config.uri, config.policy)
    try:
        daemon.run()
    finally:
        server.stop()
        if out is not None:
            out.close()
    return 0


__all__ = ["STATE_NS", "ConfigError", "Daemon", "DaemonConfig", "JsonFormatter",
           "Timeline", "_event_fields", "load_config", "main", "parse_assignments",
           "setup_logging"]


if __name__ == "__main__":
    sys.exit(main())
