"""The guest side of a benchmark run: script generation and stream parsing."""

import subprocess

import pytest

from rig.bench.workload import StreamParser, guest_script, parse_stream
from rig.scenario import Schedule, Workload
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
