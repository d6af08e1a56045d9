"""deb-src derivation and apt-cache policy parsing."""

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
