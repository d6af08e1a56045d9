"""The lying guest's flood script (rig.bench.liar), run by a real shell against a fake
debugfs: it floods until the stop file appears, and says how much."""

import subprocess
import time
from pathlib import Path

from rig.bench.liar import FLOOD_BURST, FLOOD_ERROR, STOP_FILE, flood_script, flooded


def _script_in(tmp_path: Path, max_s: float) -> str:
    """The script with its guest paths moved under tmp_path."""
    return (flood_script(max_s).replace("/sys/kernel/debug", str(tmp_path / "debug"))
            .replace(STOP_FILE, str(tmp_path / "stop")).replace("mount -t", ": mount -t"))


def test_the_flood_writes_bursts_until_stopped(tmp_path: Path):
    dev = tmp_path / "debug" / "virtio0"
    dev.mkdir(parents=True)
    (dev / "msg_flood").write_text("")
    proc = subprocess.Popen(["sh", "-c", _script_in(tmp_path, 30)], stdout=subprocess.PIPE,
                            text=True)
    deadline = time.monotonic() + 5
    while not (dev / "msg_flood").read_text() and time.monotonic() < deadline:
        time.sleep(0.05)  # polls for its first burst
    assert (dev / "msg_flood").read_text().strip() == str(FLOOD_BURST)
    (tmp_path / "stop").write_text("")
    out, _ = proc.communicate(timeout=10)
    assert proc.returncode == 0
    n = flooded(out)
    assert n is not None and n > 0 and n % FLOOD_BURST == 0


def test_without_the_test_driver_it_fails(tmp_path: Path):
    (tmp_path / "debug" / "virtio0").mkdir(parents=True)  # no msg_flood
    r = subprocess.run(["sh", "-c", _script_in(tmp_path, 5)], capture_output=True, text=True,
                       timeout=10)
    assert r.returncode == 2 and r.stdout.startswith(FLOOD_ERROR)
    assert flooded(r.stdout) is None
