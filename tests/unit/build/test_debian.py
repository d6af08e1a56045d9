"""deb-src derivation, apt-cache policy parsing and Debian version ordering."""

import shutil
import subprocess

import pytest

from rig.build import debian
from rig.errors import RigError

SOURCES = """\
Types: deb
# a comment
URIs: http://mirror.example/debian
Suites: bookworm bookworm-updates
Components: main
Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg

Types: deb
URIs: http://mirror.example/debian-security
Suites: bookworm-security
Components: main
Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg
"""


def test_deb_src_copies_every_deb_entry():
    out = debian.derive_deb_src(SOURCES)
    entries = debian.parse_deb822(out)
    assert [e.get("Types") for e in entries] == ["deb-src", "deb-src"]
    assert entries[0].get("URIs") == "http://mirror.example/debian"
    assert entries[0].get("Suites") == "bookworm bookworm-updates"
    assert entries[1].get("Signed-By").endswith("debian-archive-keyring.gpg")
    assert not debian.has_deb_src(SOURCES)
    assert debian.has_deb_src(out)


def test_deb_src_needs_a_deb_entry():
    with pytest.raises(RigError):
        debian.derive_deb_src("Types: deb-src\nURIs: x\n")
    with pytest.raises(ValueError):
        debian.parse_deb822("Types deb\n")


POLICY = """\
busybox-static:
  Installed: (none)
  Candidate: 1:1.35.0-4+deb12u1+b1
  Version table:
     1:1.35.0-4+deb12u1+b1 500
        500 http://mirror.example/debian bookworm/main amd64 Packages
no-such-thing:
  Installed: (none)
  Candidate: (none)
  Version table:
"""


def test_parse_candidates():
    assert debian.parse_candidates(POLICY) == {
        "busybox-static": "1:1.35.0-4+deb12u1+b1", "no-such-thing": None}


# ---- Debian version ordering ------------------------------------------------------------

ORDERED_PAIRS = [
    ("1.0", "1.0.1"),
    ("1.0~rc1", "1.0"),
    ("1.0~rc1", "1.0~rc2"),
    ("1.0~~", "1.0~"),
    ("1.0", "1.0a"),
    ("1.0a", "1.0+"),
    ("1.0", "1.0-1"),
    ("1.0-1", "1.0-2"),
    ("1.0-9", "1.0-10"),
    ("9.9-9", "1:0.1-1"),
    ("1:7.2+dfsg-7", "1:7.2+dfsg-7+deb12u1"),
    ("1:7.2+dfsg-7+deb12u9", "1:7.2+dfsg-7+deb12u10"),
    ("1:7.2+dfsg-7+deb12u15", "1:7.2+dfsg-7+deb12u18"),
    ("1:7.2+dfsg-7+deb12u18", "1:7.2+dfsg-8"),
    ("1:7.2+dfsg-7+deb12u18", "1:7.2.1+dfsg-1"),
    ("1:7.2+dfsg-7~bpo11+1", "1:7.2+dfsg-7"),
    ("2.01", "2.1a"),
    ("a-b-1", "a-b-2"),  # the revision is after the last hyphen
]


@pytest.mark.parametrize(("lo", "hi"), ORDERED_PAIRS)
def test_compare_versions_orders_like_dpkg(lo, hi):
    assert debian.compare_versions(lo, hi) == -1
    assert debian.compare_versions(hi, lo) == 1
    assert debian.compare_versions(lo, lo) == 0


@pytest.mark.parametrize(("a", "b"), [("1.01", "1.1"), ("0:1.0", "1.0"), ("1.0-0", "1.0-")])
def test_compare_versions_equal_spellings(a, b):
    assert debian.compare_versions(a, b) == 0


@pytest.mark.skipif(shutil.which("dpkg") is None, reason="no dpkg to cross-check against")
@pytest.mark.parametrize(("lo", "hi"), ORDERED_PAIRS)
def test_compare_versions_agrees_with_dpkg(lo, hi):
    r = subprocess.run(["dpkg", "--compare-versions", lo, "lt", hi], check=False)
    assert r.returncode == 0


def test_bad_versions_are_rejected():
    with pytest.raises(ValueError):
        debian.compare_versions("x:1.0", "1.0")
    with pytest.raises(ValueError):
        debian.compare_versions("1:-1", "1.0")
