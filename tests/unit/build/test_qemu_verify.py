import json
from pathlib import Path

import pytest

from rig.build import qemu_verify as qv

# ---- checks of the built binary ----------------------------------------------------------

DEVICE_HELP = """\
Controller/Bridge/Hub devices:
name "pcie-root-port", bus PCI
name "qemu-xhci", bus PCI

Input devices:
name "isa-serial", bus ISA

Misc devices:
name "virtio-balloon-pci", bus PCI, alias "virtio-balloon"
name "virtio-rng-pci", bus PCI
name "virtio-serial-pci", bus PCI, alias "virtio-serial"

Network devices:
name "virtio-net-pci", bus PCI, alias "virtio-net"

Storage devices:
name "virtio-blk-pci", bus PCI, alias "virtio-blk"
"""


def test_missing_devices():
    assert qv.missing_devices(DEVICE_HELP) == []
    without_balloon = DEVICE_HELP.replace('name "virtio-balloon-pci"', 'name "other"')
    assert qv.missing_devices(without_balloon) == ["virtio-balloon-pci"]


def test_parse_version_output():
    out = ("QEMU emulator version 7.2.22 (autoballoon k, Debian 1:7.2+dfsg-7+deb12u18)\n"
           "Copyright (c) 2003-2022 Fabrice Bellard and the QEMU Project developers\n")
    assert qv.parse_version_output(out) == ("7.2.22", "autoballoon k, Debian 1:7.2+dfsg-7+deb12u18")
    assert qv.parse_version_output("QEMU emulator version 7.2.0\n") == ("7.2.0", "")
    assert qv.parse_version_output("nope") is None


def _transcript(*extra: dict) -> str:
    lines = [{"QMP": {"version": {}, "capabilities": []}}]
    lines += [{"return": {}, "id": "qmp_capabilities"},
              {"return": {"qemu": {"major": 7}}, "id": "query-version"},
              {"return": {"actual": 134217728}, "id": "query-balloon"},
              {"return": {}, "id": "quit"},
              {"timestamp": {}, "event": "SHUTDOWN", "data": {}}]
    lines += list(extra)
    return "\n".join(json.dumps(m) for m in lines) + "\n"


def test_qmp_smoke_input_asks_every_command():
    sent = [json.loads(line) for line in qv.qmp_smoke_input().splitlines()]
    assert [m["execute"] for m in sent] == list(qv.QMP_SMOKE_COMMANDS)
    assert sent[0]["execute"] == "qmp_capabilities" and sent[-1]["execute"] == "quit"


def test_check_qmp_transcript():
    answers = qv.check_qmp_transcript(_transcript())
    assert answers["query-balloon"] == {"actual": 134217728}
    with pytest.raises(ValueError, match="No balloon"):
        qv.check_qmp_transcript(_transcript().replace(
            '{"return": {"actual": 134217728}, "id": "query-balloon"}',
            '{"error": {"class": "DeviceNotActive", "desc": "No balloon device"}, '
            '"id": "query-balloon"}'))
    with pytest.raises(ValueError, match="quit"):
        qv.check_qmp_transcript(_transcript().replace('"id": "quit"', '"id": "other"'))
    with pytest.raises(ValueError, match="greeting"):
        qv.check_qmp_transcript("qemu: could not load PC BIOS 'bios-256k.bin'\n")


def test_smoke_argv_is_a_nodefaults_q35_machine_with_a_balloon():
    argv = qv.smoke_argv(Path("/p/bin/qemu-system-x86_64"))
    assert argv[0] == "/p/bin/qemu-system-x86_64"
    assert "-nodefaults" in argv and "-L" not in argv
    assert "q35,accel=tcg" in argv
    assert any(a.startswith("virtio-balloon-pci") for a in argv)
    assert argv[-2:] == ["-qmp", "stdio"]
