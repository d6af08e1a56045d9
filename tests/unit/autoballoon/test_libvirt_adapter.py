import pytest
from autoballoon.events import GuestPressure
from autoballoon.libvirt_adapter import Selector, parse_guest_message


def test_selector():
    yes, no = (lambda _ns: True), (lambda _ns: False)
    assert Selector().matches("anything", no)
    assert Selector(name_pattern=r"autoballoon-.*").matches("autoballoon-vm-up", no)
    assert not Selector(name_pattern=r"autoballoon-.*").matches("other", yes)
    assert Selector(metadata_ns="urn:x").matches("a", yes)
    assert not Selector(metadata_ns="urn:x").matches("a", no)


def test_guest_message_valid():
    d = '{"qom-path": "/machine/peripheral/balloon0/virtio-backend", "level": "medium",' \
        ' "seq": 4, "events": 6, "messages": 3}'
    assert parse_guest_message("vm", 1.0, d) == GuestPressure(1.0, "vm", "medium", 3)


@pytest.mark.parametrize("details", [
    None, "", "[]", "not json", '{"level": "severe"}', '{"level": 3}',
    '{"level": "low", "messages": 0}', '{"level": "low", "messages": "many"}',
])
def test_guest_message_untrusted_input_is_dropped(details):
    assert parse_guest_message("vm", 0.0, details) is None


def test_guest_message_count_is_bounded():
    m = parse_guest_message("vm", 0.0, '{"level": "low", "messages": 99999999999}')
    assert m is not None and m.messages == 1 << 20
