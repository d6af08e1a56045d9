from pathlib import Path

import pytest

from rig.build import debian
from rig.build import qemu_source as qs
from rig.errors import RigError
from rig.layout import Layout

# ---- version choice and file names ------------------------------------------------------

def test_pick_source_version_takes_the_newest_matching():
    versions = [
        "1:7.2+dfsg-7+deb12u15",
        "1:7.2+dfsg-7+deb12u18",
        "1:7.2+dfsg-7+deb12u9",
        "1:10.0.2+ds-1~bpo12+1",
        "1:8.0+dfsg-1",
    ]
    assert qs.pick_source_version(versions) == "1:7.2+dfsg-7+deb12u18"


def test_pick_source_version_none_when_nothing_matches():
    assert qs.pick_source_version([]) is None
    assert qs.pick_source_version(["1:10.0.2+ds-1~bpo12+1"]) is None


def test_no_version_message_is_one_line_and_says_what_to_do():
    msg = qs.no_version_message(["1:10.0.2+ds-1"])
    assert "\n" not in msg
    assert "apt-get update" in msg and "deb-src" in msg
    assert "1:10.0.2+ds-1" in msg


def test_source_file_names():
    v = "1:7.2+dfsg-7+deb12u18"
    assert qs.dsc_name(v) == "qemu_7.2+dfsg-7+deb12u18.dsc"
    assert qs.dsc_name("7.2-1") == "qemu_7.2-1.dsc"
    assert qs.source_dir_name(v) == "1_7.2+dfsg-7+deb12u18"


# ---- resolving the version (no apt) ----------------------------------------------------

def test_resolve_source_version_without_candidates(tmp_path: Path, monkeypatch, layout: Layout):
    monkeypatch.setattr(debian, "apt_fingerprint", lambda: "fp")
    monkeypatch.setattr(qs, "available_source_versions", lambda _layout: ["1:10.0-1"])
    with pytest.raises(RigError, match="apt-get update"):
        qs.resolve_source_version(layout)


def test_resolve_source_version_is_remembered_per_apt_state(
    tmp_path: Path, monkeypatch, layout: Layout
):
    asked = []
    state = {"fp": "a"}
    monkeypatch.setattr(debian, "apt_fingerprint", lambda: state["fp"])

    def versions(_layout):
        asked.append(1)
        return ["1:7.2+dfsg-7+deb12u15", "1:7.2+dfsg-7+deb12u18"]

    monkeypatch.setattr(qs, "available_source_versions", versions)
    assert qs.resolve_source_version(layout) == "1:7.2+dfsg-7+deb12u18"
    assert qs.resolve_source_version(layout) == "1:7.2+dfsg-7+deb12u18"
    assert len(asked) == 1
    state["fp"] = "b"
    qs.resolve_source_version(layout)
    assert len(asked) == 2
