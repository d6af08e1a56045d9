"""When a leftover host record may be cleaned up by `host up` (stale) and when it must be
refused (a host possibly in use). The fixture is the record CI found on 2026-12-01: a
`make test` killed with its daemons, whose record then failed every later host up."""

import json
from dataclasses import replace
from pathlib import Path

import pytest

from rig.host import lifecycle
from rig.host.lifecycle import HostRecord, Liveness, stale_reason

FIXTURE = Path(__file__).parent / "fixtures" / "host-record-killed-run.json"
BOOT = "83c8fea0-371b-4109-bea1-c03106d51280"


def killed_run() -> HostRecord:
    return HostRecord(**json.loads(FIXTURE.read_text()))


def live(**kw) -> Liveness:
    base = Liveness(boot_id=BOOT, owner_alive=False, daemons_alive=(True, True),
                    memcg_exists=True, memcg_tasks=0)
    return replace(base, **kw)


def test_the_record_ci_tripped_on_is_stale_once_its_daemons_are_gone():
    rec = killed_run()
    assert rec.boot_id == "" and rec.owner is None  # written before either was kept
    reason = stale_reason(rec, live(daemons_alive=(False, False), memcg_exists=False))
    assert reason is not None and "virtlogd pid 14320, libvirtd pid 14323" in reason
    assert "gone" in reason


def test_a_live_host_is_never_stale():
    rec = replace(killed_run(), boot_id=BOOT, owner={"pid": 1, "start_ticks": 1},
                  complete=True)
    assert stale_reason(rec, live()) is None
    # one daemon of two still alive: not provably gone, `host down` is the person's call
    assert stale_reason(rec, live(daemons_alive=(True, False))) is None


@pytest.mark.parametrize("change", [
    {"daemons_alive": (False, False)},
    {"memcg_exists": False},
    {"boot_id": "another-boot"},
])
def test_vms_running_in_the_partition_keep_it_in_use_unless_the_machine_rebooted(change):
    rec = replace(killed_run(), boot_id=BOOT, complete=True)
    busy = live(memcg_tasks=3, **change)
    expected_stale = "boot_id" in change
    assert (stale_reason(rec, busy) is not None) == expected_stale


def test_a_record_from_an_earlier_boot_is_stale():
    rec = replace(killed_run(), boot_id="0000", complete=True)
    assert "before this machine last booted" in (stale_reason(rec, live()) or "")


def test_an_unfinished_host_up_is_stale_only_when_its_process_died():
    rec = HostRecord(ram_mib=2048, boot_id=BOOT, owner={"pid": 9, "start_ticks": 9})
    assert stale_reason(rec, live(daemons_alive=(), memcg_exists=False,
                                  owner_alive=True)) is None  # still coming up
    reason = stale_reason(rec, live(daemons_alive=(), memcg_exists=False))
    assert reason is not None and "died before finishing" in reason
    # once finished, its exit is normal (`rig host up` returns)
    done = replace(rec, complete=True)
    assert stale_reason(done, live(daemons_alive=(), memcg_exists=False)) is None


def test_a_host_that_started_no_daemon_is_stale_when_its_cgroup_is_gone():
    rec = replace(killed_run(), daemons=[], boot_id=BOOT, complete=True)
    assert stale_reason(rec, live(daemons_alive=())) is None
    assert "cgroup" in (stale_reason(rec, live(daemons_alive=(), memcg_exists=False)) or "")


def test_host_down_removes_the_directories_it_left_empty_and_only_those(tmp_path):
    run, state = tmp_path / "run", tmp_path / "state"
    (run / "vms").mkdir(parents=True)
    (state / "vms" / "vm-a").mkdir(parents=True)  # a VM's files still there: kept
    lifecycle.remove_empty_dirs([run / "vms", run, state / "vms", state, tmp_path / "gone"])
    assert not run.exists()
    assert (state / "vms" / "vm-a").is_dir()
