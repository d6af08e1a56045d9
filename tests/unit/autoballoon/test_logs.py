"""autoballoond's log formats: JSON lines, or the journal's <N>-prefixed lines (sd-daemon(3)
priorities), chosen by --log-format or by whether stderr is $JOURNAL_STREAM; --log-level."""

from __future__ import annotations

import io
import json
import logging
import os
import sys

import pytest
from autoballoon import daemon
from autoballoon.logs import (
    JournalFormatter,
    JsonFormatter,
    default_format,
    parse_journal_stream,
    setup_logging,
    syslog_priority,
)


def record(level: int, msg: str, *args: object, exc: bool = False) -> logging.LogRecord:
    exc_info = None
    if exc:
        try:
            raise ValueError("boom")
        except ValueError:
            exc_info = sys.exc_info()
    return logging.LogRecord("autoballoond", level, __file__, 1, msg, args, exc_info)


@pytest.mark.parametrize(("level", "priority"), [
    (logging.CRITICAL, 2), (logging.ERROR, 3), (logging.WARNING, 4), (logging.INFO, 6),
    (logging.DEBUG, 7),
])
def test_syslog_priorities(level, priority):
    assert syslog_priority(level) == priority
    assert JournalFormatter().format(record(level, "x")) == f"<{priority}>x"


def test_journal_lines_carry_their_priority_on_every_line():
    text = JournalFormatter().format(record(logging.ERROR, "a: %s", "two\nlines", exc=True))
    lines = text.splitlines()
    assert lines[:2] == ["<3>a: two", "<3>lines"]
    assert lines[2] == "<3>Traceback (most recent call last):"
    assert lines[-1] == "<3>ValueError: boom"
    assert all(line.startswith("<3>") for line in lines)


def test_json_lines_stay_one_object_per_line():
    line = JsonFormatter().format(record(logging.WARNING, "a\nb", exc=True))
    assert "\n" not in line
    d = json.loads(line)
    assert (d["level"], d["msg"]) == ("WARNING", "a\nb") and "ValueError: boom" in d["exc"]


def test_parse_journal_stream():
    assert parse_journal_stream("8:12345") == (8, 12345)
    for bad in (None, "", "8", "x:1", "8:", "-1:2"):
        assert parse_journal_stream(bad) is None


def test_journal_by_default_only_when_stderr_is_the_journal_stream(tmp_path):
    with open(tmp_path / "stderr", "w") as f:
        st = os.fstat(f.fileno())
        ours = f"{st.st_dev}:{st.st_ino}"
        assert default_format({"JOURNAL_STREAM": ours}, f.fileno()) == "journal"
        # redirected elsewhere: the variable is inherited, the stream is not the journal
        assert default_format({"JOURNAL_STREAM": f"{st.st_dev}:{st.st_ino + 1}"},
                              f.fileno()) == "json"
        assert default_format({}, f.fileno()) == "json"
        assert default_format({"JOURNAL_STREAM": ours}, -1) == "json"  # no descriptor


def test_setup_logging_format_and_level():
    out = io.StringIO()
    setup_logging(out, logging.WARNING, "journal")
    log = logging.getLogger("autoballoond")
    log.info("hidden")
    log.warning("shown %d", 1)
    assert out.getvalue() == "<4>shown 1\n"


@pytest.mark.parametrize(("argv", "expected"), [
    (["--log-format", "journal"], "<4>about to run\n<3>bad\n"),
    (["--log-format", "journal", "--log-level", "error"], "<3>bad\n"),
    (["--log-format", "journal", "--log-level", "debug"], "<7>details\n<4>about to run\n<3>bad\n"),
])
def test_main_logs_in_the_format_and_level_asked(tmp_path, capsys, monkeypatch, argv, expected):
    def run(_self: object) -> None:
        log = logging.getLogger("autoballoond")
        log.debug("details")
        log.warning("about to run")
        log.error("bad")

    monkeypatch.setattr(daemon.Daemon, "run", run)  # never reaches libvirt
    monkeypatch.setattr(daemon.signal, "signal", lambda *_: None)  # keep pytest's handlers
    rc = daemon.main(["--no-config", "--uri", "test:///default", "--pressure", "none",
                      "--control-socket", str(tmp_path / "c.sock"), *argv], env={})
    err = capsys.readouterr().err
    assert rc == 0
    lines = [ln for ln in err.splitlines(keepends=True)
             if not ln.startswith("<6>")]  # the daemon's own info lines
    assert "".join(lines) == expected


def test_main_defaults_to_json_lines_off_the_journal(tmp_path, capsys, monkeypatch):
    monkeypatch.setattr(daemon.Daemon, "run",
                        lambda _self: logging.getLogger("autoballoond").warning("w"))
    monkeypatch.setattr(daemon.signal, "signal", lambda *_: None)
    rc = daemon.main(["--no-config", "--uri", "test:///default", "--pressure", "none",
                      "--control-socket", str(tmp_path / "c.sock")],
                     env={"JOURNAL_STREAM": "1:2"})  # stderr here is not that stream
    err = capsys.readouterr().err
    assert rc == 0
    recs = [json.loads(line) for line in err.splitlines()]
    assert {"level": "WARNING", "msg": "w"}.items() <= recs[-1].items()
