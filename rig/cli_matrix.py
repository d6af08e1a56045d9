"""The `rig matrix` and `rig matrix-report` commands (rig.cli wires them in).

    rig matrix [--scenarios S ...] [--modes M ...] [--runs N] [--results DIR]
               [--accel kvm|tcg] [--resume MATRIX_DIR]
    rig matrix-report MATRIX_DIR [--export DEST]

`rig report MATRIX_DIR` does what `rig matrix-report MATRIX_DIR` does (a matrix directory
is known by its matrix.json).
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

from rig import scenario as scenario_mod
from rig.errors import UsageError, require_root
from rig.layout import Layout
from rig.progress import Progress

COMMANDS = ("matrix", "matrix-report")


def add_parsers(sub: argparse._SubParsersAction) -> None:
    m = sub.add_parser("matrix", help="every scenario of the suite in every mode, one "
                       "report with the matrix at the top (resumable)")
    m.add_argument("--scenarios", nargs="+", metavar="S",
                   help="scenarios (default: every one with a [bench] set, tuning first)")
    m.add_argument("--modes", nargs="+", metavar="M",
                   help=f"modes (default: all of {', '.join(scenario_mod.MODES)})")
    m.add_argument("--runs", type=int, help="runs per mode and scenario (default: 2)")
    m.add_argument("--results", type=Path,
                   help="results root (default: ./results); the matrix goes to "
                   "<results>/matrix/<stamp>/")
    m.add_argument("--accel", choices=("kvm", "tcg"))
    m.add_argument("--resume", type=Path, metavar="MATRIX_DIR",
                   help="continue this matrix: skip its complete runs, redo the rest")
    r = sub.add_parser("matrix-report", help="a matrix's report (and each scenario's); "
                       "--export copies it to ship, without machine paths")
    r.add_argument("matrix_dir", type=Path, metavar="MATRIX_DIR",
                   help="a matrix directory: results/matrix/<stamp>")
    r.add_argument("--export", type=Path, metavar="DEST",
                   help="copy the matrix's summaries and raw files (paths scrubbed) to "
                   "DEST and write the reports there")


def is_matrix_dir(d: Path) -> bool:
    from rig.bench.matrix import MATRIX_JSON

    return (d / MATRIX_JSON).is_file()


def dispatch(args: argparse.Namespace, layout: Layout, progress: Progress) -> int:
    if args.cmd == "matrix":
        return _matrix(args, layout, progress)
    return report(args.matrix_dir, layout, args.export)


def report(matrix_dir: Path, layout: Layout, export_to: Path | None = None) -> int:
    from rig.report import matrix as matrix_report

    if export_to is not None:
        from rig.report.export import export

        roots = {str(layout.cache): "<cache>", str(layout.state): "<state>",
                 str(layout.run): "<run>", str(layout.repo): "<repo>"}
        md = export(matrix_dir, export_to, roots)
        print(f"exported to {export_to}; report: {md} and {md.with_suffix('.html')}")
        return 0
    md = matrix_report.write_matrix_report(matrix_dir)
    print(f"report: {md} and {md.with_suffix('.html')}")
    return 0


def _matrix(args: argparse.Namespace, layout: Layout, progress: Progress) -> int:
    from rig.bench import matrix, runner
    from rig.build.bootstrap import bootstrap
    from rig.report import matrix as matrix_report

    known = [scenario_mod.load(p.stem, layout.scenarios)
             for p in sorted(layout.scenarios.glob("*.toml"))]
    names = matrix.benchmarkable(known)
    if args.scenarios:
        matrix.check_names("scenario", args.scenarios, names)
    if args.modes:
        matrix.check_names("mode", args.modes, scenario_mod.MODES)
    if args.resume is not None:
        if args.results is not None:
            raise UsageError("--resume continues a matrix where it is: no --results with it")
        d = args.resume
        spec = matrix.resumed(matrix.read_spec(d), names=args.scenarios, modes=args.modes,
                              runs=args.runs, accel=args.accel)
        matrix.check_names("scenario", list(spec.scenarios), names)
        changed = matrix.changed_scenarios(d, {n: _text(layout, n) for n in spec.scenarios})
        if changed:
            raise UsageError(f"{', '.join(changed)} changed since this matrix ran them "
                             "(their runs' scenario.toml differs): start a new matrix")
    else:
        stamp = runner.stamp()
        spec = matrix.choose(known, names=args.scenarios, modes=args.modes, runs=args.runs,
                             accel=args.accel, command=runner.command_line(), stamp=stamp)
        d = matrix.matrix_dir(args.results or Path("results"), stamp)
    require_root("rig matrix", os.geteuid())
    stack = bootstrap(layout, progress)
    if args.resume is None:
        matrix.prepare(d, spec)
    by_name = {s.name: s for s in known}

    def context(name: str) -> runner.BenchContext:
        return runner.BenchContext(layout, stack, by_name[name], _text(layout, name),
                                   progress, spec.accel, None, runner.command_line())

    total = len(matrix.plan(spec.scenarios, spec.modes, spec.runs))
    progress.info(f"matrix: {len(spec.scenarios)} scenario(s) x {len(spec.modes)} mode(s) "
                  f"x {spec.runs} run(s) = {total} runs in {d}")
    start = time.monotonic()
    outcome = matrix.run_matrix(d, spec, context)
    print(progress.summary(), file=sys.stderr)
    md = matrix_report.write_matrix_report(d)
    _, loaded = matrix_report.load_matrix(d)
    print(matrix_report.matrix_markdown(loaded, list(spec.modes)))
    bad = [f"{sc} {mode} run {n}" for sc, mode, n in outcome.incomplete]
    print(f"matrix: {total} runs ({len(outcome.skipped)} complete already) in "
          f"{(time.monotonic() - start) / 60:.1f} min; results in {d}"
          + (f"; INCOMPLETE: {', '.join(bad)} (rig matrix --resume {d} redoes them)"
             if bad else ""))
    print(f"report: {md} and {md.with_suffix('.html')}")
    return 1 if bad else 0


def _text(layout: Layout, name: str) -> str:
    return (layout.scenarios / f"{name}.toml").read_text()
