"""A pytest plugin that records nbval's verdict on each notebook cell as JSON.

``coursekit grade`` runs nbval with ``-p coursekit.authoring.nbval_report`` and the
environment variable ``COURSEKIT_NBVAL_REPORT`` naming the output file. It lives in the
grader's pytest process, not in the learner's kernel.
"""
from __future__ import annotations

import json
import os
import re

import pytest

_ANSI = re.compile(r"\x1b\[[0-9;]*[A-Za-z]")
_results: dict[int, dict] = {}


def strip_ansi(text: str) -> str:
    return _ANSI.sub("", text)


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item, call):
    outcome = yield
    report = outcome.get_result()
    match = re.fullmatch(r"Cell (\d+)", getattr(item, "name", ""))
    if match is None or (report.when != "call" and not report.failed):
        return
    index = int(match.group(1))
    entry = {"outcome": report.outcome, "message": ""}
    if report.failed:
        error = None
        for out in getattr(item, "test_outputs", None) or []:
            if out.get("output_type") == "error":
                error = out
        if error is not None:
            entry["message"] = f"{error.get('ename')}: {strip_ansi(str(error.get('evalue')))}"
        elif call.excinfo is not None:
            entry["message"] = strip_ansi(str(call.excinfo.value)).strip().splitlines()[0]
    _results[index] = entry


def pytest_sessionfinish(session, exitstatus):
    path = os.environ.get("COURSEKIT_NBVAL_REPORT")
    if path:
        with open(path, "w", encoding="utf-8") as fh:
            json.dump({str(k): v for k, v in sorted(_results.items())}, fh)
