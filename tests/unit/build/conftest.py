"""Fixtures shared by the build tests."""

from pathlib import Path

import pytest

from rig.layout import Layout


@pytest.fixture
def layout(tmp_path: Path) -> Layout:
    """A layout under tmp_path whose repository has an empty QEMU patch directory."""
    repo = tmp_path / "repo"
    (repo / "host" / "qemu" / "patches").mkdir(parents=True)
    return Layout(repo=repo, cache=tmp_path / "cache", state=tmp_path / "state",
                  run=tmp_path / "run")
