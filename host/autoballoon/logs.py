"""autoballoond's log lines on stderr, in one of two formats.

- ``json``: one JSON object per line (time, level, logger, msg, and exc: the traceback),
  for a daemon run by hand or by the rig, whose log is a file;
- ``journal``: plain text, every line prefixed with its syslog priority as sd-daemon(3)
  reads it on a service's stderr (``<3>`` error, ``<4>`` warning, ``<6>`` info,
  ``<7>`` debug; ``<2>`` critical), so ``journalctl -p warning`` filters them. A
  multi-line message (a traceback) keeps its priority on every line.

The default is ``journal`` when stderr is the journal: systemd sets ``$JOURNAL_STREAM``
to its ``device:inode``, compared with stderr's own (a service whose stderr was
redirected elsewhere inherits the variable but not the stream).
"""

from __future__ import annotations

import json
import logging
import os
from collections.abc import Mapping
from typing import TextIO

FORMATS = ("json", "journal")
LEVELS: Mapping[str, int] = {"debug": logging.DEBUG, "info": logging.INFO,
                             "warning": logging.WARNING, "error": logging.ERROR}


def syslog_priority(levelno: int) -> int:
    """A logging level as a syslog priority (sd-daemon(3)'s <N> prefixes)."""
    if levelno >= logging.CRITICAL:
        return 2
    if levelno >= logging.ERROR:
        return 3
    if levelno >= logging.WARNING:
        return 4
    if levelno >= logging.INFO:
        return 6
    return 7


class JsonFormatter(logging.Formatter):
    """One JSON object per record: time, level, logger, msg (and exc, the traceback)."""

    def format(self, record: logging.LogRecord) -> str:
        rec = {"time": self.formatTime(record), "level": record.levelname,
               "logger": record.name, "msg": record.getMessage()}
        if record.exc_info:
            rec["exc"] = self.formatException(record.exc_info)
        return json.dumps(rec, default=str)


class JournalFormatter(logging.Formatter):
    """Plain text, each line prefixed with the record's syslog priority (the journal adds
    the time and the unit)."""

    def format(self, record: logging.LogRecord) -> str:
        text = record.getMessage()
        if record.exc_info:
            text += "\n" + self.formatException(record.exc_info)
        prefix = f"<{syslog_priority(record.levelno)}>"
        return "\n".join(prefix + line for line in text.splitlines() or [""])


def parse_journal_stream(value: str | None) -> tuple[int, int] | None:
    """``$JOURNAL_STREAM`` ("device:inode") as numbers; None if unset or malformed."""
    dev, sep, ino = (value or "").partition(":")
    if not sep or not dev.isdigit() or not ino.isdigit():
        return None
    return int(dev), int(ino)


def default_format(env: Mapping[str, str], stderr_fd: int) -> str:
    """``journal`` when ``stderr_fd`` is the stream ``$JOURNAL_STREAM`` names, else
    ``json``."""
    stream = parse_journal_stream(env.get("JOURNAL_STREAM"))
    if stream is None:
        return "json"
    try:
        st = os.fstat(stderr_fd)
    except OSError:
        return "json"
    return "journal" if (st.st_dev, st.st_ino) == stream else "json"


def setup_logging(stream: TextIO, level: int = logging.INFO, fmt: str = "json") -> None:
    """Log records at ``level`` and above to ``stream`` in ``fmt`` (FORMATS)."""
    handler = logging.StreamHandler(stream)
    handler.setFormatter(JournalFormatter() if fmt == "journal" else JsonFormatter())
    logging.basicConfig(level=level, handlers=[handler], force=True)


__all__ = ["FORMATS", "LEVELS", "JournalFormatter", "JsonFormatter", "default_format",
           "parse_journal_stream", "setup_logging", "syslog_priority"]
