"""The state kept in the domain's metadata: written small, read defensively."""

import pytest
from autoballoon.saved_state import SavedState, StateError, parse_state, to_xml

NS = 'xmlns:abd="urn:autoballoon:daemon:1"'


def as_libvirt_returns(xml: str) -> str:
    return xml.replace("<state ", f"<abd:state {NS} ", 1)


@pytest.mark.parametrize("state", [SavedState(800, 224), SavedState(1024, 0, False, True)])
def test_round_trip(state):
    assert parse_state(as_libvirt_returns(to_xml(state))) == state
    assert parse_state(to_xml(state)) == state


def test_the_element_of_older_daemons_is_read_without_a_target():
    assert parse_state(f'<abd:state {NS} auto-inflated-mib="96"/>') == SavedState(None, 96)


@pytest.mark.parametrize(("xml", "why"), [
    ("", "not XML"),
    ("<state", "not XML"),
    ("<other/>", "not ours"),
    (f'<abd:state {NS} version="2" target-mib="1"/>', "version '2'"),
    (f'<abd:state {NS} version="1" auto-inflated-mib="0" enabled="yes" manual="no"/>',
     "target-mib=None"),
    (f'<abd:state {NS} version="1" target-mib="-1" auto-inflated-mib="0" enabled="yes" '
     'manual="no"/>', "target-mib='-1'"),
    (f'<abd:state {NS} version="1" target-mib="1234567890" auto-inflated-mib="0" '
     'enabled="yes" manual="no"/>', "is not a size"),
    (f'<abd:state {NS} version="1" target-mib="512" auto-inflated-mib="0" enabled="true" '
     'manual="no"/>', "enabled='true'"),
    (f'<abd:state {NS} auto-inflated-mib="lots"/>', "auto-inflated-mib='lots'"),
    ("<state>" + "x" * 2000 + "</state>", "more than ours"),
])
def test_anything_else_is_refused(xml, why):
    with pytest.raises(StateError, match=why):
        parse_state(xml)


def test_a_state_without_a_target_is_not_written():
    with pytest.raises(ValueError, match="has a target"):
        to_xml(SavedState(None, 5))
