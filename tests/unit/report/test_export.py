"""Exporting a matrix to ship it: scrub() takes the machine's paths out, only the files
the numbers come from are copied, and the reports are rebuilt from the copy alone."""

from __future__ import annotations

import json
import re
import shutil

import pytest

from rig.bench import matrix, results
from rig.bench.matrix import MatrixSpec
from rig.cli import main
from rig.errors import UsageError
from rig.report.export import export, keep_file, scrub
from tests import FIXTURES

from .test_matrix_report import MACHINE_PATH

GOLDEN = FIXTURES / "results" / "quick-golden"
ROOTS = {"/var/cache/autoballoon": "<cache>", "/srv/results": "<results>"}


@pytest.mark.parametrize(("value", "expected"), [
    ("/var/cache/autoballoon/qemu/5162da99/bin/qemu-system-x86_64",
     "<cache>/.../qemu-system-x86_64"),
    ("/var/cache/autoballoon/images", "<cache>/images"),
    ("/var/cache/autoballoon", "<cache>"),
    ("/var/cache/autoballoon/", "<cache>"),
    ("/var/cache/autoballoon2/x", "<path>/x"),  # not under the root: a component boundary
    ("rig matrix --results /srv/results --runs 2", "rig matrix --results <results> --runs 2"),
    ("rig bench quick --results=/srv/results/ci", "rig bench quick --results=<results>/ci"),
    ("rig bench quick --ebizzy /home/me/bin/ebizzy", "rig bench quick --ebizzy <path>/ebizzy"),
    ("ebizzy binary /opt/ebizzy", "ebizzy binary <path>/ebizzy"),
    ("/dev/kvm is PVM (kvm_pvm), which cannot run stock guest kernels",
     "/dev/kvm is PVM (kvm_pvm), which cannot run stock guest kernels"),
    ("memory cgroup /sys/fs/cgroup/memory/ab", "memory cgroup /sys/fs/cgroup/memory/ab"),
    ("records/s and MiB/s, 4 / 2", "records/s and MiB/s, 4 / 2"),
    ("rig bench quick --results results", "rig bench quick --results results"),  # relative
    ("'/tmp/x y'", "'<path>/x y'"),
    ("", ""),
])
def test_scrub_strings(value, expected):
    assert scrub(value, ROOTS) == expected


def test_scrub_walks_json_and_keeps_the_rest():
    env = {"command": "rig run quick --results /tmp/results", "accel": "tcg", "n": 3,
           "x": None, "ok": True, "qemu": {"patches": ["0001-a.patch"],
                                            "binary": "/var/cache/autoballoon/qemu/k/qemu"},
           "daemon_args": ["--log=/var/log/ab.log"]}
    assert scrub(env, ROOTS) == {
        "command": "rig run quick --results <path>/results", "accel": "tcg", "n": 3,
        "x": None, "ok": True, "qemu": {"patches": ["0001-a.patch"],
                                        "binary": "<cache>/.../qemu"},
        "daemon_args": ["--log=<path>/ab.log"]}
    assert scrub("/a/b") == "<path>/b" and scrub(5) == 5


@pytest.mark.parametrize("name", [
    "summary.json", "env.json", "scenario.toml", "INCOMPLETE", "host-vmstat.start",
    "host-vmstat.end", "host-meminfo.end", "host-memcg-stat.start", "host-memcg.json",
    "vm-up.qemu-stat.start", "vm-down.qemu-stat.end", "vm-up.stream.txt",
    "vm-idle.guest-vmstat.start", "timing.json", "samples.jsonl", "timeline.jsonl",
    "autoballoond.stat", "autoballoond.status"])
def test_the_files_a_run_ships(name):
    assert keep_file(name)


@pytest.mark.parametrize("name", [
    "vm-up.ebizzy-1.txt", "vm-up.stream-3.txt", "autoballoond.log", "autoballoond.cgroup",
    "daemon.stderr", "vm-up.console.log", "notes.md"])
def test_the_files_a_run_does_not_ship(name):
    assert not keep_file(name)


@pytest.fixture
def source(tmp_path):
    """A matrix directory of the golden quick results with what must not ship beside."""
    d = tmp_path / "machine" / "results" / "matrix" / "20250101T000000"
    matrix.prepare(d, MatrixSpec(("quick",), ("vanilla", "auto"), 1, None,
                                 f"rig matrix --results {tmp_path}/machine/results "
                                 "--scenarios quick", "20250101T000000"))
    shutil.copytree(GOLDEN, d / "quick")
    run = d / "quick" / "auto" / "run-1"
    (run / "vm-up.ebizzy-1.txt").write_text("dup\n")
    (run / "autoballoond.log").write_text("log\n")
    env = json.loads((run / "env.json").read_text())
    env["workload"] = "ebizzy binary /var/cache/autoballoon/tools/ebizzy"
    (run / "env.json").write_text(json.dumps(env))
    aside = d / "quick" / "auto" / "run-1.incomplete-1"
    aside.mkdir()
    (aside / results.INCOMPLETE).write_text("")
    return d


def _texts(root):
    return {p.relative_to(root).as_posix(): p.read_text() for p in sorted(root.rglob("*"))
            if p.is_file() and p.suffix != ".png"}


def test_export_copies_what_ships_without_machine_paths(source, tmp_path):
    dest = tmp_path / "docs" / "example-matrix"
    md = export(source, dest, {"/var/cache/autoballoon": "<cache>"})
    assert md == dest / "report" / "report.md"
    shipped = sorted(p.relative_to(dest).as_posix() for p in dest.rglob("*") if p.is_file()
                     and "report/" not in p.relative_to(dest).as_posix())
    golden = sorted(f"quick/{p.relative_to(GOLDEN).as_posix()}" for p in GOLDEN.rglob("*")
                    if p.is_file())
    assert shipped == sorted(["matrix.json", *golden])  # no duplicates, logs, runs aside
    texts = _texts(dest)
    for name, text in texts.items():
        assert str(tmp_path) not in text, name
        assert "/tmp/results" not in text, name
        assert not MACHINE_PATH.search(text), name
    env = json.loads(texts["quick/auto/run-1/env.json"])
    assert env["command"] == "rig run quick --mode auto --runs 1 --results <path>/results"
    assert env["workload"] == "ebizzy binary <cache>/.../ebizzy"
    assert env["accel_reason"].startswith("/dev/kvm is PVM")
    summary = json.loads(texts["quick/auto/run-1/summary.json"])
    assert summary["env"]["command"] == env["command"]
    assert summary["metrics"] == json.loads(
        (GOLDEN / "auto" / "run-1" / "summary.json").read_text())["metrics"]
    spec = json.loads(texts["matrix.json"])
    assert spec["command"] == "rig matrix --results <results> --scenarios quick"
    assert spec["stamp"] == "20250101T000000"
    # the reports are rebuilt from the copy, and read as the original's; the pages
    # link their plots rather than embed them (every shipped file stays small)
    page = texts["quick/report/report.html"]
    pngs = sorted(p.name for p in (dest / "quick" / "report").glob("*.png"))
    assert pngs and all(f'<img src="{n}"' in page for n in pngs)
    assert "base64" not in page
    assert "# Benchmark matrix: 20250101T000000" in texts["report/report.md"]
    assert "rig report <results>/matrix/20250101T000000/quick" in texts[
        "quick/report/report.md"]
    assert "matches (42 metrics)" in texts["quick/report/report.md"]


def test_every_link_of_the_shipped_reports_resolves(source, tmp_path):
    dest = tmp_path / "shipped"
    export(source, dest)
    pages = sorted(dest.rglob("report.md"))
    assert len(pages) == 2
    for page in pages:
        links = re.findall(r"\]\(([^)#]+)\)", page.read_text())
        assert links, page
        for link in links:
            assert (page.parent / link).is_file(), f"{page.relative_to(dest)}: {link}"


def test_export_refuses_a_used_destination(source, tmp_path):
    dest = tmp_path / "out"
    dest.mkdir()
    (dest / "x").write_text("")
    with pytest.raises(UsageError, match="not an empty directory"):
        export(source, dest)
    with pytest.raises(UsageError, match="inside the matrix directory"):
        export(source, source / "export")
    with pytest.raises(UsageError, match="no matrix.json"):
        export(source / "quick", tmp_path / "new")


def test_cli_export(source, tmp_path, capsys):
    dest = tmp_path / "shipped"
    assert main(["matrix-report", str(source), "--export", str(dest)]) == 0
    out = capsys.readouterr().out
    assert out.startswith(f"exported to {dest}; report: {dest}/report/report.md")
    assert (dest / "quick" / "vanilla" / "run-1" / "host-vmstat.start").is_file()
