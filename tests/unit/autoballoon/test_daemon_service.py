"""autoballoond as a service: its default config file, the balloon stats period it sets on
each VM itself (through the adapter, recorded by the fake one), exit status 2 for what
the operator must fix, and the rig still starting it with everything it needs."""

from __future__ import annotations

import logging
from pathlib import Path

import pytest
from autoballoon import daemon
from autoballoon.config import ConfigError, DaemonConfig, read_config_text
from autoballoon.events import HostPressure
from autoballoon.saved_state import SavedState

from rig.bench.daemon_proc import DaemonProcess
from tests.unit.autoballoon.fake_libvirt import FakeDomain, FakeHost, Harness

# -- the config file ----------------------------------------------------------------------


def test_a_missing_default_file_is_fine_a_missing_explicit_one_is_not(tmp_path):
    default = tmp_path / "autoballoond.toml"
    assert read_config_text(None, default) == ("", None)
    with pytest.raises(ConfigError, match=r"config file .*/given\.toml does not exist: "):
        read_config_text(tmp_path / "given.toml", default)
    default.write_text('[daemon]\npolicy = "seed"\n')
    assert read_config_text(None, default) == ('[daemon]\npolicy = "seed"\n', default)
    given = tmp_path / "given.toml"
    given.write_text("")
    assert read_config_text(given, default) == ("", given)  # --config wins
    assert read_config_text(None, None) == ("", None)  # --no-config


class Ran(Exception):
    """Daemon.run was reached: carries the config it would have run with."""


def run_main(argv: list[str], default: Path, monkeypatch: pytest.MonkeyPatch
             ) -> DaemonConfig | int:
    """main() up to the loop (never reached: no libvirt here); the config, or the exit."""
    def instead(self: daemon.Daemon) -> None:
        raise Ran(self.config)

    monkeypatch.setattr(daemon.Daemon, "run", instead)
    monkeypatch.setattr(daemon.signal, "signal", lambda *_: None)  # keep pytest's handlers
    try:
        return daemon.main(argv, default_config=default, env={})
    except Ran as r:
        return r.args[0]


def test_main_reads_the_default_file_unless_told_not_to(tmp_path, monkeypatch):
    default = tmp_path / "autoballoond.toml"
    default.write_text('[daemon]\npolicy = "seed"\ntick_s = 0.5\n')
    base = ["--uri", "test:///default", "--pressure", "none",
            "--control-socket", str(tmp_path / "c.sock")]
    cfg = run_main(base, default, monkeypatch)
    assert isinstance(cfg, DaemonConfig) and (cfg.policy, cfg.tick_s) == ("seed", 0.5)
    cfg = run_main([*base, "--policy", "auto"], default, monkeypatch)  # flags win
    assert isinstance(cfg, DaemonConfig) and (cfg.policy, cfg.tick_s) == ("auto", 0.5)
    cfg = run_main([*base, "--no-config"], default, monkeypatch)
    assert isinstance(cfg, DaemonConfig) and (cfg.policy, cfg.tick_s) == ("auto", 1.0)
    default.unlink()
    cfg = run_main(base, default, monkeypatch)  # no default file: built-in defaults
    assert isinstance(cfg, DaemonConfig) and cfg.policy == "auto"


def test_main_exits_2_for_a_missing_explicit_config(tmp_path, monkeypatch, capsys):
    rc = run_main(["--config", str(tmp_path / "nope.toml"), "--pressure", "none",
                   "--control-socket", str(tmp_path / "c.sock")], tmp_path / "d.toml",
                  monkeypatch)
    err = capsys.readouterr().err.strip()
    assert rc == 2 and len(err.splitlines()) == 1
    assert err.startswith(f"autoballoond: config file {tmp_path / 'nope.toml'} does not exist")


def test_main_exits_2_with_one_line_when_the_pressure_source_cannot_open(tmp_path, capsys,
                                                                        monkeypatch):
    monkeypatch.setattr(daemon.signal, "signal", lambda *_: None)
    # the loop would connect to libvirt only after the pressure source opened
    monkeypatch.setattr(daemon.Daemon, "step", lambda *_: pytest.fail("the loop ran"))
    rc = daemon.main(["--no-config", "--uri", "test:///default", "--pressure", "psi-cgroup",
                      "--pressure-path", str(tmp_path / "no-such-cgroup"),
                      "--control-socket", str(tmp_path / "c.sock")], env={})
    err = capsys.readouterr().err.strip().splitlines()
    assert rc == 2
    assert err[-1].startswith("autoballoond: host pressure source: ")
    assert "no-such-cgroup" in err[-1]
    assert not (tmp_path / "c.sock").exists()


# -- the balloon stats period ------------------------------------------------------------

@pytest.mark.parametrize(("stats_period_s", "period"), [(0.5, 1), (1.0, 1), (2.5, 2), (60, 60)])
def test_the_stats_period_is_the_poll_period_in_whole_seconds(stats_period_s, period):
    assert DaemonConfig(stats_period_s=stats_period_s).balloon_period_s == period


def test_each_vm_gets_the_stats_period_when_added_and_again_after_a_reconnect():
    host = FakeHost.of(FakeDomain("a"), FakeDomain("b"))
    h = Harness(host).start()
    ids = {name: d.domid for name, d in host.domains.items()}
    assert sorted(host.period_log) == [("a", ids["a"], 1), ("b", ids["b"], 1)]
    host.period_log.clear()
    host.drop_connection()  # libvirtd restarts: the same boots are reported again
    h.advance(1.0)
    assert sorted(host.period_log) == [("a", ids["a"], 1), ("b", ids["b"], 1)]
    host.period_log.clear()
    host.drop_connection()
    new = host.reboot("a")  # during the outage: a new boot of a, a new VM to the daemon
    h.settle()
    h.advance(1.0)
    assert sorted(host.period_log) == [("a", new.domid, 1), ("b", ids["b"], 1)]


def test_a_failed_stats_period_is_a_warning_and_the_vm_is_still_managed(caplog):
    caplog.set_level(logging.WARNING)
    host = FakeHost.of(FakeDomain("a"))
    host.fail_period.add("a")  # e.g. a domain without a memballoon stats driver
    h = Harness(host).start()
    warnings = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert any("a: cannot set its balloon stats period to 1 s" in w for w in warnings)
    h.put(HostPressure(h.now(), "low"))
    h.settle()
    assert host.set_log == [("a", 992)]  # managed all the same


def test_a_vm_disabled_in_its_metadata_stays_out():
    """The metadata opt-out: autoballoonctl disable VM is kept in the domain's metadata, so
    a restarted daemon (or a definition carrying the element) leaves the VM alone."""
    host = FakeHost.of(FakeDomain("a", saved=SavedState(1024, 0, enabled=False)),
                       FakeDomain("b"))
    h = Harness(host).start()
    h.put(HostPressure(h.now(), "low"))
    h.settle()
    assert [name for name, _ in host.set_log] == ["b"]
    assert h.show()["vms"]["a"]["enabled"] is False


# -- the rig ------------------------------------------------------------------------------

def test_the_rig_passes_its_own_partition_and_reads_no_host_config(tmp_path):
    d = DaemonProcess(tmp_path, "auto", "/sys/fs/cgroup/memory/autoballoon.partition")
    argv = d.argv()
    assert "--no-config" in argv  # a host's /etc/autoballoon/autoballoond.toml is not the rig's
    i = argv.index("--pressure-path")
    assert argv[i - 2:i + 2] == ["--pressure", "vmpressure", "--pressure-path",
                                 "/sys/fs/cgroup/memory/autoballoon.partition"]
    none = DaemonProcess(tmp_path, "auto", None).argv()
    assert none[none.index("--pressure") + 1] == "none" and "--pressure-path" not in none
