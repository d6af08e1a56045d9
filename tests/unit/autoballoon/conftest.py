"""Shared by the daemon's tests: ``autoballoon.daemon.main`` configures the root logger
(``logging.basicConfig(force=True)``: a handler on the stderr of the moment, pytest's
capture, closed after the test), so each test takes that handler away again and gives
the root logger its level back."""

from __future__ import annotations

import logging
from collections.abc import Iterator

import pytest


@pytest.fixture(autouse=True)
def restore_root_logging() -> Iterator[None]:
    root = logging.getLogger()
    level = root.level
    yield
    for handler in root.handlers[:]:
        if type(handler) is logging.StreamHandler:  # setup_logging's (pytest's: subclasses)
            root.removeHandler(handler)
    root.setLevel(level)
