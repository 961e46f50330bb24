"""The teacher's usage in ``report.json`` is checked as it is read, like every other report field:
what the summary reads from it is always there, with its type."""

from __future__ import annotations

import json

import pytest

from featteam.records import write_json
from featteam.report import DataSummary, GoldenReport, RunReport, TeacherSummary, summary_text

USAGE = {"calls": 3, "cache_hits": 1, "prompt_tokens": 10, "completion_tokens": 5}


def _report(usage) -> RunReport:
    report = RunReport(data=DataSummary(path="d.csv", name="d", rows=100, features=3, task="regression",
                                        target="y"), protocol="honest", metric="1-rae", original_search_score=0.5)
    report.steps.golden = GoldenReport(
        n_valid=10, n_records=12, by_source={}, best_score=0.6, median_score=0.5, seconds=1.0,
        teacher=TeacherSummary(backend="openai", model="m", temperature=0.8, usage=usage, raw_transformations=8,
                               raw_error_classes={}, stopped_because="budget"))
    return report


def _edited(tmp_path, usage) -> RunReport:
    """The report written, its usage edited by hand, read back."""
    path = tmp_path / "report.json"
    write_json(path, _report(USAGE))
    data = json.loads(path.read_text())
    data["steps"]["golden"]["teacher"]["usage"] = usage
    path.write_text(json.dumps(data))
    return RunReport.load(path)


def _teacher_line(report: RunReport) -> str:
    return next(line for line in summary_text(report, "out").splitlines() if line.startswith("  teacher "))


def test_usage_round_trips_and_is_summarised(tmp_path):
    report = _edited(tmp_path, USAGE)
    assert report.steps.golden.teacher.usage["calls"] == 3
    assert _teacher_line(report) == "  teacher openai (m): 3 calls, 1 cache hits, 15 tokens; stopped: budget"


def test_missing_usage_counts_read_as_zero(tmp_path):
    report = _edited(tmp_path, {"calls": 2, "max_calls": None, "newer_writers_field": "kept"})
    usage = report.steps.golden.teacher.usage
    assert usage["calls"] == 2 and usage["cache_hits"] == 0 and usage["newer_writers_field"] == "kept"
    assert _teacher_line(report) == "  teacher openai (m): 2 calls, 0 cache hits, 0 tokens; stopped: budget"
    assert _teacher_line(_edited(tmp_path, {})).startswith("  teacher openai (m): 0 calls, 0 cache hits, 0 tokens")


@pytest.mark.parametrize("usage", [
    {"calls": "3", "cache_hits": 0, "prompt_tokens": "10", "completion_tokens": 5},
    {"calls": 3.5},
    {"prompt_tokens": None},
    {"completion_tokens": True},
    {"errors": ["RateLimitError"]},
    [],
])
def test_usage_of_the_wrong_types_is_a_damaged_report_started_afresh(tmp_path, caplog, usage):
    assert _edited(tmp_path, usage) == RunReport()
    assert "cannot be read" in caplog.text and "starting the report afresh" in caplog.text


def test_a_teacher_summary_checks_its_usage_when_it_is_made():
    with pytest.raises(TypeError):
        TeacherSummary(backend="openai", model="m", temperature=0.8, usage={"calls": "3"}, raw_transformations=0,
                       raw_error_classes={}, stopped_because="")
