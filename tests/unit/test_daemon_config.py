import pytest
from autoballoon import model as m
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
