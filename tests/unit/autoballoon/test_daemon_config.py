import pytest
from autoballoon import events as m
from autoballoon.control import answer
from autoballoon.daemon import ConfigError, _event_fields, load_config


def test_config_file_then_flags():
    text = '[daemon]\npolicy = "seed"\ntick_s = 0.5\npressure_kind = "psi-host"\n'
    cfg = load_config(text, {"policy": None, "uri": "qemu+ssh://h/system"})
    assert (cfg.policy, cfg.tick_s, cfg.uri) == ("seed", 0.5, "qemu+ssh://h/system")
    assert load_config(text, {"policy": "auto"}).policy == "auto"
    assert load_config("", {"pressure_kind": "none"}).pressure_config() is None


@pytest.mark.parametrize(("text", "overrides", "message"), [
    ("[daemon]\npolcy = 'auto'\n", {}, "unknown config key 'polcy'"),
    ("", {"policy": "greedy"}, "policy 'greedy' is unknown"),
    ("", {"tick_s": 0.0}, "tick_s must be"),
    ("[daemon\n", {}, "not valid TOML"),
])
def test_bad_config_is_one_clear_error(text, overrides, message):
    with pytest.raises(ConfigError, match=message):
        load_config(text, overrides)


def test_timeline_fields():
    assert _event_fields(m.GuestPressure(1.0, "vm", "low", 2)) == {
        "event": "GuestPressure", "t": 1.0, "vm": "vm", "level": "low", "messages": 2}
    assert _event_fields(m.VmAdded(0, m.VmInfo("a", 512), 512))["vm"] == {
        "name": "a", "max_mib": 512, "floor_mib": None}


def test_control_requests_never_raise():
    def echo(req):
        return {"ok": True, "req": req}

    assert answer(echo, b'{"cmd": "show"}') == {"ok": True, "req": {"cmd": "show"}}
    assert answer(echo, b"garbage")["ok"] is False
    assert answer(echo, b"[1, 2]")["ok"] is False


def test_policy_params_from_file_and_flags():
    from autoballoon.daemon import parse_assignments

    text = '[daemon]\npolicy = "seed"\npolicy_params = {step_mib = 64, hysteresis_s = 10}\n'
    flags = parse_assignments(["hysteresis_s=0", "min_host_level=medium"])
    cfg = load_config(text, {"policy_params": flags})
    assert cfg.policy_params == {"step_mib": 64, "hysteresis_s": 0, "min_host_level": "medium"}
    from autoballoon.policies import make_policy

    policy = make_policy(cfg.policy, cfg.policy_params)
    assert (policy.params.step_mib, policy.params.hysteresis_s) == (64, 0.0)
    assert parse_assignments(["steps_mib=[8, 16, 32, 64]"]) == {"steps_mib": [8, 16, 32, 64]}
    auto = make_policy("auto", {"steps_mib": [8, 16, 32, 64]})
    assert auto.params.steps_mib == (8, 16, 32, 64)


@pytest.mark.parametrize(("params", "message"), [
    ({"stepmib": 1}, "policy seed has no parameter 'stepmib'"),
    ({"step_mib": "big"}, "step_mib must be an integer"),
    ({"step_mib": True}, "step_mib must be an integer"),
    ({"hysteresis_s": "x"}, "hysteresis_s must be a number"),
])
def test_bad_policy_params_are_one_clear_error(params, message):
    with pytest.raises(ConfigError, match=message):
        load_config('[daemon]\npolicy = "seed"\n', {"policy_params": params})


def test_assignment_syntax():
    from autoballoon.daemon import parse_assignments

    with pytest.raises(ConfigError, match="not NAME=VALUE"):
        parse_assignments(["step_mib"])
    assert parse_assignments(["level=low"]) == {"level": "low"}


def test_a_too_long_control_socket_path_is_one_clear_error(tmp_path):
    from pathlib import Path

    from autoballoon.control import ControlServer

    with pytest.raises(OSError, match="longer than 107 bytes"):
        ControlServer(Path("/tmp") / ("x" * 120), lambda r: r).start()
