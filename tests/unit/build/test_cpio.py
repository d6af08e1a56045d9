import shutil
import stat
import subprocess
from pathlib import Path

from rig.build.cpio import CpioEntry, tree_entries, write_cpio


def test_cpio_round_trip(tmp_path: Path):
    root = tmp_path / "root"
    (root / "bin").mkdir(parents=True)
    (root / "bin" / "busybox").write_bytes(b"#!x" * 5)
    (root / "bin" / "busybox").chmod(0o755)
    (root / "init").symlink_to("bin/busybox")
    entries = tree_entries(root)
    assert [e.name for e in entries] == ["bin", "bin/busybox", "init"]
    entries.append(CpioEntry("dev/console", stat.S_IFCHR | 0o600, rdev=(5, 1)))
    out = tmp_path / "initrd.img"
    write_cpio(entries, out)
    data = out.read_bytes()
    assert data.startswith(b"070701")
    assert b"TRAILER!!!" in data
    assert len(data) % 4 == 0
    write_cpio(entries, tmp_path / "again.img")
    assert (tmp_path / "again.img").read_bytes() == data  # reproducible
    if shutil.which("cpio"):
        listing = subprocess.run(["cpio", "-itv"], input=data, capture_output=True,
                                 check=True).stdout.decode()
        assert "init -> bin/busybox" in listing
        assert "5,   1" in listing and "dev/console" in listing
        assert "-rwxr-xr-x" in listing
