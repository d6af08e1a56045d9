"""Manual ballooning (host/autoballoon/manual.py): only a target we did not set is the
operator's; the balloon's size, which the guest controls, never makes a VM manual."""

from autoballoon.manual import ManualDetector


def fresh(current=768):
    d = ManualDetector()
    d.added("vm", current)
    return d


def test_following_our_target_is_not_a_deviation():
    d = fresh()
    d.commanded("vm", 704)
    assert [d.actual("vm", a) for a in (760, 740, 720, 704)] == [None] * 4
    assert d.deviation("vm") is None


def test_the_guest_alone_cannot_make_a_vm_manual():
    """A guest writes its balloon's "actual" as it likes: shrinking past or growing past
    every target of ours is reported as a deviation, never as the operator's target."""
    d = fresh()
    d.commanded("vm", 704)
    for a in (740, 704):
        assert d.actual("vm", a) is None
    assert d.actual("vm", 650) is None  # nobody of ours asked for less than 704
    assert d.deviation("vm") == "below"
    assert d.actual("vm", 900) is None
    assert d.deviation("vm") == "above"
    assert d.actual("vm", 704) is None
    assert d.deviation("vm") is None  # back on our target


def test_a_target_we_did_not_set_is_the_operators():
    d = fresh(768)
    d.commanded("vm", 704)
    assert d.target("vm", 704) is None  # ours
    assert d.target("vm", 768) is None  # ours too: the balloon has not settled since
    assert d.target("vm", 600) == 600
    assert d.target("ghost", 600) is None


def test_a_read_after_our_last_command_holds_only_our_latest_target():
    """An older target of ours, read after the newer one returned, was set again by
    someone else (the loop passes latest_only then)."""
    d = fresh(768)
    d.commanded("vm", 704)
    assert d.target("vm", 768, latest_only=True) == 768
    assert d.target("vm", 770, latest_only=True) is None  # now the operator's, within slack


def test_inflate_then_cancel_is_not_a_deviation():
    """The race seen on the rig: 703, then cancel to 767 while the balloon still shrinks."""
    d = fresh(767)
    d.commanded("vm", 735)
    d.commanded("vm", 703)
    d.commanded("vm", 767)
    assert d.actual("vm", 740) is None and d.deviation("vm") is None
    assert d.actual("vm", 718) is None and d.deviation("vm") is None  # on its way to 703
    assert d.actual("vm", 767) is None  # settled on the cancel
    d.actual("vm", 700)
    assert d.deviation("vm") == "below"  # settled: the old 703 no longer excuses this


def test_growing_above_every_target_is_a_deviation():
    d = fresh(768)
    d.commanded("vm", 512)
    for a in (600, 512, 518):  # 518: within slack
        d.actual("vm", a)
        assert d.deviation("vm") is None
    d.actual("vm", 640)
    assert d.deviation("vm") == "above"
    d.commanded("vm", 700)  # our own deflation: growing towards it is ours
    d.actual("vm", 690)
    assert d.deviation("vm") is None


def test_unknown_vm_and_removal():
    d = ManualDetector()
    assert d.actual("x", 100) is None and d.deviation("x") is None
    d.added("x", 512)
    d.removed("x")
    assert d.actual("x", 100) is None and d.target("x", 100) is None
