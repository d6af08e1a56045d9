"""autoballoond's configuration: every bad value is one ConfigError line naming its key and
what is allowed (exit status 2 from main()); the PSI thresholds are settable."""

from __future__ import annotations

import pytest
from autoballoon.config import ConfigError, load_config


def daemon_table(body: str) -> str:
    return "[daemon]\n" + body + "\n"


@pytest.mark.parametrize(("body", "key"), [
    ('tick_s = "x"', "tick_s"),
    ("tick_s = true", "tick_s"),
    ("stats_period_s = [1]", "stats_period_s"),
    ('pressure_min_interval_s = "fast"', "pressure_min_interval_s"),
    ("uri = 1", "uri"),
    ("policy = 3", "policy"),
    ("metadata_ns = {a = 1}", "metadata_ns"),
    ("name_pattern = 5", "name_pattern"),
    ('name_pattern = "prod-("', "name_pattern"),
    ("pressure_kind = 1", "pressure_kind"),
    ('pressure_kind = "psi"', "pressure_kind"),
    ("pressure_path = false", "pressure_path"),
    ("timeline = 2", "timeline"),
    ("control_socket = 2", "control_socket"),
    ('control_socket = ""', "control_socket"),
    ('uri = ""', "uri"),
    ("policy_params = 3", "policy_params"),
])
def test_a_value_of_the_wrong_type_is_one_line_naming_its_key(body, key):
    with pytest.raises(ConfigError) as e:
        load_config(daemon_table(body), {})
    msg = str(e.value)
    assert key in msg and "\n" not in msg, msg


@pytest.mark.parametrize("text", [
    '[deamon]\npolicy = "seed"\n',
    '[daemon]\npolicy = "seed"\n[pressure]\nkind = "psi-host"\n',
    'policy = "seed"\n',
    "daemon = 3\n",
])
def test_anything_but_the_daemon_table_is_refused(text):
    with pytest.raises(ConfigError, match=r"unknown table \[\w+\]|outside the \[daemon\] table|"
                                          r"daemon must be a table"):
        load_config(text, {})


@pytest.mark.parametrize(("params", "key"), [
    ("{ hysteresis_s = nan }", "hysteresis_s"),
    ("{ hysteresis_s = inf }", "hysteresis_s"),
    ("{ hysteresis_s = -0.5 }", "hysteresis_s"),
    ("{ step_mib = -1 }", "step_mib"),
])
def test_policy_parameters_are_finite_and_not_negative(params, key):
    with pytest.raises(ConfigError, match=f"parameter {key} must be") as e:
        load_config(daemon_table(f'policy = "seed"\npolicy_params = {params}'), {})
    assert "\n" not in str(e.value)


def test_a_negative_step_in_a_list_is_refused_too():
    with pytest.raises(ConfigError, match="parameter steps_mib must be"):
        load_config(daemon_table("policy_params = { steps_mib = [16, -32, 64, 128] }"), {})


@pytest.mark.parametrize("value", ["nan", "inf", "-1.0"])
def test_the_pressure_interval_is_finite_and_not_negative(value):
    with pytest.raises(ConfigError, match="pressure_min_interval_s must be"):
        load_config(daemon_table(f"pressure_min_interval_s = {value}"), {})


def test_psi_thresholds_and_window_are_config_keys_passed_to_the_pressure_source():
    cfg = load_config(daemon_table(
        'pressure_kind = "psi-host"\npressure_window_us = 4000000\n'
        'pressure_thresholds = { low = "some 20000", critical = "full 900000" }'), {})
    pc = cfg.pressure_config()
    assert pc is not None
    assert pc.psi_triggers() == {
        "low": "some 20000 4000000",
        "between": "some 150000 4000000",  # the defaults for the others
        "medium": "full 100000 4000000",
        "critical": "full 900000 4000000",
    }
    default = load_config(daemon_table('pressure_kind = "psi-cgroup"'), {}).pressure_config()
    assert default is not None and default.psi_triggers()["low"] == "some 50000 2000000"


@pytest.mark.parametrize(("body", "key"), [
    ('pressure_thresholds = { low = "sometimes 5" }', "pressure_thresholds.low"),
    ('pressure_thresholds = { low = "some 0" }', "pressure_thresholds.low"),
    ('pressure_thresholds = { low = 50000 }', "pressure_thresholds.low"),
    ('pressure_thresholds = { lowish = "some 50000" }', "pressure_thresholds"),
    ('pressure_thresholds = "some 5"', "pressure_thresholds"),
    ('pressure_thresholds = { low = "some 3000000" }', "pressure_thresholds.low"),
    ("pressure_window_us = 3000000", "pressure_window_us"),
    ("pressure_window_us = 20000000", "pressure_window_us"),
    ("pressure_window_us = 2.5", "pressure_window_us"),
])
def test_bad_psi_settings_are_one_line_naming_the_key(body, key):
    with pytest.raises(ConfigError) as e:
        load_config(daemon_table('pressure_kind = "psi-host"\n' + body), {})
    msg = str(e.value)
    assert msg.startswith(key) and "\n" not in msg, msg


def test_psi_settings_with_vmpressure_are_refused_not_ignored():
    with pytest.raises(ConfigError, match="pressure_thresholds .*psi-cgroup or psi-host"):
        load_config(daemon_table('pressure_thresholds = { low = "some 20000" }'),
                    {"pressure_kind": "vmpressure"})


@pytest.mark.parametrize("content", [
    b'[daemon]\ntick_s = "x"\n',
    b"[deamon]\n",
    b"[daemon]\npolicy_params = { hysteresis_s = nan }\n",
    b"\xff\xfe[daemon]\n",
])
def test_main_exits_2_with_one_line(tmp_path, capsys, monkeypatch, content):
    from autoballoon import daemon

    # A config that got through must never start a daemon against this host's libvirt.
    def must_not_run(_self: object) -> None:
        raise AssertionError("the daemon started")

    monkeypatch.setattr(daemon.Daemon, "run", must_not_run)
    monkeypatch.setattr(daemon.signal, "signal", lambda *_: None)  # keep pytest's handlers
    conf = tmp_path / "a.toml"
    conf.write_bytes(content)
    rc = daemon.main(["--config", str(conf), "--uri", "test:///default", "--pressure", "none",
                      "--control-socket", str(tmp_path / "c.sock")])
    err = capsys.readouterr().err.strip()
    assert rc == 2
    assert len(err.splitlines()) == 1 and err.startswith("autoballoond: "), err


@pytest.mark.parametrize("where", ["missing/dir/t.jsonl", "."])
def test_a_timeline_that_cannot_be_opened_exits_2_with_one_line(tmp_path, capsys, monkeypatch,
                                                                where):
    from autoballoon import daemon

    def must_not_run(_self: object) -> None:
        raise AssertionError("the daemon started")

    monkeypatch.setattr(daemon.Daemon, "run", must_not_run)
    monkeypatch.setattr(daemon.signal, "signal", lambda *_: None)  # keep pytest's handlers
    timeline = tmp_path / where
    rc = daemon.main(["--no-config", "--uri", "test:///default", "--pressure", "none",
                      "--timeline", str(timeline),
                      "--control-socket", str(tmp_path / "c.sock")])
    err = capsys.readouterr().err.strip()
    assert rc == 2
    assert len(err.splitlines()) == 1, err
    assert err.startswith(f"autoballoond: cannot append to the timeline {timeline}: "), err
    assert not (tmp_path / "c.sock").exists() and not (tmp_path / "c.sock.lock").exists()
