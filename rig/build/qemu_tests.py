"""`rig qemu-tests`: QEMU's own qtests, built from the same patched source as the rig's QEMU.

The qtests that exercise virtio-balloon and the QMP schema: qos-test (its virtio-balloon
nodes, with our series' message-vq tests), qmp-test, qmp-cmd-test (every QMP command,
schema introspection), device-introspect-test and qom-test. They run against a build of
the same source, patches and configure flags as the rig's QEMU, with two more devices
that qtest's default `-M pc` machines expect (VGA, parallel port); the default NIC is
turned off by a wrapper. The build tree is kept per key, so a rerun only runs the tests.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path

from rig.build import qemu_build as qb
from rig.build import qemu_source as qs
from rig.build.patchseries import apply_series, list_patches
from rig.errors import RigError
from rig.layout import Layout
from rig.proc import run
from rig.progress import Progress

QTESTS = ("qos-test", "qmp-test", "qmp-cmd-test", "device-introspect-test", "qom-test")
EXTRA_DEVICES = ("VGA_PCI", "PARALLEL")
FIRMWARE_DIRS = ("usr/share/seabios", "usr/share/qemu", "usr/lib/ipxe/qemu")
TEST_TIMEOUT_S = 900


@dataclass(frozen=True)
class QtestResult:
    name: str
    passed: int
    failed: int
    skipped: int
    seconds: float
    returncode: int

    @property
    def ok(self) -> bool:
        return self.returncode == 0 and self.failed == 0 and self.passed > 0


def parse_tap(text: str) -> tuple[int, int, int]:
    """(passed, failed, skipped) from glib's TAP output."""
    passed = failed = skipped = 0
    for line in text.splitlines():
        m = re.match(r"^(not ok|ok)\b", line)
        if not m:
            continue
        if re.search(r"#\s*SKIP", line, re.IGNORECASE):
            skipped += 1
        elif m.group(1) == "ok":
            passed += 1
        else:
            failed += 1
    return passed, failed, skipped


def _prepare(layout: Layout, progress: Progress, version: str, key: str) -> Path:
    """The configured tree for `key` (created once); returns its build directory."""
    root = layout.cache / "qemu" / f"qtest-{key}"
    tree = root / "qemu"
    build = tree / "build"
    log = root / "prepare.log"
    if (build / "build.ninja").exists():
        return build
    for old in (layout.cache / "qemu").glob("qtest-*"):
        shutil.rmtree(old)  # one test tree at a time: each is ~1 GB
    root.mkdir(parents=True)
    src = qs.fetch_source(layout, version, log, progress)
    run(["dpkg-source", "-x", src / qs.dsc_name(version), tree], cwd=root, log=log)
    applied = apply_series(list_patches(layout.qemu_patches), tree, log,
                           "Debian's QEMU source")
    progress.info(f"applied {len(applied)} patch(es); configure (log: {log})")
    mak = tree / "configs" / "devices" / qb.TARGET / f"{qb.DEVICE_CONFIG_NAME}.mak"
    mak.write_text(qb.device_config_text((*qb.DEVICES, *EXTRA_DEVICES)))
    build.mkdir()
    run(qb.configure_argv(root / "unused-prefix", qb.package_version(key, version)),
        cwd=build, log=log, env={**os.environ, "PATH": qb.BUILD_PATH, "LC_ALL": "C"})
    # Run from the build tree, QEMU looks for firmware in its qemu-bundle.
    for d in FIRMWARE_DIRS:
        link = build / "qemu-bundle" / d
        link.parent.mkdir(parents=True, exist_ok=True)
        if not link.exists():
            link.symlink_to(Path("/") / d)
    return build


def run_qemu_tests(layout: Layout, progress: Progress) -> list[QtestResult]:
    version = qs.resolve_source_version(layout)
    key = qb.build_key(version, layout.qemu_patches)
    with progress.step(f"QEMU test tree for key {key}"):
        build = _prepare(layout, progress, version, key)
    with progress.step("build QEMU and the qtests"):
        log = build.parent.parent / "ninja.log"
        log.write_text("")
        qb.run_ninja(["ninja", "-C", str(build), qb.BINARY_NAME,
                      *(f"tests/qtest/{t}" for t in QTESTS)], cwd=build, log=log,
                     progress=progress)
    wrapper = build.parent.parent / "wrap" / qb.BINARY_NAME
    wrapper.parent.mkdir(exist_ok=True)
    wrapper.write_text("#!/bin/sh\n# the minimal build has no e1000, -M pc's default NIC\n"
                       f"exec {build / qb.BINARY_NAME} -nic none \"$@\"\n")
    wrapper.chmod(0o755)
    results = []
    for name in QTESTS:
        with progress.step(f"qtest {name}"):
            start = time.monotonic()
            try:
                proc = subprocess.run(
                    [build / "tests" / "qtest" / name, "--tap", "-k"], cwd=build,
                    env={**os.environ, "QTEST_QEMU_BINARY": str(wrapper),
                         "QTEST_QEMU_IMG": "/usr/bin/qemu-img", "MALLOC_PERTURB_": "37"},
                    capture_output=True, text=True, timeout=TEST_TIMEOUT_S, check=False)
            except subprocess.TimeoutExpired as e:
                raise RigError(f"qtest {name} ran over {TEST_TIMEOUT_S} s") from e
            (build.parent.parent / f"{name}.tap").write_text(proc.stdout + proc.stderr)
            passed, failed, skipped = parse_tap(proc.stdout)
            results.append(QtestResult(name, passed, failed, skipped,
                                       time.monotonic() - start, proc.returncode))
            progress.info(f"{name}: {passed} passed, {failed} failed, {skipped} skipped")
    return results


def table(results: list[QtestResult]) -> str:
    rows = [("qtest", "passed", "failed", "skipped", "seconds")]
    rows += [(r.name, str(r.passed), str(r.failed), str(r.skipped), f"{r.seconds:.1f}")
             for r in results]
    w = [max(len(r[i]) for r in rows) for i in range(5)]
    return "\n".join("  ".join(r[i].ljust(w[i]) for i in range(5)) for r in rows)
