import gzip
import lzma
import struct
from pathlib import Path

import pytest

from rig.build.debian import apt_fingerprint
from rig.build.kernel import (
    abi_from_depends,
    deb_filename,
    elf_notes,
    extract_vmlinux,
    has_pvh_entry,
    headers_package,
    image_package,
    kernel_dir_name,
    parse_dpkg_versions,
)
from rig.errors import RigError


def test_abi_from_meta_package_depends():
    assert abi_from_depends(["linux-image-6.1.0-56-amd64"]) == "6.1.0-56-amd64"
    assert image_package("6.1.0-56-amd64") == "linux-image-6.1.0-56-amd64"
    assert headers_package("6.1.0-56-amd64") == "linux-headers-6.1.0-56-amd64"


def test_abi_must_be_the_61_series():
    with pytest.raises(RigError, match="not 6.1"):
        abi_from_depends(["linux-image-6.12.0-1-amd64"])


@pytest.mark.parametrize("deps", [[], ["linux-image-6.1.0-56-amd64-unsigned"], ["foo"],
                                  ["linux-image-6.1.0-1-amd64", "linux-image-6.1.0-2-amd64"]])
def test_abi_needs_exactly_one_image_dependency(deps):
    with pytest.raises(RigError):
        abi_from_depends(deps)


def test_deb_filename_matches_apt_get_download():
    assert (deb_filename("linux-image-6.1.0-56-amd64", "6.1.192-2")
            == "linux-image-6.1.0-56-amd64_6.1.192-2_amd64.deb")
    assert deb_filename("qemu-utils", "1:7.2+dfsg-7") == "qemu-utils_1%3a7.2+dfsg-7_amd64.deb"


def test_kernel_dir_name_has_no_colon():
    assert kernel_dir_name("6.1.0-56-amd64", "1:6.1.192-2") == "6.1.0-56-amd64-1_6.1.192-2"


def test_parse_dpkg_versions_keeps_installed_only():
    text = ("linux-source-6.1 installed 6.1.192-2\n"
            "linux-headers-6.1.0-56-amd64 config-files 6.1.190-1\n"
            "busybox-static not-installed \n")
    assert parse_dpkg_versions(text) == {"linux-source-6.1": "6.1.192-2"}


def test_apt_fingerprint_follows_list_changes(tmp_path: Path):
    lists = tmp_path / "lists"
    lists.mkdir()
    (lists / "a_Packages").write_text("one")
    paths = (lists, tmp_path / "status-missing")
    first = apt_fingerprint(paths)
    assert apt_fingerprint(paths) == first
    (lists / "a_Packages").write_text("one more")
    assert apt_fingerprint(paths) != first


# ---- vmlinux extraction (PVH boot) ----------------------------------------------------

def _elf_with_notes(notes: list[tuple[bytes, int, bytes]]) -> bytes:
    """A minimal ELF64 LE file: header, one PT_NOTE program header, the notes."""
    body = b""
    for name, ntype, desc in notes:
        n = name + b"\0"
        body += struct.pack("<III", len(n), len(desc), ntype)
        body += n + b"\0" * (-len(n) % 4) + desc + b"\0" * (-len(desc) % 4)
    ehdr = bytearray(64)
    ehdr[:6] = b"\x7fELF\x02\x01"
    struct.pack_into("<Q", ehdr, 0x20, 64)  # e_phoff
    struct.pack_into("<HH", ehdr, 0x36, 56, 1)  # e_phentsize, e_phnum
    phdr = struct.pack("<IIQQQQQQ", 4, 0, 64 + 56, 0, 0, len(body), len(body), 4)
    return bytes(ehdr) + phdr + body


PVH_ELF = _elf_with_notes([(b"Xen", 6, b"linux\0"), (b"Xen", 18, b"\0\0\0\x01")])


def test_elf_notes_and_pvh():
    assert elf_notes(PVH_ELF) == [("Xen", 6, b"linux\0"), ("Xen", 18, b"\0\0\0\x01")]
    assert has_pvh_entry(PVH_ELF)
    assert not has_pvh_entry(_elf_with_notes([(b"GNU", 3, b"id")]))
    with pytest.raises(ValueError):
        elf_notes(b"MZ not an elf")


@pytest.mark.parametrize("compress", [
    lambda b: lzma.compress(b, format=lzma.FORMAT_XZ),
    gzip.compress,
])
def test_extract_vmlinux_from_bzimage(compress):
    # A false magic first, then the real payload, then trailing bytes (as in a bzImage).
    bzimage = b"setup\xfd7zXZ\x00garbage" + compress(PVH_ELF) + b"\0" * 32
    assert extract_vmlinux(bzimage) == PVH_ELF


def test_extract_vmlinux_without_payload():
    with pytest.raises(RigError, match="boot the vmlinuz"):
        extract_vmlinux(b"no kernel here")
