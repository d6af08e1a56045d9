"""The guest side of a benchmark run: script generation and stream parsing."""

import subprocess
from dataclasses import replace

import pytest

from rig.bench import runner
from rig.bench.abload import IdleResult, ReadResult
from rig.bench.ebizzy import EbizzyResult
from rig.bench.workload import SCORE_UNITS, StreamParser, guest_script, parse_stream
from rig.layout import REPO_ROOT
from rig.scenario import Schedule, Workload, load
from tests import FIXTURES

FIXTURE = FIXTURES / "workload" / "vm-down.stream.txt"
W = Workload(chunk_bytes=1 << 20, step_s=10, threads=1,
             schedules=(Schedule("vm-down", 0.0, (512, 412)), Schedule("vm-up", 10.0, (112,))))


def test_script_runs_each_step_with_ebizzy_flags():
    s = guest_script(W, W.schedules[1])
    assert "sleep 10\n" in s
    assert "for n in 112; do" in s
    assert '-n "$n" -s 1048576 -S 10 -t 1' in s
    assert "B=/opt/autoballoon/bin/ebizzy;" in s
    assert "B=/tmp/my' ebizzy'" not in guest_script(W, W.schedules[0], "/tmp/my ebizzy")
    assert "B='/tmp/my ebizzy';" in guest_script(W, W.schedules[0], "/tmp/my ebizzy")


def test_script_is_valid_shell_and_frames_its_output(tmp_path):
    fake = tmp_path / "ebizzy"
    fake.write_text('#!/bin/sh\necho "ran $*"\necho "$2 records/s"\necho "real 1.00 s"\n'
                    'echo "user 1.00 s"\necho "sys  0.00 s"\n')
    fake.chmod(0o755)
    script = guest_script(Workload(4096, 1, 1, (Schedule("a", 0.0, (3, 5)),)),
                          Schedule("a", 0.0, (3, 5)), str(fake))
    script = script.replace("/tmp/ab-run", str(tmp_path / "run"))
    out = subprocess.run(["sh", "-c", script], capture_output=True, text=True, timeout=30)
    run = parse_stream(out.stdout)
    assert run.done and [s.chunks for s in run.steps] == [3, 5]
    assert [s.result.records_per_s for s in run.steps] == [3, 5]
    assert run.records_total == 8 and run.failed_steps == 0
    assert "pswpout" in run.vmstat_start and "pswpout" in run.vmstat_end


def test_real_stream_fixture():
    run = parse_stream(FIXTURE.read_text())
    assert run.done
    assert [s.chunks for s in run.steps] == [512, 412, 312, 212, 112]
    assert [s.result.records_per_s for s in run.steps] == [1919, 1746, 1834, 1802, 1833]
    assert run.records_total == 9134
    assert run.dmesg_oom_kills == 0 and run.failed_steps == 0
    assert run.vmstat_start.startswith("nr_free_pages")


def test_live_progress_and_a_killed_step():
    p = StreamParser()
    for line in ["@@vmstat start", "pswpin 0", "@@end", "@@step 1 start 512"]:
        p.feed(line + "\n")
    assert (p.run.current_step, p.run.current_chunks, p.run.done) == (1, 512, False)
    for line in ["@@out 1", "Killed", "@@end 1 137", "noise from a shell", "@@done"]:
        p.feed(line)
    step = p.run.steps[0]
    assert step.status == 137 and step.result is None and "records/s" in (step.error or "")
    assert p.run.failed_steps == 1 and p.run.records_total == 0 and p.run.done


@pytest.mark.parametrize("cut", [10, 100, 200])
def test_a_cut_stream_is_not_done(cut):
    lines = FIXTURE.read_text().splitlines()[:cut]
    assert not parse_stream("\n".join(lines)).done


# ---- workload kinds (issue 11) ------------------------------------------------------

ABLOAD_FIXTURES = FIXTURES / "abload"

#: guest_script's output for the quick scenario before workload kinds existed.
QUICK_EBIZZY = """\
B=/opt/autoballoon/bin/ebizzy; D=/tmp/ab-run
rm -rf "$D"; mkdir -p "$D"; echo "@@binary $B"
echo "@@vmstat start"; cat /proc/vmstat; echo "@@end"
sleep {start}
i=0
for n in {chunks}; do
  i=$((i + 1))
  echo "@@step $i start $n"
  "$B" -n "$n" -s 1048576 -S 10 -t 1 > "$D/out.$i" 2>&1; rc=$?
  echo "@@out $i"; cat "$D/out.$i"; echo "@@end $i $rc"
done
echo "@@vmstat end"; cat /proc/vmstat; echo "@@end"
echo "@@oom"; dmesg | grep -c "Killed process" ; echo "@@end"
echo "@@done"
"""


def test_quick_ebizzy_scripts_are_unchanged():
    quick = load("quick", REPO_ROOT / "rig" / "scenarios").workload
    assert quick is not None
    assert guest_script(quick, quick.schedule("vm-down")) == QUICK_EBIZZY.format(
        start=0, chunks="512 412 312 212 112")
    assert guest_script(quick, quick.schedule("vm-up")) == QUICK_EBIZZY.format(
        start=10, chunks="112 212 312 412 512")
    # a data device changes nothing for ebizzy
    assert (guest_script(quick, quick.schedule("vm-up"), data_dev="vdb")
            == guest_script(quick, quick.schedule("vm-up")))


STREAM = Schedule("vm-s", 5.0, kind="stream", steps=3)
REREAD = Schedule("vm-r", 0.0, kind="reread", hot_mib=(64, 256))
IDLE = Schedule("vm-i", 2.5, kind="idle", mib=(100, 300))
KW = Workload(chunk_bytes=1 << 20, step_s=7, threads=1, schedules=(STREAM, REREAD, IDLE))


def test_stream_script():
    s = guest_script(KW, STREAM, data_dev="vdb")
    assert s.startswith("B=/opt/autoballoon/bin/abload; D=/tmp/ab-run\n")
    assert 'echo "@@binary $B"\necho "@@kind stream"\n' in s
    assert "sleep 5\n" in s and "for n in 0 0 0; do" in s
    assert '  "$B" stream -d /dev/vdb -S 7 > "$D/out.$i" 2>&1; rc=$?\n' in s
    # the guest drops a block device's page cache on its last close: hold it open
    assert s.index("exec 3< /dev/vdb\n") < s.index("for n in")
    assert guest_script(KW, STREAM, data_dev="/dev/vdc").count("-d /dev/vdc -S 7") == 1
    with pytest.raises(ValueError, match="needs the data disk's device"):
        guest_script(KW, STREAM)


def test_reread_script():
    s = guest_script(KW, REREAD, data_dev="vda")
    assert 'echo "@@kind reread"' in s and "for n in 64 256; do" in s
    assert '  "$B" reread -d /dev/vda -H "$n" -S 7 > "$D/out.$i" 2>&1; rc=$?\n' in s
    with pytest.raises(ValueError, match="reread schedule needs"):
        guest_script(KW, REREAD, data_dev="")


def test_idle_script():
    s = guest_script(KW, IDLE)
    assert 'echo "@@kind idle"' in s and "sleep 2.5\n" in s and "for n in 100 300; do" in s
    assert '  "$B" idle -m "$n" -S 7 > "$D/out.$i" 2>&1; rc=$?\n' in s
    assert "B='/tmp/my abload';" in guest_script(KW, IDLE, "/tmp/my abload")


@pytest.mark.parametrize("sched", [STREAM, REREAD, IDLE], ids=lambda s: s.kind)
def test_abload_scripts_share_ebizzy_framing(sched):
    """Every line but the program's is the ebizzy script's, plus `@@kind` and the sizes."""
    s = guest_script(KW, sched, data_dev="vdb").splitlines()
    e = guest_script(KW, Schedule(sched.vm, sched.start_s, (1,))).splitlines()
    assert s.pop(2) == f'echo "@@kind {sched.kind}"'
    if sched.kind != "idle":  # the data disk held open for the whole schedule
        assert s.pop(2) == "exec 3< /dev/vdb"
    differ = [i for i, (a, b) in enumerate(zip(s, e, strict=True)) if a != b]
    assert [s[i].split()[0] for i in differ] == ["B=/opt/autoballoon/bin/abload;", "for",
                                                 '"$B"']


@pytest.mark.parametrize("sched", [STREAM, REREAD, IDLE], ids=lambda s: s.kind)
def test_abload_script_runs_in_sh(tmp_path, sched):
    fake = tmp_path / "abload"
    fake.write_text('#!/bin/sh\necho "args $*"\n'
                    f'cat {ABLOAD_FIXTURES / (sched.kind + ".txt")}\n')
    fake.chmod(0o755)
    data = tmp_path / "data"
    data.write_bytes(b"x" * 4096)
    script = guest_script(KW, replace(sched, start_s=0.0), str(fake), str(data))
    script = script.replace("/tmp/ab-run", str(tmp_path / "run"))
    out = subprocess.run(["sh", "-c", script], capture_output=True, text=True, timeout=30)
    run = parse_stream(out.stdout)
    assert run.done and run.kind == sched.kind and run.failed_steps == 0
    assert [s.chunks for s in run.steps] == list(sched.sizes())
    assert all(s.kind == sched.kind and s.result.kind == sched.kind for s in run.steps)
    assert run.steps[0].output.startswith(f"args {sched.kind} ")


def _synthetic(kind: str, outputs: list[tuple[int, str, int]]) -> str:
    """A stream as the script prints it: each step's size, output and exit status."""
    lines = ["@@binary /opt/autoballoon/bin/abload", f"@@kind {kind}",
             "@@vmstat start", "pswpout 1", "@@end"]
    for i, (size, text, rc) in enumerate(outputs, 1):
        lines += [f"@@step {i} start {size}", f"@@out {i}", *text.splitlines(),
                  f"@@end {i} {rc}"]
    lines += ["@@vmstat end", "pswpout 2", "@@end", "@@oom", "0", "@@end", "@@done"]
    return "\n".join(lines) + "\n"


def _fixture(name: str) -> str:
    return (ABLOAD_FIXTURES / f"{name}.txt").read_text()


def test_parse_stream_kind():
    run = parse_stream(_synthetic("stream", [
        (0, _fixture("stream"), 0), (0, _fixture("stream_blockdev"), 0),
        (0, _fixture("stream_killed"), 0), (0, _fixture("missing_device"), 1)]))
    assert run.done and run.kind == "stream" and run.vmstat_end == "pswpout 2\n"
    assert [s.score for s in run.steps] == [6984.02, 4876.82, 7242.37, None]
    assert isinstance(run.steps[0].result, ReadResult)
    assert run.steps[0].result.path == "/tmp/abload-data" and run.steps[0].ok
    assert not run.steps[2].ok  # interrupted: its numbers cover part of the step
    assert run.steps[3].error == "abload failed: cannot open /dev/vdb: No such file or directory"
    assert run.failed_steps == 2 and run.records_total == 0
    assert SCORE_UNITS["stream"] == "MB/s"


def test_parse_reread_kind():
    run = parse_stream(_synthetic("reread", [
        (16, _fixture("reread"), 0), (8, _fixture("reread_blockdev"), 0),
        (32, _fixture("reread_pty_crlf").replace("\n", "\r\n"), 0),
        (64, _fixture("stream"), 0)]))  # another kind's result line is not a reread result
    assert [s.chunks for s in run.steps] == [16, 8, 32, 64]
    assert [s.score for s in run.steps] == [17887.37, 9832.84, 13213.70, None]
    assert run.steps[0].result.span_bytes == 16 << 20
    assert run.steps[3].error == "expected an abload reread result, got abload stream"
    assert run.failed_steps == 1


def test_parse_idle_kind():
    run = parse_stream(_synthetic("idle", [
        (64, _fixture("idle"), 0), (64, _fixture("idle_signal"), 0),
        (8000, _fixture("idle_interrupted_touch"), 0), (64, _fixture("idle_sigkill"), 137),
        (64, _fixture("not_found"), 127)]))
    assert [s.score for s in run.steps] == [0.046, 0.103, 0.201, None, None]  # touch seconds
    first = run.steps[0].result
    assert isinstance(first, IdleResult) and first.touched_mib == 64 and first.end == "time"
    assert [s.ok for s in run.steps] == [True, True, False, False, False]
    assert run.steps[3].status == 137 and "holding" in (run.steps[3].error or "")
    assert run.steps[4].error == "not abload output: no 'abload KIND: ...' result line"
    assert run.failed_steps == 3 and SCORE_UNITS["idle"].startswith("touch seconds")


def test_ebizzy_steps_keep_their_result_and_score():
    run = parse_stream(FIXTURE.read_text())
    assert run.kind == "ebizzy" and all(s.kind == "ebizzy" for s in run.steps)
    assert [s.score for s in run.steps] == [1919.0, 1746.0, 1834.0, 1802.0, 1833.0]
    assert isinstance(run.steps[0].result, EbizzyResult)


def test_score_total_by_kind():
    """stream, reread: MB/s averaged over the steps with a result; idle: touch seconds
    summed; ebizzy: records/s summed (the RFC's total recs)."""
    stream = parse_stream(_synthetic("stream", [
        (0, _fixture("stream"), 0), (0, _fixture("stream_blockdev"), 0),
        (0, _fixture("missing_device"), 1)]))
    assert stream.score_total == round((6984.02 + 4876.82) / 2, 3)
    idle = parse_stream(_synthetic("idle", [(64, _fixture("idle"), 0),
                                            (64, _fixture("idle_signal"), 0)]))
    assert idle.score_total == round(0.046 + 0.103, 3)
    assert parse_stream(_synthetic("reread", [(8, _fixture("not_found"), 127)])
                        ).score_total == 0.0
    assert parse_stream(FIXTURE.read_text()).score_total == 1919 + 1746 + 1834 + 1802 + 1833


def test_a_schedule_of_its_own_step_length():
    long_idle = replace(IDLE, step_s=120)
    w = replace(KW, schedules=(STREAM, long_idle))
    assert '"$B" idle -m "$n" -S 120 >' in guest_script(w, long_idle)
    assert "-S 7 >" in guest_script(w, STREAM, data_dev="vdb")
    assert w.duration_s() == 2.5 + 2 * 120
    assert runner.interleave(["a"], 1) == [("a", 1)]


def test_env_names_the_workload_programs():
    from pathlib import Path

    from rig.scenario import HostSpec, Scenario, VmSpec

    def programs(schedules, ebizzy=None):
        sc = Scenario("t", "x", HostSpec(), (VmSpec("vm-s", 512), VmSpec("vm-i", 512)),
                      Workload(1 << 20, 10, 1, schedules))
        ctx = runner.BenchContext(None, None, sc, "", None, ebizzy=ebizzy)  # type: ignore[arg-type]
        return runner._workload_programs(ctx)

    ebizzy = Schedule("vm-s", 0.0, (1,))
    assert programs((ebizzy,)) == "ebizzy (ours)"
    assert programs((ebizzy,), Path("/x/ebizzy")) == "ebizzy binary /x/ebizzy"
    assert programs((IDLE, STREAM)) == "abload (ours): idle, stream"
    assert programs((ebizzy, IDLE)) == "ebizzy (ours); abload (ours): idle"
