"""CI's reproduction verdicts (pure)."""

import pytest

from rig.bench.reproduction import check
from rig.errors import UsageError
from rig.scenario import Reproduction, parse


def summary(mode, swap_out, recs=(9000, 9000), oom=(0, 0), complete=True):
    def m(v):
        return {"mean": v, "stdev": 0.0, "values": [v]}

    metrics = {"host.swap_out": m(swap_out)}
    for vm, r, o in zip(("vm-down", "vm-up"), recs, oom, strict=True):
        metrics[f"{vm}.guest.records_total"] = m(r)
        metrics[f"{vm}.guest.oom_kills"] = m(o)
    return {"mode": mode, "runs": 2, "complete": complete, "metrics": metrics}


def verdicts(**auto):
    return {v.check: v for v in check(Reproduction(), {
        "vanilla": summary("vanilla", 120_000), "auto": summary("auto", **auto)})}


def test_reproduced():
    v = verdicts(swap_out=10_000, recs=(8500, 9100))
    assert all(x.ok for x in v.values()), [x.line() for x in v.values()]
    assert v["host swap-out"].detail.startswith("vanilla 120,000 / auto 10,000 pages = 12.0x")


def test_each_threshold_fails_alone():
    assert not verdicts(swap_out=30_000)["host swap-out"].ok  # 4x
    assert not verdicts(swap_out=1000, oom=(0, 1))["guest OOM kills"].ok
    v = verdicts(swap_out=1000, recs=(8000, 9000))  # -11.1 %
    assert not v["vm-down ebizzy records"].ok and v["vm-up ebizzy records"].ok
    assert not verdicts(swap_out=1000, complete=False)["complete"].ok
    assert verdicts(swap_out=0)["host swap-out"].ok  # no swap at all: no division by zero
    assert check(Reproduction(), {"vanilla": summary("vanilla", 1)})[0].ok is False
    assert verdicts(swap_out=1000)["host swap-out"].line().startswith("PASS  host swap-out")


def test_scenario_table():
    text = "# x\n[[vm]]\nname = \"a\"\nmemory_mib = 512\n[reproduction]\n"
    r = parse(text + "min_swap_out_ratio = 8\n", "t").reproduction
    assert r == Reproduction(min_swap_out_ratio=8.0)
    assert parse(text.replace("[reproduction]\n", ""), "t").reproduction is None
    with pytest.raises(UsageError, match="two different modes"):
        parse(text + 'mode = "vanilla"\n', "t")
    with pytest.raises(UsageError, match="min_swap_out_ratio must be a number"):
        parse(text + "min_swap_out_ratio = 0\n", "t")


def _runs(mode, recs_down, recs_up):
    def m(values):
        return {"mean": sum(values) / len(values), "stdev": 0.0, "values": list(values)}

    return {"mode": mode, "runs": len(recs_down), "complete": True, "metrics": {
        "host.swap_out": m([100_000] if mode == "vanilla" else [0]),
        "vm-down.guest.records_total": m(recs_down), "vm-down.guest.oom_kills": m([0]),
        "vm-up.guest.records_total": m(recs_up), "vm-up.guest.oom_kills": m([0])}}


def test_records_compare_medians_so_one_slow_run_does_not_decide():
    base = _runs("vanilla", (7800, 7700, 7750), (7800, 7730, 7750))
    # one auto run slowed for both VMs by the machine: its mean is 11 % down, its median not
    slow = _runs("auto", (7600, 5000, 7650), (7500, 5100, 7560))
    v = {x.check: x for x in check(Reproduction(), {"vanilla": base, "auto": slow})}
    assert v["vm-down ebizzy records"].ok and v["vm-up ebizzy records"].ok
    assert "(medians)" in v["vm-up ebizzy records"].detail
    # a loss in most runs still fails
    lossy = _runs("auto", (6800, 6900, 7700), (7500, 7600, 7700))
    v = {x.check: x for x in check(Reproduction(), {"vanilla": base, "auto": lossy})}
    assert not v["vm-down ebizzy records"].ok and v["vm-up ebizzy records"].ok
