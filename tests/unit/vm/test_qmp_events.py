"""Details of QMP events as libvirt hands them over."""

from rig.vm.qmp_events import decode_details


def test_qmp_event_details():
    assert decode_details(None) == {}
    assert decode_details("") == {}
    assert decode_details('{"actual": 5}') == {"actual": 5}
    assert decode_details({"a": 1}) == {"a": 1}
    assert decode_details("3") == {"value": 3}
