"""The test suite: unit/ (pure logic, grouped like the packages they test) and
integration/ (real VMs, marker ``vm``)."""

from pathlib import Path

#: Raw inputs captured on real machines, with their expected parses.
FIXTURES = Path(__file__).resolve().parent / "fixtures"
