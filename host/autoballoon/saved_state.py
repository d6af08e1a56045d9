"""What the daemon keeps in each domain's live metadata so a restart resumes where it was.

One small element in our namespace, versioned:

    <abd:state xmlns:abd="urn:autoballoon:daemon:1" version="1" target-mib="800"
               auto-inflated-mib="224" enabled="yes" manual="no"/>

The metadata is writable by anyone with libvirt access, so it is parsed defensively: any
malformed, oversized, unversioned-but-unknown or out-of-range content is a StateError (the
daemon ignores it with a warning). The element written by daemons before version 1
(`<state auto-inflated-mib="N"/>`, no target) is still read: its target is unknown (None).
Pure: no I/O.
"""

from __future__ import annotations

import re
import xml.etree.ElementTree as ET
from dataclasses import dataclass

STATE_NS = "urn:autoballoon:daemon:1"
STATE_PREFIX = "abd"
VERSION = "1"
MAX_XML_CHARS = 1024  # ours is ~150; anything bigger is not ours
_MIB = re.compile(r"\d{1,9}")  # < 1 PiB in MiB
_FLAGS = {"yes": True, "no": False}


class StateError(ValueError):
    """Our metadata element is there but unusable."""


@dataclass(frozen=True)
class SavedState:
    """A VM's automation state: its target (None: unknown, written by an old daemon), how
    much of it automation took, and the per-VM enabled and manual flags."""

    target_mib: int | None
    auto_inflated_mib: int = 0
    enabled: bool = True
    manual: bool = False


def to_xml(state: SavedState) -> str:
    """The element (without namespace: libvirt's setMetadata puts it in ``STATE_NS``)."""
    if state.target_mib is None:
        raise ValueError("a state to save has a target")
    yes_no = {True: "yes", False: "no"}
    return (f'<state version="{VERSION}" target-mib="{int(state.target_mib)}" '
            f'auto-inflated-mib="{int(state.auto_inflated_mib)}" '
            f'enabled="{yes_no[state.enabled]}" manual="{yes_no[state.manual]}"/>')


def parse_state(xml: str) -> SavedState:
    """The state in our element, as libvirt's ``metadata()`` returns it."""
    if len(xml) > MAX_XML_CHARS:
        raise StateError(f"{len(xml)} characters, more than ours ever has")
    try:
        root = ET.fromstring(xml)
    except ET.ParseError as e:
        raise StateError(f"not XML ({e})") from None
    if root.tag not in ("state", f"{{{STATE_NS}}}state"):
        raise StateError(f"element {root.tag!r} is not ours")
    version = root.get("version")
    if version is None:  # written before version 1: only how much automation took
        return SavedState(None, _mib(root, "auto-inflated-mib"))
    if version != VERSION:
        raise StateError(f"version {version!r} is not one this daemon reads ({VERSION})")
    return SavedState(_mib(root, "target-mib"), _mib(root, "auto-inflated-mib"),
                      _flag(root, "enabled"), _flag(root, "manual"))


def _mib(root: ET.Element, name: str) -> int:
    value = root.get(name)
    if value is None or not _MIB.fullmatch(value):
        raise StateError(f"{name}={value!r} is not a size in MiB")
    return int(value)


def _flag(root: ET.Element, name: str) -> bool:
    value = root.get(name)
    if value not in _FLAGS:
        raise StateError(f"{name}={value!r} is not yes or no")
    return _FLAGS[value]


__all__ = ["STATE_NS", "STATE_PREFIX", "SavedState", "StateError", "parse_state", "to_xml"]
