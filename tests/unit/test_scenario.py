import tomllib
from pathlib import Path

import pytest

from rig.errors import UsageError
from rig.layout import REPO_ROOT
from rig.scenario import MODES, Schedule, load, parse

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
    assert s.vms[1].lies is None
    s3 = parse(GOOD.replace("vcpus = 2", 'vcpus = 2\nguest_driver = "test"\nlies = "flood"'),
               "t")
    assert s3.vms[1].lies == "flood"


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
        (GOOD.replace("vcpus = 2", 'vcpus = 2\nlies = "always"'), "lies must be one of flood"),
        (GOOD.replace("vcpus = 2", 'vcpus = 2\nlies = "flood"'), 'needs guest_driver = "test"'),
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
    # auto+fpr: the configuration we recommend (issue 13), the default of `make bench`
    assert quick.workload is not None and quick.bench.modes == ("vanilla", "auto+fpr")
    assert quick.reproduction is not None and quick.reproduction.mode == "auto+fpr"
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


# ---- workload kinds (issue 11): ebizzy, stream, reread, idle -------------------------

KINDS = GOOD.replace('name = "vm-b"', 'name = "vm-b"\ndata_disk_mib = 2048') + """
[[vm]]
name = "vm-c"
memory_mib = 256
guest_swap_mib = 256

[workload]
step_s = 10

[[workload.schedule]]
vm = "vm-a"
kind = "ebizzy"
chunks = [512, 112]

[[workload.schedule]]
vm = "vm-b"
start_s = 5
kind = "reread"
hot_mib = [64, 256, 1024]

[[workload.schedule]]
vm = "vm-c"
kind = "idle"
mib = [100, 300]
"""
STREAM = KINDS.replace('kind = "reread"\nhot_mib = [64, 256, 1024]', 'kind = "stream"\nsteps = 4')


def test_workload_kinds():
    s = parse(KINDS.replace("swap_mib = 1024", 'swap_mib = 1024\novercommit = "unlimited"', 1),
              "t")
    assert s.vm("vm-b").data_disk_mib == 2048 and s.vm("vm-a").data_disk_mib is None
    w = s.workload
    assert w is not None
    assert w.schedule("vm-a") == Schedule("vm-a", 0.0, (512, 112))  # kind defaults to ebizzy
    reread = w.schedule("vm-b")
    assert reread == Schedule("vm-b", 5.0, kind="reread", hot_mib=(64, 256, 1024))
    assert reread.sizes() == (64, 256, 1024) and reread.step_count == 3 and reread.chunks == ()
    idle = w.schedule("vm-c")
    assert idle == Schedule("vm-c", 0.0, kind="idle", mib=(100, 300))
    assert idle.sizes() == (100, 300)
    assert w.duration_s() == 35.0  # reread: 5 + 3 * 10
    stream = parse(STREAM.replace("swap_mib = 1024", 'swap_mib = 1024\novercommit = "unlimited"',
                                  1), "t").workload
    assert stream is not None
    assert stream.schedule("vm-b") == Schedule("vm-b", 5.0, kind="stream", steps=4)
    assert stream.schedule("vm-b").sizes() == (0, 0, 0, 0)
    assert stream.duration_s() == 45.0
    own = parse(KINDS.replace("mib = [100, 300]", "mib = [100]\nstep_s = 60").replace(
        "swap_mib = 1024", 'swap_mib = 1024\novercommit = "unlimited"', 1), "t").workload
    assert own is not None and own.schedule("vm-c").step_s == 60
    assert own.step_of(own.schedule("vm-c")) == 60 and own.step_of(own.schedule("vm-a")) == 10
    assert own.duration_s() == 60.0


def test_existing_scenarios_are_ebizzy_schedules_as_before():
    for name in ("quick", "seed-2013", "smoke"):
        path = REPO_ROOT / "rig" / "scenarios" / f"{name}.toml"
        s = parse(path.read_text(), path.stem)
        assert all(v.data_disk_mib is None for v in s.vms)
        for sch in s.workload.schedules if s.workload else ():
            assert sch == Schedule(sch.vm, sch.start_s, sch.chunks) and sch.kind == "ebizzy"
            assert sch.step_count == len(sch.chunks) and sch.sizes() == sch.chunks
    quick = load("quick", REPO_ROOT / "rig" / "scenarios").workload
    assert quick is not None and quick.duration_s() == 60.0


@pytest.mark.parametrize(("old", "new", "message"), [
    ('kind = "idle"', 'kind = "fio"',
     "kind must be one of ebizzy, stream, reread, idle, got 'fio'"),
    ('kind = "idle"', "kind = 3", "kind must be one of"),
    # a key of another kind: refused, naming the kind's own keys
    ('kind = "idle"\nmib', 'kind = "idle"\nchunks', r"\(kind idle\): unknown key 'chunks' "
     r"\(allowed: kind, mib, start_s, step_s, vm\)"),
    ('kind = "ebizzy"\nchunks', 'kind = "ebizzy"\nmib', r"\(kind ebizzy\): unknown key 'mib' "
     r"\(allowed: chunks, kind, start_s, step_s, vm\)"),
    ("hot_mib = [64, 256, 1024]", "hot_mib = [64]\nsteps = 2", r"\(kind reread\): unknown key "
     r"'steps' \(allowed: hot_mib, kind, start_s, step_s, vm\)"),
    ('kind = "reread"\nhot_mib = [64, 256, 1024]', 'kind = "stream"\nsteps = 4\nhot_mib = [1]',
     r"\(kind stream\): unknown key 'hot_mib' \(allowed: kind, start_s, step_s, steps, vm\)"),
    ('kind = "ebizzy"\nchunks = [512, 112]', 'kind = "stream"\nchunks = [512, 112]',
     "unknown key 'chunks'"),
    ("mib = [100, 300]", "mib = [100]\nstep_s = 0", r"step_s = 0 is outside \[1, 86400\]"),
    ("mib = [100, 300]", 'mib = [100]\nstep_s = "1m"', "step_s must be an integer"),
    # the kind's key is required
    ("mib = [100, 300]", "", "a schedule of kind idle needs mib"),
    ("hot_mib = [64, 256, 1024]", "", "a schedule of kind reread needs hot_mib"),
    ('kind = "reread"\nhot_mib = [64, 256, 1024]', 'kind = "stream"',
     "a schedule of kind stream needs steps"),
    # sizes
    ("mib = [100, 300]", "mib = []", r"mib must be a non-empty list of MiB to hold"),
    ("mib = [100, 300]", "mib = [0]", r"mib must be a non-empty list .*\[1, 1048576\]"),
    ("mib = [100, 300]", "mib = [true]", "mib must be a non-empty list"),
    ("mib = [100, 300]", 'mib = "100"', "mib must be a non-empty list"),
    ("mib = [100, 300]", "mib = [512]", "vm-c would need 512 MiB for idle memory but has "
     "256 MiB RAM"),
    ("hot_mib = [64, 256, 1024]", "hot_mib = [0]", "hot_mib must be a non-empty list"),
    ("hot_mib = [64, 256, 1024]", "hot_mib = [64, 2048]",
     r"hot_mib 2048 must be smaller than vm-b's data disk \(data_disk_mib = 2048\)"),
    ("data_disk_mib = 2048", "data_disk_mib = 0", r"data_disk_mib = 0 is outside \[1, 1048576\]"),
    ("data_disk_mib = 2048", 'data_disk_mib = "2G"', "data_disk_mib must be an integer"),
    ("data_disk_mib = 2048", "data_disk_mib = 2097152", "data_disk_mib = 2097152 is outside"),
    # page-cache kinds need the VM's data disk
    ("data_disk_mib = 2048\n", "", "a reread schedule reads the VM's data disk but vm-b has "
     "none: set data_disk_mib in its"),
])
def test_workload_kind_rejects(old, new, message):
    assert old in _unlimited(KINDS)
    _refused(_unlimited(KINDS).replace(old, new, 1), message)


def _unlimited(text: str) -> str:
    """The scenario with overcommit unlimited (its VMs need not fit the host)."""
    return text.replace("swap_mib = 1024", 'swap_mib = 1024\novercommit = "unlimited"', 1)


def _refused(text: str, message: str) -> None:
    """parse refuses `text` with one line matching `message`."""
    with pytest.raises(UsageError, match=message) as e:
        parse(text, "t")
    assert "\n" not in str(e.value)


@pytest.mark.parametrize(("old", "new", "message"), [
    ("steps = 4", "steps = 0", r"steps = 0 is outside \[1, 10000\]"),
    ("steps = 4", "steps = 10001", "steps = 10001 is outside"),
    ("steps = 4", "steps = [4]", "steps must be an integer"),
    ("data_disk_mib = 2048\n", "", "a stream schedule reads the VM's data disk but vm-b has "
     "none"),
])
def test_stream_rejects(old, new, message):
    _refused(_unlimited(STREAM).replace(old, new, 1), message)
