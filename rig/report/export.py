"""Exporting a benchmark matrix to ship it (an example under docs/): the files the numbers
come from, without the machine's paths, and the reports rebuilt from them alone.

    rig matrix-report results/matrix/<stamp> --export docs/example-matrix

copies matrix.json, every mode's summary.json and, per run-<n>, only the files its
summary and report are computed from (``KEEP``: summary.json, env.json, scenario.toml and
the raw files rig.bench.run_metrics.compute and checks() read); not the per-step workload
outputs (duplicates of <vm>.stream.txt), logs or runs moved aside. env.json, the env of
each run's summary.json and matrix.json's command line go through ``scrub``: every
absolute path in a string becomes a placeholder keeping its last component (``<cache>/
.../virtio_balloon.ko``, ``<results>``, ``<path>/ebizzy``). Then the matrix report and
every scenario's report are written again inside the copy, their report.html linking
the PNGs beside it instead of embedding them (so no file of the copy is large: the
largest raw file, a seed-2013 timeline.jsonl, is under 400 KB), and plotting the
timeline of each mode's first run only (``EXPORT_TIMELINE_RUNS``: the PNGs were most
of a compressed copy; every run's raw files still ship, so ``rig report`` on the copy
draws them all).
"""

from __future__ import annotations

import fnmatch
import json
import re
import shutil
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from rig.bench import results
from rig.bench.matrix import MATRIX_JSON, read_spec
from rig.errors import UsageError
from rig.report.matrix import write_matrix_report

#: What a run directory ships: its summaries and inputs, and the raw files
#: rig.bench.run_metrics reads (its docstring lists them). INCOMPLETE keeps an
#: unfinished run unfinished.
KEEP = (
    results.SUMMARY, results.INCOMPLETE, "env.json", "scenario.toml", "timing.json",
    "samples.jsonl", "timeline.jsonl", "autoballoond.stat", "autoballoond.status",
    "host-memcg.json", "host-vmstat.*", "host-meminfo.*", "host-memcg-stat.*",
    "*.qemu-stat.start", "*.qemu-stat.end", "*.stream.txt", "*.guest-vmstat.start",
    "*.guest-msgstats.start", "*.guest-msgstats.end",
)
#: The runs of each mode whose timeline the copy's reports plot.
EXPORT_TIMELINE_RUNS = 1
#: Absolute paths that name the same thing on every Linux machine: kept.
SYSTEM_PREFIXES = ("/dev/", "/proc/", "/sys/")
PATH_PLACEHOLDER = "<path>"
_RUN_RE = re.compile(r"^run-\d+$")
# An absolute path: a "/" and more, at the start or after a space, =, :, quote or (.
_ABS_PATH = re.compile(r"(?<![^\s=:'\"(,])/[^\s'\"(),;]+")


def keep_file(name: str) -> bool:
    """Whether a file of a run directory ships (KEEP)."""
    return any(fnmatch.fnmatchcase(name, pattern) for pattern in KEEP)


def _placeholder(path: str, roots: Mapping[str, str]) -> str:
    if path.startswith(SYSTEM_PREFIXES):
        return path
    clean = path.rstrip("/") or "/"
    for root in sorted(roots, key=len, reverse=True):
        base = root.rstrip("/")
        if clean == base:
            return roots[root]
        if base and clean.startswith(base + "/"):
            rest = clean[len(base) + 1:].split("/")
            return roots[root] + "/" + (rest[0] if len(rest) == 1 else f".../{rest[-1]}")
    name = clean.rsplit("/", 1)[-1]
    return f"{PATH_PLACEHOLDER}/{name}" if name else PATH_PLACEHOLDER


def scrub(value: Any, roots: Mapping[str, str] | None = None) -> Any:
    """`value` (JSON: dicts, lists, strings, numbers) with every absolute path inside
    its strings replaced: a path under one of `roots` (absolute path -> placeholder,
    e.g. {"/var/cache/autoballoon": "<cache>"}) by the placeholder and its last
    component (``<cache>/.../qemu-system-x86_64``; the root itself by the placeholder
    alone); any other by ``<path>/`` and its last component. Paths under /dev, /proc and
    /sys are kept: they name the same thing everywhere. Keys are kept."""
    roots = roots or {}
    if isinstance(value, str):
        return _ABS_PATH.sub(lambda m: _placeholder(m.group(0), roots), value)
    if isinstance(value, dict):
        return {k: scrub(v, roots) for k, v in value.items()}
    if isinstance(value, list):
        return [scrub(v, roots) for v in value]
    return value


def _copy_json(src: Path, dst: Path, fix: Any) -> None:
    try:
        obj = json.loads(src.read_text())
    except (UnicodeDecodeError, json.JSONDecodeError) as e:
        raise UsageError(f"{src}: not JSON: {e}") from None
    results.write_json_atomic(dst, fix(obj))


def _copy_run(src: Path, dst: Path, roots: Mapping[str, str]) -> None:
    dst.mkdir(parents=True)
    for f in sorted(src.iterdir()):
        if not f.is_file() or f.is_symlink() or not keep_file(f.name):
            continue
        if f.name == "env.json":
            _copy_json(f, dst / f.name, lambda o: scrub(o, roots))
        elif f.name == results.SUMMARY:
            _copy_json(f, dst / f.name, lambda o: (
                {**o, "env": scrub(o["env"], roots)} if isinstance(o, dict) and "env" in o
                else o))
        else:
            shutil.copyfile(f, dst / f.name)


def export(matrix_dir: Path, dest: Path, roots: Mapping[str, str] | None = None) -> Path:
    """Copy the matrix in `matrix_dir` to `dest` (new, or an empty directory), only the
    files that ship and without machine paths (``scrub`` with `roots`, to which the
    matrix's results root is added as <results>), then write its reports there from the
    copy alone. Returns the matrix report (dest/report/report.md)."""
    spec = read_spec(matrix_dir)
    if dest.exists() and (not dest.is_dir() or any(dest.iterdir())):
        raise UsageError(f"--export {dest}: exists and is not an empty directory")
    src = matrix_dir.resolve()
    if dest.resolve().is_relative_to(src):
        raise UsageError(f"--export {dest}: inside the matrix directory {matrix_dir}")
    roots = {**(roots or {}), str(src.parent.parent): "<results>"}
    dest.mkdir(parents=True, exist_ok=True)
    _copy_json(matrix_dir / MATRIX_JSON, dest / MATRIX_JSON, lambda o: scrub(o, roots))
    for name in spec.scenarios:
        sd = matrix_dir / name
        if not sd.is_dir():
            continue
        for mode in spec.modes:
            md = sd / mode
            if not md.is_dir():
                continue
            out = dest / name / mode
            out.mkdir(parents=True)
            if (md / results.SUMMARY).is_file():
                shutil.copyfile(md / results.SUMMARY, out / results.SUMMARY)
            for rd in sorted(md.iterdir()):
                if rd.is_dir() and _RUN_RE.match(rd.name):
                    _copy_run(rd, out / rd.name, roots)
    return write_matrix_report(dest, embed_images=False, timeline_runs=EXPORT_TIMELINE_RUNS)
