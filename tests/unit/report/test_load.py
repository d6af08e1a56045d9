"""Loading results: a run's summary checked against its raw files."""

from rig.report.load import check_metrics


def test_check_metrics():
    assert check_metrics({"a": 1, "b": 2.5}, {"a": 1, "b": 2.5}) == "matches (2 metrics)"
    assert check_metrics({"a": 1, "b": 2.5}, {"a": 2, "c": 1}) == (
        "DIFFERS: a: summary 1, raw files 2; b only in the summary; c only in the raw files")
