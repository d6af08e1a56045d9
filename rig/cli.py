"""The `rig` command line."""

from __future__ import annotations

import argparse
import os
import signal
import sys
import time
from pathlib import Path
from types import FrameType
from typing import TYPE_CHECKING

from rig import cli_matrix, cli_scale
from rig import scenario as scenario_mod
from rig.errors import RigError, UsageError, require_root
from rig.layout import Layout
from rig.progress import Progress

if TYPE_CHECKING:
    from rig.vm.domains import VmRecord

DEFAULT_SCENARIO = "smoke"
BENCH_SCENARIO = "quick"
WATCH_DEFAULT_EVENT = "BALLOON_GUEST_PRESSURE"


class Terminated(KeyboardInterrupt):
    """SIGTERM/SIGHUP turned into an exception so every cleanup block runs."""


def _on_signal(signum: int, _frame: FrameType | None) -> None:
    raise Terminated(f"signal {signum}")


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="rig", description=__doc__)
    sub = p.add_subparsers(dest="cmd", required=True)

    sub.add_parser("bootstrap", help="install and build everything the rig needs (cached)")

    img = sub.add_parser("image", help="the guest image")
    img_sub = img.add_subparsers(dest="image_cmd", required=True)
    img_sub.add_parser("build", help="build (or reuse) the content-addressed guest image")

    host = sub.add_parser("host", help="the memory-limited host (partition cgroup + swap)")
    host_sub = host.add_subparsers(dest="host_cmd", required=True)
    hu = host_sub.add_parser("up", help="start daemons, create the partition and swapfile")
    hu.add_argument("--scenario", default=DEFAULT_SCENARIO,
                    help="take RAM and swap sizes from this scenario (default: %(default)s)")
    hu.add_argument("--ram-mib", type=int, help="override the scenario's host RAM")
    hu.add_argument("--swap-mib", type=int, help="override the scenario's host swap")
    hu.add_argument("--accel", choices=("kvm", "tcg"), help="force an accelerator")
    host_sub.add_parser("down", help="revert everything `host up` did")

    vmp = sub.add_parser("vm", help="VMs of a scenario")
    vm_sub = vmp.add_subparsers(dest="vm_cmd", required=True)
    vu = vm_sub.add_parser("up", help="start one scenario VM in the host and wait for SSH")
    vu.add_argument("name")
    vu.add_argument("--scenario", default=DEFAULT_SCENARIO)
    ve = vm_sub.add_parser("exec", help="run a command in a VM over SSH")
    ve.add_argument("name")
    ve.add_argument("command", nargs=argparse.REMAINDER)
    vc = vm_sub.add_parser("console", help="the VM's serial console (interactive, or run CMD)")
    vc.add_argument("name")
    vc.add_argument("command", nargs=argparse.REMAINDER)
    vw = vm_sub.add_parser("watch", help="print the VM's QMP events live, one JSON line each")
    vw.add_argument("name")
    vw.add_argument("--event", default=WATCH_DEFAULT_EVENT,
                    help="QMP event name (default: %(default)s); 'all' for every event")
    vw.add_argument("--count", type=int, help="stop after this many events")
    vw.add_argument("--timeout", type=float, help="stop after this many seconds")
    vd = vm_sub.add_parser("down", help="destroy a VM and remove its files")
    vd.add_argument("name", nargs="?")
    vd.add_argument("--all", action="store_true")

    sub.add_parser("qemu-tests", help="build and run QEMU's own qtests for virtio-balloon "
                   "and QMP on the patched source")

    for name, helptext in (("run", "run one mode of a scenario N times"),
                           ("bench", "run a scenario in several modes and compare them")):
        b = sub.add_parser(name, help=helptext)
        if name == "run":
            b.add_argument("scenario", help="scenario name (rig/scenarios) or path")
            b.add_argument("--mode", required=True, choices=scenario_mod.MODES)
        else:
            b.add_argument("scenario", nargs="?", default=BENCH_SCENARIO,
                           help="scenario (default: %(default)s)")
            b.add_argument("--modes", nargs="+", choices=scenario_mod.MODES,
                           help="modes to compare (default: the scenario's [bench] modes)")
        b.add_argument("--runs", type=int, help="runs per mode (default: the scenario's)")
        b.add_argument("--accel", choices=("kvm", "tcg"))
        b.add_argument("--ebizzy", type=Path,
                       help="a static ebizzy binary to run in the guests instead of ours")
        b.add_argument("--results", type=Path, default=Path("results"),
                       help="results root (default: ./results)")
        b.add_argument("--policy-param", action="append", default=[], metavar="NAME=VALUE",
                       help="override a parameter of the mode's policy (experiments)")
        b.add_argument("--daemon-arg", action="append", default=[], metavar="ARG",
                       help="pass an option to autoballoond, e.g. --daemon-arg=--tick=0.5")
        if name == "bench":
            b.add_argument("--check", action="store_true",
                           help="fail (exit 1) unless the scenario's [reproduction] holds")

    rx = sub.add_parser("reaction", help="autoballoond's reaction time: pressure input to "
                        "setMemory, median and p99 over many events on a real VM")
    rx.add_argument("--rounds", type=int, default=50,
                    help="rounds of one host pressure + one guest message (default: 50)")
    rx.add_argument("--results", type=Path, default=Path("results"))

    sm = sub.add_parser("smoke", help="two VMs: SSH, console, balloon; then clean up")
    sm.add_argument("--scenario", default=DEFAULT_SCENARIO)
    sm.add_argument("--accel", choices=("kvm", "tcg"))
    sm.add_argument("--results", type=Path, default=Path("results"),
                    help="where results go (default: ./results)")

    rp = sub.add_parser("report", help="report.md, report.html and plots of a bench's "
                        "results, with the RFC's published numbers beside them")
    rp.add_argument("results_dir", type=Path, metavar="RESULTS_DIR",
                    help="a bench's results: results/<scenario>/<stamp> (or a matrix's, "
                    "results/matrix/<stamp>: as `rig matrix-report`)")
    rp.add_argument("--baseline", metavar="MODE",
                    help="mode the others are compared with (default: vanilla, if present)")
    cli_matrix.add_parsers(sub)
    cli_scale.add_parsers(sub)
    return p


def _command(rest: list[str]) -> str:
    if rest and rest[0] == "--":
        rest = rest[1:]
    return " ".join(rest)


def _dispatch(args: argparse.Namespace, layout: Layout, progress: Progress) -> int:
    if args.cmd == "bootstrap":
        from rig.build.bootstrap import bootstrap

        start = time.monotonic()
        stack = bootstrap(layout, progress)
        print(progress.summary(), file=sys.stderr)
        print(f"bootstrap done in {time.monotonic() - start:.1f} s: QEMU {stack.qemu.binary}, "
              f"guest kernel {stack.kernel.abi}, image {stack.image.dir}")
        return 0

    if args.cmd == "image":
        from rig.build.bootstrap import build_image

        image = build_image(layout, progress)
        print(f"guest image {image.key}: {image.dir}")
        return 0

    if args.cmd == "host":
        from rig.host import lifecycle as host

        require_root("rig host", os.geteuid())
        if args.host_cmd == "up":
            sc = scenario_mod.load(args.scenario, layout.scenarios)
            spec = sc.host
            if args.ram_mib is not None or args.swap_mib is not None:
                from dataclasses import replace

                spec = replace(spec, ram_mib=args.ram_mib or spec.ram_mib,
                               swap_mib=spec.swap_mib if args.swap_mib is None
                               else args.swap_mib)
                scenario_mod.check_fits(replace(sc, host=spec))
            rec = host.up(layout, spec, progress, args.accel)
            print(f"host up: {rec.ram_mib} MiB RAM ({rec.memory_cgroup}), "
                  f"{rec.swap_mib} MiB swap, {rec.accel.upper()}; `rig host down` reverts it")
            return 0
        if not host.down(layout, progress):
            print("no host was up")
        return 0

    if args.cmd == "vm":
        return _vm(args, layout, progress)

    if args.cmd == "qemu-tests":
        from rig.build.qemu_tests import run_qemu_tests, table

        require_root("rig qemu-tests", os.geteuid())
        results = run_qemu_tests(layout, progress)
        print(table(results))
        total = sum(r.passed for r in results)
        bad = [r.name for r in results if not r.ok]
        print(f"qtests: {total} passed in {len(results)} programs"
              + (f"; FAILED: {', '.join(bad)}" if bad else ""))
        return 1 if bad else 0

    if args.cmd in ("run", "bench"):
        return _bench(args, layout, progress)

    if args.cmd == "reaction":
        from rig.bench.reaction import measure
        from rig.build.bootstrap import bootstrap

        require_root("rig reaction", os.geteuid())
        if args.rounds < 1:
            raise UsageError("--rounds must be at least 1")
        stack = bootstrap(layout, progress)
        out = args.results / "reaction" / time.strftime("%Y%m%dT%H%M%S")
        result = measure(layout, stack, progress, args.rounds, out)
        print(progress.summary(), file=sys.stderr)
        print(result.table())
        print(f"timeline and reaction.json in {out}")
        return 0

    if args.cmd == "smoke":
        from rig.bench.smoke import run_smoke, write_result
        from rig.build.bootstrap import bootstrap

        sc = scenario_mod.load(args.scenario, layout.scenarios)
        require_root("rig smoke", os.geteuid())
        if len(sc.vms) < 2:
            raise UsageError(f"smoke needs two VMs; scenario {sc.name} has {len(sc.vms)}")
        stack = bootstrap(layout, progress)
        try:
            result = run_smoke(layout, sc, stack, progress, args.accel)
        except RigError:
            print(progress.summary(), file=sys.stderr)
            raise
        out = write_result(layout, result, args.results)
        print(result.table())
        print(f"smoke {'passed' if result.ok else 'FAILED'} ({result.accel.upper()}); "
              f"results in {out}")
        return 0 if result.ok else 1

    if args.cmd in cli_matrix.COMMANDS:
        return cli_matrix.dispatch(args, layout, progress)

    if args.cmd in cli_scale.COMMANDS:
        return cli_scale.dispatch(args, progress)

    if args.cmd == "report":
        from rig.report.report import write_report

        if cli_matrix.is_matrix_dir(args.results_dir):  # a matrix: `rig matrix-report`
            if args.baseline is not None:
                raise UsageError("--baseline: a matrix's report compares with vanilla")
            return cli_matrix.report(args.results_dir, layout)
        md = write_report(args.results_dir, args.baseline)
        print(f"report: {md} and {md.with_suffix('.html')}")
        return 0
    raise UsageError(f"unknown command {args.cmd}")


def _bench(args: argparse.Namespace, layout: Layout, progress: Progress) -> int:
    from autoballoon.daemon import ConfigError, parse_assignments

    from rig.bench import runner as bench
    from rig.build.bootstrap import bootstrap
    from rig.report import tables

    sc = scenario_mod.load(args.scenario, layout.scenarios)
    if sc.workload is None:
        raise UsageError(f"scenario {sc.name} has no [workload]: nothing to benchmark")
    modes = [args.mode] if args.cmd == "run" else list(args.modes or sc.bench.modes)
    runs = args.runs if args.runs is not None else sc.bench.runs
    if runs < 1:
        raise UsageError("--runs must be at least 1")
    if args.ebizzy is not None and not args.ebizzy.is_file():
        raise UsageError(f"--ebizzy {args.ebizzy}: no such file")
    require_root(f"rig {args.cmd}", os.geteuid())
    stack = bootstrap(layout, progress)
    path = Path(args.scenario)
    text = (path if path.suffix == ".toml" and path.exists()
            else layout.scenarios / f"{sc.name}.toml").read_text()
    try:
        params = parse_assignments(args.policy_param)
    except ConfigError as e:
        raise UsageError(str(e)) from None
    ctx = bench.BenchContext(layout, stack, sc, text, progress, args.accel, args.ebizzy,
                             bench.command_line(), params, tuple(args.daemon_arg))
    root = args.results / sc.name / bench.stamp()
    start = time.monotonic()
    summaries = bench.run_modes(ctx, {mode: root / mode for mode in modes}, runs)
    print(progress.summary(), file=sys.stderr)
    print(tables.rfc_tables(summaries))
    incomplete = [s["mode"] for s in summaries if not s["complete"]]
    print(f"{sc.name}: {', '.join(modes)} x {runs} run(s) in "
          f"{(time.monotonic() - start) / 60:.1f} min; results in {root}"
          + (f"; INCOMPLETE: {', '.join(incomplete)}" if incomplete else ""))
    failed = False
    if args.cmd == "bench":
        from rig.report.report import write_report

        report = write_report(root)
        print(f"report: {report} and {report.with_suffix('.html')}")
        if args.check:
            from rig.bench.reproduction import check

            if sc.reproduction is None:
                raise UsageError(f"scenario {sc.name} has no [reproduction] table to check")
            verdicts = check(sc.reproduction, {s["mode"]: s for s in summaries})
            print(f"reproduction of the RFC's result ({sc.name}):")
            for v in verdicts:
                print(f"  {v.line()}")
            failed = not all(v.ok for v in verdicts)
            print("REPRODUCED" if not failed else "NOT REPRODUCED")
    return 1 if incomplete or failed else 0


def _vm(args: argparse.Namespace, layout: Layout, progress: Progress) -> int:
    from rig.vm import domains as vm
    require_root("rig vm", os.geteuid())
    if args.vm_cmd == "up":
        from rig.build.bootstrap import bootstrap, image_for
        from rig.host.lifecycle import HostRecord

        sc = scenario_mod.load(args.scenario, layout.scenarios)
        spec = sc.vm(args.name)
        host_rec = HostRecord.load(layout.host_record)
        if host_rec is None:
            raise UsageError("no host is up: run `rig host up` first")
        stack = bootstrap(layout, progress)
        conn = vm.connect()
        try:
            with progress.step(f"start {spec.name}"):
                image = image_for(layout, progress, stack, spec.guest_driver)
                rec = vm.up(conn, layout, sc, spec, host_rec, image, stack.qemu.binary)
            with progress.step(f"wait for SSH in {spec.name}"):
                try:
                    t = vm.wait_ssh(rec, timeout_s=90)
                except BaseException:
                    vm.down(conn, layout, spec.name)
                    raise
        finally:
            conn.close()
        print(f"{spec.name} up ({rec.domain}), SSH ready in {t:.1f} s on 127.0.0.1:"
              f"{rec.ssh_port}; `rig vm exec {spec.name} -- CMD`")
        return 0
    if args.vm_cmd == "down":
        if not args.all and not args.name:
            raise UsageError("name a VM or pass --all")
        if args.all:
            vm.destroy_all(layout)
            return 0
        conn = vm.connect()
        try:
            vm.down(conn, layout, args.name)
        finally:
            conn.close()
        return 0
    rec = vm.VmRecord.load(layout, args.name)
    if args.vm_cmd == "watch":
        return _watch(rec, args)
    command = _command(args.command)
    if args.vm_cmd == "exec":
        if not command:
            raise UsageError("give a command: rig vm exec NAME -- CMD")
        r = vm.ssh_exec(rec, command)
        sys.stdout.write(r.stdout)
        sys.stderr.write(r.stderr)
        return r.status
    # console
    if not command:
        os.execvp("virsh", ["virsh", "-c", vm.URI, "console", rec.domain])
    conn = vm.connect()
    try:
        with vm.console(conn, rec) as c:
            r = c.run(command)
    finally:
        conn.close()
    sys.stdout.write(r.stdout)
    return r.status


def _watch(rec: VmRecord, args: argparse.Namespace) -> int:
    import json

    from rig.vm import domains as vm
    from rig.vm.qmp_events import EventWatcher

    event = None if args.event == "all" else args.event
    deadline = None if args.timeout is None else time.monotonic() + args.timeout
    seen = 0
    with EventWatcher(vm.URI, event, rec.domain) as watcher:
        print(f"watching {rec.domain} for {args.event} events; Ctrl-C stops", file=sys.stderr)
        while args.count is None or seen < args.count:
            left = 1.0 if deadline is None else deadline - time.monotonic()
            if left <= 0:
                break
            ev = watcher.get(min(left, 1.0))
            if ev is None:
                continue
            seen += 1
            print(json.dumps({"time": round(ev.timestamp, 6), "event": ev.event,
                              "data": ev.data}), flush=True)
    return 0


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    signal.signal(signal.SIGTERM, _on_signal)
    signal.signal(signal.SIGHUP, _on_signal)
    # Ctrl-C must clean up even when started from a shell that ignores SIGINT for
    # background jobs (Python then leaves SIGINT ignored).
    signal.signal(signal.SIGINT, signal.default_int_handler)
    layout = Layout.default()
    progress = Progress()
    try:
        return _dispatch(args, layout, progress)
    except UsageError as e:
        print(f"rig: {e}", file=sys.stderr)
        return e.exit_status
    except RigError as e:
        print(f"rig: error: {e}", file=sys.stderr)
        return e.exit_status
    except KeyboardInterrupt as e:
        print(f"rig: interrupted ({e or 'Ctrl-C'}); cleaned up", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
