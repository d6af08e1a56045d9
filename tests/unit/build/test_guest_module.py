from dataclasses import replace
from pathlib import Path

import pytest

from rig.build.guest_module import (
    driver_digest,
    module_key,
    module_version,
    parse_warnings,
    tar_top_dir,
    version_stamp_source,
)
from rig.build.kernel import GuestKernel
from rig.build.patchseries import has_diff, list_patches

KERNEL = GuestKernel(
    abi="6.1.0-56-amd64", version="6.1.192-2", vmlinuz=Path("/k/vmlinuz"),
    modules_dir=Path("/k/lib/modules/6.1.0-56-amd64"),
    headers_dir=Path("/usr/src/linux-headers-6.1.0-56-amd64"),
    source_tarball=Path("/usr/src/linux-source-6.1.tar.xz"), deb_sha256="0" * 64,
)

DIFF = """From 1 Mon Sep 17 00:00:00 2001
Subject: [PATCH 1/2] virtio_balloon: x
---
diff --git a/drivers/virtio/virtio_balloon.c b/drivers/virtio/virtio_balloon.c
--- a/drivers/virtio/virtio_balloon.c
+++ b/drivers/virtio/virtio_balloon.c
@@ -1 +1 @@
-a
+b
"""
COVER = """From 0 Mon Sep 17 00:00:00 2001
Subject: [PATCH 0/2] virtio_balloon: automatic ballooning

 drivers/virtio/virtio_balloon.c | 2 +-
 1 file changed, 1 insertion(+), 1 deletion(-)
"""


@pytest.fixture
def driver(tmp_path: Path) -> Path:
    d = tmp_path / "guest-driver"
    (d / "patches").mkdir(parents=True)
    (d / "Kbuild").write_text("obj-m += virtio_balloon.o\n")
    (d / "patches" / "README.md").write_text("no patches yet\n")
    return d


def test_same_inputs_same_key(driver: Path):
    assert module_key(KERNEL, driver, False) == module_key(KERNEL, driver, False)


def test_patch_kbuild_w1_and_kernel_change_the_key(driver: Path):
    base = module_key(KERNEL, driver, False)
    assert module_key(KERNEL, driver, True) != base
    w1_key = module_key(KERNEL, driver, True)
    assert module_key(KERNEL, driver, False, test_build=True) not in (base, w1_key)
    assert module_key(replace(KERNEL, version="6.1.193-1"), driver, False) != base
    assert module_key(replace(KERNEL, abi="6.1.0-57-amd64"), driver, False) != base
    (driver / "patches" / "0001-x.patch").write_text(DIFF)
    with_patch = module_key(KERNEL, driver, False)
    assert with_patch != base
    (driver / "patches" / "0001-x.patch").write_text(DIFF + "+c\n")
    assert module_key(KERNEL, driver, False) != with_patch
    (driver / "Kbuild").write_text("obj-m += virtio_balloon.o\n# changed\n")
    assert module_key(KERNEL, driver, False) not in (base, with_patch)


def test_readmes_do_not_change_the_key(driver: Path):
    before = driver_digest(driver)
    (driver / "patches" / "README.md").write_text("edited\n")
    (driver / "README.md").write_text("new\n")
    assert driver_digest(driver) == before


def test_patches_apply_in_name_order(driver: Path):
    for name in ("0002-b.patch", "0010-c.patch", "0001-a.patch", "notes.txt"):
        (driver / "patches" / name).write_text(DIFF)
    assert [p.name for p in list_patches(driver / "patches")] == [
        "0001-a.patch", "0002-b.patch", "0010-c.patch"]


def test_cover_letter_has_no_diff():
    assert has_diff(DIFF)
    assert not has_diff(COVER)


def test_version_stamp():
    src = version_stamp_source(module_version("abc"))
    assert 'MODULE_VERSION("autoballoon-abc");' in src


def test_parse_warnings():
    log = ("  CC [M]  x.o\n"
           "/b/drivers/virtio/virtio_balloon.c:10:5: warning: no previous prototype [-Wx]\n"
           "Skipping BTF generation for x.ko due to unavailability of vmlinux\n")
    assert parse_warnings(log) == (
        "/b/drivers/virtio/virtio_balloon.c:10:5: warning: no previous prototype [-Wx]",)


def test_tar_top_dir():
    assert tar_top_dir(Path("/usr/src/linux-source-6.1.tar.xz")) == "linux-source-6.1"
