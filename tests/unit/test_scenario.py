import tomllib
from pathlib import Path

import pytest

from rig.errors import UsageError
from rig.layout import REPO_ROOT
from rig.scenario import MODES, load, parse

GOOD = """\
# what it stresses
[host]
ram_mib = 2048
swap_mib = 1024

[[vm]]
name = "vm-a"
memory_mib = 1331

[[vm]]
name = "vm-b"
memory_mib = 1024
vcpus = 2
guest_swap_mib = 0
"""


def test_parse_good():
    s = parse(GOOD, "t")
    assert s.description == "what it stresses"
    assert s.host.ram_mib == 2048 and s.host.swap_mib == 1024
    assert s.host.overcommit == "within-swap"
    assert [v.name for v in s.vms] == ["vm-a", "vm-b"]
    assert s.vms[0].vcpus == 1 and s.vms[0].guest_swap_mib == 512
    assert s.vms[1].vcpus == 2 and s.vms[1].guest_swap_mib == 0
    assert s.vm("vm-b").memory_mib == 1024
    assert s.vms[0].message_vq is True and s.vms[0].guest_driver == "patched"
    s2 = parse(GOOD.replace("vcpus = 2", 'vcpus = 2\nmessage_vq = false\nguest_driver = "stock"'),
               "t")
    assert s2.vms[1].message_vq is False and s2.vms[1].guest_driver == "stock"


@pytest.mark.parametrize(
    ("text", "message"),
    [
        (GOOD.replace("[host]", "[host]\nram = 5"), "unknown key 'ram'"),
        (GOOD + "\n[extra]\n", "unknown key 'extra'"),
        (GOOD.replace('name = "vm-a"', 'name = "vm-a"\ncolour = "red"'), "unknown key 'colour'"),
        (GOOD.replace("# what it stresses\n", ""), "must open with a comment"),
        (GOOD.replace('"vm-b"', '"vm-a"'), "duplicate VM name"),
        (GOOD.replace('"vm-b"', '"VM B"'), "name must match"),
        (GOOD.replace("memory_mib = 1024", "memory_mib = 64"), "outside"),
        (GOOD.replace("memory_mib = 1024", 'memory_mib = "1G"'), "must be an integer"),
        (GOOD.replace("vcpus = 2", "vcpus = true"), "must be an integer"),
        (GOOD.replace("swap_mib = 1024", 'swap_mib = 1024\novercommit = "lots"'),
         "overcommit must be one of"),
        ("# x\n[host]\n", r"at least one \[\[vm\]\]"),
        ("# x\n[[vm]\n", "not valid TOML"),
        (GOOD.replace('name = "vm-a"\n', ""), "name must match"),
        (GOOD.replace("vcpus = 2", 'vcpus = 2\nmessage_vq = "yes"'), "message_vq must be"),
        (GOOD.replace("vcpus = 2", 'vcpus = 2\nguest_driver = "mine"'), "guest_driver must be"),
    ],
)
def test_parse_rejects(text, message):
    with pytest.raises(UsageError, match=message):
        parse(text, "t")


def test_sizes_that_cannot_fit():
    # 1331 + 1024 = 2355 MiB of VMs
    with pytest.raises(UsageError, match="more than host RAM \\+ swap"):
        parse(GOOD.replace("swap_mib = 1024", "swap_mib = 256"), "t")
    with pytest.raises(UsageError, match='overcommit = "none"'):
        parse(GOOD.replace("swap_mib = 1024", 'swap_mib = 1024\novercommit = "none"'), "t")
    s = parse(GOOD.replace("swap_mib = 1024", 'swap_mib = 0\novercommit = "unlimited"'), "t")
    assert s.host.swap_mib == 0


def test_shipped_scenarios_parse():
    scenarios = sorted((REPO_ROOT / "rig" / "scenarios").glob("*.toml"))
    assert scenarios
    for path in scenarios:
        s = parse(path.read_text(), path.stem)
        assert s.description


def test_load_by_name_and_path(tmp_path: Path):
    (tmp_path / "mine.toml").write_text(GOOD)
    assert load("mine", tmp_path).name == "mine"
    assert load(str(tmp_path / "mine.toml"), Path("/nonexistent")).name == "mine"
    with pytest.raises(UsageError, match="no scenario 'nope'.*mine"):
        load("nope", tmp_path)


WORKLOAD = GOOD + """
[workload]
chunk_bytes = 1048576
step_s = 10

[[workload.schedule]]
vm = "vm-a"
chunks = [512, 112]

[[workload.schedule]]
vm = "vm-b"
start_s = 10
chunks = [112, 512]

[bench]
runs = 2
modes = ["vanilla", "free-page-reporting"]
"""


def test_workload_and_bench():
    s = parse(WORKLOAD, "t")
    w = s.workload
    assert w is not None and (w.chunk_bytes, w.step_s, w.threads) == (1 << 20, 10, 1)
    assert w.schedule("vm-b").start_s == 10.0 and w.schedule("vm-b").chunks == (112, 512)
    assert w.schedule("vm-a").start_s == 0.0
    assert w.duration_s() == 30.0
    assert s.bench.runs == 2 and s.bench.modes == ("vanilla", "free-page-reporting")
    assert parse(GOOD, "t").workload is None


@pytest.mark.parametrize(("old", "new", "message"), [
    ('vm = "vm-b"', 'vm = "vm-c"', "vm must name a"),
    ('vm = "vm-b"', 'vm = "vm-a"', "a second schedule for vm-a"),
    ("chunks = [112, 512]", "chunks = []", "chunks must be a non-empty list"),
    ("chunks = [112, 512]", "chunks = [0]", "chunks must be a non-empty list"),
    ("chunks = [112, 512]", "chunks = [5000]", "vm-b would need 5000 MiB"),
    ("start_s = 10", "start_s = -1", "start_s must be"),
    ("step_s = 10", "step_s = 10\nsize = 3", "unknown key 'size'"),
    ("runs = 2", "runs = 0", "runs = 0 is outside"),
    ('"free-page-reporting"]', '"balloon"]', "modes must be"),
    ('"free-page-reporting"]', '"vanilla"]', "modes lists a mode twice"),
])
def test_workload_rejects(old, new, message):
    with pytest.raises(UsageError, match=message):
        parse(WORKLOAD.replace(old, new, 1), "t")


def test_shipped_benchmark_scenarios():
    quick = load("quick", REPO_ROOT / "rig" / "scenarios")
    assert quick.workload is not None and quick.bench.modes == ("vanilla", "auto")
    seed = load("seed-2013", REPO_ROOT / "rig" / "scenarios")
    assert seed.workload is not None and seed.workload.step_s == 60
    assert [v.memory_mib for v in seed.vms] == [1331, 1331] and seed.host.ram_mib == 2048
    assert seed.workload.schedule("vm-up").chunks == (224, 424, 624, 824, 1024)
    assert seed.bench.modes == MODES and seed.bench.runs == 3


def test_every_shipped_scenario_pins_thp_explicitly():
    for path in sorted((REPO_ROOT / "rig" / "scenarios").glob("*.toml")):
        table = tomllib.loads(path.read_text())["host"]
        assert table.get("thp") in ("never", "madvise", "always"), path.name


def test_modes_include_auto_with_free_page_reporting():
    assert "auto+fpr" in MODES and len(MODES) == len(set(MODES)) == 6
    s = parse(WORKLOAD.replace('"free-page-reporting"]', '"auto+fpr"]'), "t")
    assert s.bench.modes == ("vanilla", "auto+fpr")


def test_host_thp_mode():
    assert parse(GOOD, "t").host.thp == "madvise"  # a concrete default
    assert parse(GOOD.replace("swap_mib = 1024", 'swap_mib = 1024\nthp = "never"'),
                 "t").host.thp == "never"
    with pytest.raises(UsageError, match="thp must be one of"):
        parse(GOOD.replace("swap_mib = 1024", 'swap_mib = 1024\nthp = "sometimes"'), "t")
    # "keep" leaves the machine's mode alone: fine for plumbing, refused in a benchmark.
    assert parse(GOOD.replace("swap_mib = 1024", 'swap_mib = 1024\nthp = "keep"'),
                 "t").host.thp == "keep"
    assert "swap_mib = 1024" in WORKLOAD
    with pytest.raises(UsageError, match='thp = "keep" is not allowed in a benchmark'):
        parse(WORKLOAD.replace("swap_mib = 1024", 'swap_mib = 1024\nthp = "keep"', 1), "t")
