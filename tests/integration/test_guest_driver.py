"""The guest patch series: kernel style, a warning-free W=1 build of both variants (the
series, and the series plus the test-only patches), and every step of the series building
on its own."""

from __future__ import annotations

import os

import pytest

from rig.build.guest_module import (
    TEST_PATCHES,
    ensure_guest_module,
    ensure_linux_source,
    series_step_warnings,
)
from rig.build.kernel import ensure_kernel
from rig.build.patchseries import has_diff, list_patches
from rig.layout import Layout
from rig.progress import Progress

pytestmark = pytest.mark.skipif(
    os.geteuid() != 0, reason="builds into the root-owned cache (/var/cache/autoballoon)")

PATCHES = list_patches(Layout.default().guest_driver / "patches")
TEST_ONLY = list_patches(Layout.default().guest_driver / TEST_PATCHES)


@pytest.fixture(scope="module")
def kernel():
    return ensure_kernel(Layout.default(), Progress())


def test_series_is_present_with_cover_letter():
    names = [p.name for p in PATCHES]
    assert names and names[0] == "0000-cover-letter.patch"
    assert all(has_diff(p.read_text()) for p in PATCHES[1:])
    assert "*** SUBJECT HERE ***" not in PATCHES[0].read_text()


@pytest.mark.parametrize("patch", PATCHES + TEST_ONLY,
                         ids=[p.name for p in PATCHES] + [f"test-only/{p.name}" for p in TEST_ONLY])
def test_checkpatch_strict_clean(kernel, patch):
    from rig.build.guest_module import checkpatch

    layout = Layout.default()
    ensure_linux_source(layout, Progress(), kernel)
    r = checkpatch(layout, Progress(), kernel, patch)
    assert "total: 0 errors, 0 warnings, 0 checks" in r.stdout, r.stdout


@pytest.mark.parametrize("test_build", [False, True], ids=["release", "test-build"])
def test_w1_build_has_no_warnings(kernel, test_build):
    module = ensure_guest_module(Layout.default(), Progress(), kernel, w1=True,
                                 test_build=test_build)
    assert module.warnings == ()
    assert len(module.patches) == len(PATCHES) - 1 + (len(TEST_ONLY) if test_build else 0)


@pytest.mark.parametrize("count", range(1, len(PATCHES)), ids=[p.name for p in PATCHES[1:]])
def test_every_step_of_the_series_builds_without_warnings(kernel, count, tmp_path):
    # The cover letter (0000) has no diff: the first `count` diffs are PATCHES[:count + 1].
    assert series_step_warnings(Layout.default(), Progress(), kernel, count + 1, tmp_path) == ()
