"""autoballoond: collectors -> model -> libvirt, one thread of decisions.

The command line: configuration (``config.py``; ``--config``, else
/etc/autoballoon/autoballoond.toml if it exists), logging (``logs.py``: JSON lines on
stderr, or syslog-prefixed lines when stderr is the journal), the control socket, the
metrics (``metrics.py``), the service manager's notifications (``sd_notify.py``, sent
after each loop pass by ``service.py``) and the decision loop (``loop.py``: inputs,
model, per-VM workers, the timeline). The timeline (--timeline) stays the detailed record
of every input and command.

Each VM's target, how much of it automation took, and its enabled and manual flags are
kept in the domain's own metadata, so a restarted daemon resumes without a jump in targets
and never gives back more than it took.

Exit status: 0 after SIGTERM or SIGINT; 2 for anything the operator must fix first (the
configuration, the timeline, the control socket or the metrics port, the host pressure
source), with one line saying what.
"""

from __future__ import annotations

import argparse
import logging
import os
import signal
import sys
from collections.abc import Mapping
from pathlib import Path
from types import FrameType
from typing import Any, TextIO

from autoballoon.config import (
    DEFAULT_CONFIG,
    ConfigError,
    DaemonConfig,
    load_config,
    parse_assignments,
    read_config_text,
)
from autoballoon.control import ControlServer
from autoballoon.logs import FORMATS, LEVELS, JsonFormatter, default_format, setup_logging
from autoballoon.loop import Daemon
from autoballoon.metrics import CountingTimeline, Counts, Exporter
from autoballoon.policies import POLICIES
from autoballoon.pressure import PressureSourceError
from autoballoon.saved_state import STATE_NS
from autoballoon.sd_notify import Notifier
from autoballoon.service import PassHook
from autoballoon.timeline import Timeline
from autoballoon.timeline import event_fields as _event_fields

log = logging.getLogger("autoballoond")


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="autoballoond", description=__doc__.splitlines()[0])
    p.add_argument("--config", type=Path,
                   help=f"TOML file with a [daemon] table (default: {DEFAULT_CONFIG} if it "
                   "exists)")
    p.add_argument("--no-config", dest="no_config", action="store_true",
                   help=f"do not read {DEFAULT_CONFIG}: flags and built-in defaults only")
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
    p.add_argument("--metrics-port", dest="metrics_port", type=int,
                   help="serve Prometheus metrics over HTTP on this port")
    p.add_argument("--metrics-address", dest="metrics_address",
                   help="the address the metrics port binds (default 127.0.0.1)")
    p.add_argument("--metrics-textfile", dest="metrics_textfile", metavar="PATH",
                   help="rewrite Prometheus metrics to this .prom file (node_exporter's "
                   "textfile collector), at most once a second")
    p.add_argument("--log-format", dest="log_format", choices=FORMATS,
                   help="journal: <N>-prefixed text; json: one object per line (default: "
                   "journal when stderr is the journal, else json)")
    p.add_argument("--log-level", dest="log_level", choices=tuple(LEVELS), default="info")
    return p


def _fd(stream: TextIO) -> int:
    try:
        return stream.fileno()
    except (OSError, ValueError):  # a stream without a descriptor (under a test)
        return -1


def _fail(message: str) -> int:
    print(f"autoballoond: {message}", file=sys.stderr)
    return 2


def _configure(args: dict[str, Any], default_config: Path | None) -> DaemonConfig:
    """The configuration: the file (``--config``, else ``default_config`` if it exists,
    none with ``--no-config``), then the flags; ConfigError for anything wrong."""
    explicit, no_config = args.pop("config"), args.pop("no_config")
    args["policy_params"] = parse_assignments(args["policy_params"])
    text, _path = read_config_text(explicit, None if no_config else default_config)
    config = load_config(text, args)
    config.pressure_config()
    if config.metrics_textfile is not None:
        folder = Path(config.metrics_textfile).parent
        if not folder.is_dir():
            raise ConfigError(f"metrics_textfile: {folder} is not a directory: create it "
                              "(node_exporter's textfile collector directory) or change it")
    return config


def _exporter(config: DaemonConfig) -> Exporter:
    """The metrics' exporter, its HTTP server started if a port is configured (OSError
    if it cannot bind)."""
    textfile = config.metrics_textfile
    exporter = Exporter(Path(textfile) if textfile else None)
    if config.metrics_port is not None:
        host, port = exporter.serve(config.metrics_address, config.metrics_port)
        log.info("metrics on http://%s:%d/metrics", host, port)
    return exporter


def main(argv: list[str] | None = None, default_config: Path | None = DEFAULT_CONFIG,
         env: Mapping[str, str] | None = None) -> int:
    """autoballoond; ``default_config`` and ``env`` (os.environ) are for tests."""
    env = os.environ if env is None else env
    args = vars(_parser().parse_args(argv))
    fmt = args.pop("log_format") or default_format(env, _fd(sys.stderr))
    setup_logging(sys.stderr, LEVELS[args.pop("log_level")], fmt)
    try:
        config = _configure(args, default_config)
    except ConfigError as e:
        return _fail(str(e))
    try:
        out = open(config.timeline, "a") if config.timeline else None  # noqa: SIM115
    except OSError as e:
        return _fail(f"cannot append to the timeline {config.timeline}: {e.strerror or e}")
    metrics = config.metrics_port is not None or config.metrics_textfile is not None
    counting = CountingTimeline(out) if metrics else None
    daemon = Daemon(config, counting if counting is not None else Timeline(out))
    notifier = Notifier.from_env(env, os.getpid())

    def on_signal(_sig: int, _frame: FrameType | None) -> None:
        notifier.stopping()
        daemon.stop()

    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)
    server = ControlServer(Path(config.control_socket), daemon.control)
    exporter: Exporter | None = None
    try:
        try:
            server.start()
        except OSError as e:
            return _fail(f"cannot serve the control socket: {e}")
        try:
            exporter = _exporter(config) if metrics else None
        except OSError as e:
            return _fail(f"cannot serve the metrics on {config.metrics_address} port "
                         f"{config.metrics_port}: {e.strerror or e}; choose another "
                         "metrics_port")
        daemon.after_pass = PassHook(daemon, notifier, config.uri, exporter,
                                     counting.counts if counting is not None else Counts)
        log.info("managing %s with policy %s", config.uri, config.policy)
        try:
            daemon.run()
        except PressureSourceError as e:
            return _fail(f"host pressure source: {e}")
    finally:
        server.stop()  # also after a failed start: it removes only what it made
        if exporter is not None:
            exporter.close()
        notifier.close()
        if out is not None:
            out.close()
    return 0


__all__ = ["STATE_NS", "ConfigError", "Daemon", "DaemonConfig", "JsonFormatter",
           "Timeline", "_event_fields", "load_config", "main", "parse_assignments",
           "setup_logging"]


if __name__ == "__main__":
    sys.exit(main())
