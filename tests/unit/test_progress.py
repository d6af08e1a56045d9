"""Progress lines and the summary table."""

import io

import pytest

from rig.progress import Progress


def test_progress_lines_and_summary():
    ticks = iter([0.0, 1.5, 10.0, 10.25, 20.0, 21.0])
    out = io.StringIO()
    p = Progress(stream=out, clock=lambda: next(ticks))
    with p.step("build"):
        pass
    with p.step("fetch") as s:
        s.cached("have it")
    with pytest.raises(RuntimeError), p.step("boom"):
        raise RuntimeError
    text = out.getvalue()
    assert "==> build ..." in text and "<== build: done in 1.5 s" in text
    assert "<== fetch: cached (have it) in 0.2 s" in text
    assert "<== boom: FAILED after 1.0 s" in text
    assert [s.outcome for s in p.steps] == ["done", "cached", "failed"]
    assert "fetch" in p.summary()
