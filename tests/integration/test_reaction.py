"""autoballoond's reaction time on a real VM (a short run of `rig reaction`)."""

from pathlib import Path

import pytest

from rig.bench.reaction import measure
from rig.progress import Progress

pytestmark = pytest.mark.vm


def test_reaction_time_host_pressure_and_guest_message(layout, stack, tmp_path: Path):
    result = measure(layout, stack, Progress(), rounds=8, workdir=tmp_path)
    print(result.table())
    assert result.host.n >= 8 and result.guest.n >= 8
    # The target is 50 ms p99 (issue 4); on a shared 2-core TCG machine allow some slack
    # here and report the long run (`rig reaction --rounds 60`) in the closing note.
    assert result.all.p99_ms < 250, result.table()
    assert (tmp_path / "reaction.json").exists()
