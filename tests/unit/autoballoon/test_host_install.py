"""What a host installs: the systemd unit (checked by ``systemd-analyze verify`` where it
exists, and parsed), the example config (every key, commented with its true default),
host/pyproject.toml (the packages and entry points of host/ alone), and host/ importing
nothing of the rig nor any third-party module it does not declare."""

from __future__ import annotations

import ast
import dataclasses
import re
import shutil
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest
from autoballoon.config import DEFAULT_CONFIG, KEY_TYPES, DaemonConfig, load_config

from tests import FIXTURES

REPO = FIXTURES.parent.parent
HOST = REPO / "host"
UNIT = HOST / "systemd" / "autoballoond.service"
EXAMPLE = HOST / "systemd" / "autoballoond.toml"


def unit_settings(text: str) -> dict[str, dict[str, list[str]]]:
    """A unit file's sections and settings (a key may repeat: every value, in order)."""
    out: dict[str, dict[str, list[str]]] = {}
    section = ""
    for raw in text.splitlines():
        line = raw.strip()
        if not line or line[0] in "#;":
            continue
        if line.startswith("[") and line.endswith("]"):
            section = line[1:-1]
            out.setdefault(section, {})
            continue
        key, sep, value = line.partition("=")
        assert sep, f"not a setting: {raw!r}"
        out[section].setdefault(key.strip(), []).append(value.strip())
    return out


def test_the_unit_is_a_notify_service_with_a_watchdog():
    s = unit_settings(UNIT.read_text())
    service = s["Service"]
    assert service["Type"] == ["notify"] and service["NotifyAccess"] == ["main"]
    (watchdog,) = service["WatchdogSec"]
    assert int(watchdog) >= 10  # the loop passes at least once a second; margin for libvirt
    assert service["Restart"] == ["on-failure"]
    assert service["RestartPreventExitStatus"] == ["2"]  # configuration errors
    assert service["RuntimeDirectory"] == ["autoballoon"]
    exec_start = service["ExecStart"][0].split()
    assert exec_start[0].endswith("/autoballoond")
    assert exec_start[1:] == ["--config", str(DEFAULT_CONFIG)]
    after = " ".join(s["Unit"]["After"]).split()
    assert {"libvirtd.service", "virtqemud.service", "machine.slice"} <= set(after)
    assert "libvirtd.service" in s["Unit"]["Wants"]
    assert s["Install"]["WantedBy"] == ["multi-user.target"]


def test_the_unit_lets_the_daemon_reach_what_it_needs():
    service = unit_settings(UNIT.read_text())["Service"]
    # its control socket lives in the RuntimeDirectory
    assert Path(DaemonConfig().control_socket).parent == Path("/run") / "autoballoon"
    # PSI triggers and vmpressure registrations are writes to /sys/fs/cgroup
    assert service.get("ProtectControlGroups", ["no"]) == ["no"]
    # QEMU runs as another user: its /proc entries must stay visible (VmRss)
    assert "ProtectProc" not in service
    # no User=: root, as libvirt's qemu:///system socket and the cgroup files require
    assert "User" not in service and "DynamicUser" not in service
    families = service["RestrictAddressFamilies"][0].split()
    assert {"AF_UNIX", "AF_INET", "AF_INET6"} <= set(families)


NO_ANALYZE = pytest.mark.skipif(
    shutil.which("systemd-analyze") is None,
    reason="systemd-analyze is not installed (package systemd): the unit is only parsed here")


@NO_ANALYZE
def test_systemd_analyze_verify_accepts_the_unit(tmp_path):
    # verify checks that ExecStart exists: point it at a file that does, keep the rest
    text = re.sub(r"^ExecStart=\S+", f"ExecStart={sys.executable}", UNIT.read_text(),
                  flags=re.M)
    unit = tmp_path / UNIT.name
    unit.write_text(text)
    r = subprocess.run(["systemd-analyze", "verify", "--man=no", str(unit)],
                       capture_output=True, text=True, timeout=60, cwd=tmp_path)
    # verify exits 0 on settings it ignores, only saying so: any line naming the unit fails
    about_ours = [line for line in (r.stdout + r.stderr).splitlines() if UNIT.name in line]
    assert r.returncode == 0 and about_ours == [], r.stdout + r.stderr


@NO_ANALYZE
def test_systemd_analyze_verify_would_catch_a_broken_unit(tmp_path):
    """The check above is worth something: a setting verify ignores is reported."""
    text = re.sub(r"^WatchdogSec=.*$", "WatchdogSec=soon", UNIT.read_text(), flags=re.M)
    text = re.sub(r"^ExecStart=\S+", f"ExecStart={sys.executable}", text, flags=re.M)
    unit = tmp_path / UNIT.name
    unit.write_text(text)
    r = subprocess.run(["systemd-analyze", "verify", "--man=no", str(unit)],
                       capture_output=True, text=True, timeout=60, cwd=tmp_path)
    assert any(UNIT.name in line and "soon" in line
               for line in (r.stdout + r.stderr).splitlines()), r.stdout + r.stderr


# -- the example configuration ------------------------------------------------------------

EXAMPLE_LINE = re.compile(r"^# ([a-z_]+) = (.*)$")


def example_keys() -> dict[str, tuple[str, bool]]:
    """Each key's commented line in the example: (its TOML line, whether it is marked as
    an example of a key unset by default)."""
    out: dict[str, tuple[str, bool]] = {}
    for line in EXAMPLE.read_text().splitlines():
        m = EXAMPLE_LINE.match(line)
        if m and m[1] in KEY_TYPES:
            assert m[1] not in out, f"{m[1]} appears twice in the example"
            out[m[1]] = (line[2:], "default: unset" in line)
    return out


def test_the_example_names_every_key():
    assert set(example_keys()) == {f.name for f in dataclasses.fields(DaemonConfig)}


def test_the_example_shows_the_true_defaults():
    keys = example_keys()
    defaults = "\n".join(line for line, unset in keys.values() if not unset)
    assert load_config(f"[daemon]\n{defaults}\n", {}) == load_config("", {})
    for name, (_line, unset) in keys.items():  # "unset" exactly for the None defaults
        assert unset == (getattr(DaemonConfig(), name) is None), name


def test_the_example_values_are_all_valid_together():
    keys = example_keys()
    load_config("[daemon]\n" + "\n".join(line for line, _ in keys.values()) + "\n", {})
    load_config(EXAMPLE.read_text(), {})  # as shipped: all commented out


def test_the_defaults_fit_a_stock_libvirt_host():
    c = load_config("", {})
    pc = c.pressure_config()
    assert c.uri == "qemu:///system" and c.metadata_ns is None and c.name_pattern is None
    assert pc is not None and pc.kind == "psi-cgroup"
    assert pc.resolved_path == Path("/sys/fs/cgroup/machine.slice")  # libvirt's partition
    v1 = load_config("", {"pressure_kind": "vmpressure"}).pressure_config()
    assert v1 is not None and v1.resolved_path == Path("/sys/fs/cgroup/memory/machine.slice")


# -- host/ on its own ---------------------------------------------------------------------

def host_imports() -> dict[str, set[str]]:
    """Every top-level module each Python file under host/ imports (anywhere in it)."""
    out: dict[str, set[str]] = {}
    for path in sorted(HOST.rglob("*.py")):
        names: set[str] = set()
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            if isinstance(node, ast.Import):
                names |= {a.name.split(".")[0] for a in node.names}
            elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                names.add(node.module.split(".")[0])
        out[str(path.relative_to(REPO))] = names
    return out


def test_host_imports_nothing_of_the_rig():
    imports = host_imports()
    assert "host/autoballoon/daemon.py" in imports  # the scan sees the package
    assert {f: sorted(n) for f, n in imports.items() if "rig" in n} == {}


def test_host_imports_only_the_stdlib_and_its_declared_dependencies():
    project = tomllib.loads((HOST / "pyproject.toml").read_text())["project"]
    declared = {re.split(r"[<>=!~ ]", d)[0].lower() for d in project["dependencies"]}
    assert declared == {"libvirt-python", "prometheus_client"}
    provides = {"libvirt", "libvirt_qemu", "prometheus_client", "autoballoon"}
    foreign = {f: sorted(n - set(sys.stdlib_module_names) - provides - {"__future__"})
               for f, n in host_imports().items()}
    assert {f: n for f, n in foreign.items() if n} == {}


def test_host_pyproject_installs_the_daemon_and_its_control_tool():
    doc = tomllib.loads((HOST / "pyproject.toml").read_text())
    assert doc["project"]["scripts"] == {"autoballoond": "autoballoon.daemon:main",
                                         "autoballoonctl": "autoballoon.ctl:main"}
    packages = doc["tool"]["setuptools"]["packages"]
    on_disk = {".".join(p.parent.relative_to(HOST).parts)
               for p in (HOST / "autoballoon").rglob("__init__.py")}
    assert set(packages) == on_disk
    for dep in doc["project"]["dependencies"]:
        assert "==" not in dep, f"{dep}: a host has its own libvirt: lower bounds only"
    top = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]["dependencies"]
    assert any(d.startswith("prometheus_client==") for d in top)  # pinned for development
