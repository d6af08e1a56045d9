"""Manual-ballooning detection (host/autoballoon/manual.py)."""

from autoballoon.manual import ManualDetector


def fresh(current=768):
    d = ManualDetector()
    d.added("vm", current)
    return d


def test_following_our_target_is_not_manual():
    d = fresh()
    d.commanded("vm", 704)
    assert [d.actual("vm", a) for a in (760, 740, 720, 704)] == [None] * 4


def test_shrinking_below_every_target_of_ours_is_manual():
    d = fresh()
    d.commanded("vm", 704)
    for a in (740, 704):
        assert d.actual("vm", a) is None
    assert d.actual("vm", 650) == 650  # nobody of ours asked for less than 704


def test_inflate_then_cancel_is_not_manual():
    """The race seen on the rig: 703, then cancel to 767 while the balloon still shrinks."""
    d = fresh(767)
    d.commanded("vm", 735)
    d.commanded("vm", 703)
    d.commanded("vm", 767)
    assert d.actual("vm", 740) is None
    assert d.actual("vm", 718) is None  # on its way to 703: ours
    assert d.actual("vm", 767) is None  # settled on the cancel
    assert d.actual("vm", 700) == 700  # settled: the old 703 no longer excuses this


def test_growing_above_every_target_is_manual():
    d = fresh(768)
    d.commanded("vm", 512)
    assert d.actual("vm", 600) is None
    assert d.actual("vm", 512) is None
    assert d.actual("vm", 518) is None  # within slack
    assert d.actual("vm", 640) == 640
    d.commanded("vm", 700)  # our own deflation: growing towards it is ours
    assert d.actual("vm", 690) is None


def test_unknown_vm_and_removal():
    d = ManualDetector()
    assert d.actual("x", 100) is None
    d.added("x", 512)
    d.removed("x")
    assert d.actual("x", 100) is None
