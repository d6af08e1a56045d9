"""QEMU's own qtests for virtio-balloon and QMP pass with our series applied.

Builds a test tree of the same source and patches once per build key (minutes, cached
in /var/cache/autoballoon/qemu/qtest-<key>/), then runs the qtests (seconds). Marked
`vm`: it starts QEMU machines (under the qtest accelerator).
"""

from __future__ import annotations

import os

import pytest

from rig.build.qemu_tests import QTESTS, run_qemu_tests, table
from rig.progress import Progress

pytestmark = [
    pytest.mark.vm,
    pytest.mark.skipif(os.geteuid() != 0, reason="builds into the root-owned cache"),
]


def test_qemu_qtests_pass_with_the_series(layout, stack):
    results = run_qemu_tests(layout, Progress())
    print(table(results))
    assert [r.name for r in results] == list(QTESTS)
    assert all(r.ok for r in results), table(results)
    qos = next(r for r in results if r.name == "qos-test")
    tap = (layout.cache / "qemu").glob("qtest-*/qos-test.tap")
    text = next(tap).read_text()
    for case in ("message-vq/coalesce", "message-vq/malformed", "message-vq/flood",
                 # the ABI of guest-driver/spec: msgq always virtqueue 5, used only when
                 # negotiated, reporting where a driver without the feature expects it,
                 # msg_interval_ms in the configuration space
                 "message-vq/fixed-index", "message-vq/fixed-index-all-queues",
                 "message-vq/not-negotiated", "message-vq/reporting-dense",
                 "message-vq/reporting-fixed", "message-vq/config-default",
                 "message-vq/config-1000"):
        assert f"virtio-balloon-tests/{case}" in text, case
    # the interval's range and VERSION_1 checked at realize (device_add, not qos)
    assert "/virtio-balloon/message-vq/realize" in text
    assert qos.passed >= 35
