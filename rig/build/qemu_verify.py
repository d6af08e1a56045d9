"""Checks of a built QEMU binary: its version string, its devices, and a q35 machine.

The pure helpers read `-version` and `-device help` output and a QMP transcript; verify()
runs the staged binary: `-version` must name our package version, `-device help` must
list every REQUIRED_DEVICES entry, and a q35 machine like the ones libvirt starts (root
ports, xHCI, balloon, net, serial) must answer QMP and quit, finding its firmware
without -L. qemu_build calls it before writing the manifest.
"""

from __future__ import annotations

import json
import re
import subprocess
from collections.abc import Iterable
from pathlib import Path

from rig.errors import RigError
from rig.proc import run

# Device names the built binary must list in `-device help`.
REQUIRED_DEVICES: tuple[str, ...] = (
    "pcie-root-port",
    "qemu-xhci",
    "virtio-blk-pci",
    "virtio-net-pci",
    "virtio-serial-pci",
    "virtio-balloon-pci",
    "virtio-rng-pci",
    "isa-serial",
)

FIRMWARE_PROBE = "bios-256k.bin"
VERIFY_TIMEOUT_S = 60


# ---- pure helpers -----------------------------------------------------------------------

def listed_devices(help_text: str) -> set[str]:
    """Device names from `-device help` (lines like `name "virtio-blk-pci", bus PCI`)."""
    return set(re.findall(r'^\s*name "([^"]+)"', help_text, re.MULTILINE))


def missing_devices(help_text: str, required: Iterable[str] = REQUIRED_DEVICES) -> list[str]:
    have = listed_devices(help_text)
    return [d for d in required if d not in have]


def parse_version_output(text: str) -> tuple[str, str] | None:
    """`QEMU emulator version 7.2.22 (pkg)` -> ("7.2.22", "pkg")."""
    m = re.search(r"QEMU emulator version (\S+)(?: \((.*)\))?", text)
    if not m:
        return None
    return m.group(1), m.group(2) or ""


QMP_SMOKE_COMMANDS: tuple[str, ...] = ("qmp_capabilities", "query-version", "query-balloon",
                                       "quit")


def qmp_smoke_input() -> str:
    return "".join(json.dumps({"execute": c, "id": c}) + "\n" for c in QMP_SMOKE_COMMANDS)


def check_qmp_transcript(text: str) -> dict[str, object]:
    """Every smoke command answered without error; returns the `return` values by command.

    Raises ValueError naming what is wrong.
    """
    answers: dict[str, object] = {}
    greeted = False
    for line in text.splitlines():
        line = line.strip()
        if not line.startswith("{"):
            continue
        try:
            msg = json.loads(line)
        except ValueError:
            continue
        if "QMP" in msg:
            greeted = True
        elif "error" in msg:
            err = msg["error"]
            desc = err.get("desc", err) if isinstance(err, dict) else err
            raise ValueError(f"QMP {msg.get('id', '?')} failed: {desc}")
        elif "return" in msg and "id" in msg:
            answers[str(msg["id"])] = msg["return"]
    if not greeted:
        raise ValueError("no QMP greeting")
    missing = [c for c in QMP_SMOKE_COMMANDS if c not in answers]
    if missing:
        raise ValueError(f"no QMP answer to {', '.join(missing)}")
    return answers


def smoke_argv(binary: Path) -> list[str]:
    """A q35 machine like the ones libvirt starts: root port, xHCI, balloon, net, console."""
    return [
        str(binary), "-nodefaults", "-machine", "q35,accel=tcg", "-display", "none", "-S",
        "-device", "pcie-root-port,id=rp1,chassis=1",
        "-device", "pcie-root-port,id=rp2,chassis=2",
        "-device", "pcie-root-port,id=rp3,chassis=3",
        "-device", "qemu-xhci,bus=rp1",
        "-device", "virtio-balloon-pci,bus=rp2",
        "-netdev", "user,id=n0", "-device", "virtio-net-pci,netdev=n0,bus=rp3",
        "-chardev", "null,id=con0", "-device", "isa-serial,chardev=con0",
        "-serial", "none", "-qmp", "stdio",
    ]


# ---- adapters ---------------------------------------------------------------------------

def verify(binary: Path, pkgversion: str, log: Path) -> str:
    """Check a built binary; returns its QEMU version. Raises RigError saying what failed."""
    version_out = run([binary, "-machine", "none", "-version"])
    parsed = parse_version_output(version_out)
    if parsed is None or parsed[1] != pkgversion:
        raise RigError(f"{binary} -version printed {version_out.strip()!r}, expected package"
                       f" {pkgversion!r}")
    missing = missing_devices(run([binary, "-nodefaults", "-machine", "none",
                                   "-device", "help"]))
    if missing:
        raise RigError(f"{binary} lacks devices {', '.join(missing)}; fix DEVICES in"
                       " rig/build/qemu_build.py")
    argv = smoke_argv(binary)
    with log.open("a") as f:
        f.write(f"$ {' '.join(argv)}\n")
    try:
        proc = subprocess.run(argv, input=qmp_smoke_input(), capture_output=True, text=True,
                              timeout=VERIFY_TIMEOUT_S, check=False, cwd="/")
    except subprocess.TimeoutExpired as e:
        raise RigError(f"{binary} did not quit within {VERIFY_TIMEOUT_S} s of QMP quit") from e
    with log.open("a") as f:
        f.write(proc.stdout + proc.stderr)
    if proc.returncode != 0:
        tail = " | ".join(proc.stderr.strip().splitlines()[-2:])
        hint = f" (firmware: is {FIRMWARE_PROBE} installed? seabios)" if "BIOS" in tail else ""
        raise RigError(f"{binary} failed to start a q35 machine: {tail}{hint}; see {log}")
    try:
        check_qmp_transcript(proc.stdout)
    except ValueError as e:
        raise RigError(f"{binary} q35 smoke test: {e}; see {log}") from e
    return parsed[0]
