"""A pytest plugin that records nbval's verdict on each notebook cell as JSON.

``coursekit grade`` decides grades in its own sandbox (see coursekit/authoring/sandbox/); this plugin is
how its tests and an instructor compare them with plain nbval::

    COURSEKIT_NBVAL_REPORT=verdicts.json pytest --nbval-lax \
        -p coursekit.authoring.nbval_report submissions/*/02_neurons.ipynb

writes ``{"<notebook path>::<code-cell index>": {"outcome": "passed" | "failed" |
"skipped", "message": "<first error line>"}}``, the path resolved, the index counting
code cells from 0 as nbval's ``Cell N`` does. It runs in pytest's process, not in the
notebook's kernel.
"""
from __future__ import annotations

import json
import os
import re
from pathlib import Path

import pytest

_ANSI = re.compile(r"\x1b\[[0-9;]*[A-Za-z]")
_results: dict[str, dict] = {}


def strip_ansi(text: str) -> str:
    return _ANSI.sub("", text)


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item, call):
    outcome = yield
    report = outcome.get_result()
    match = re.fullmatch(r"Cell (\d+)", getattr(item, "name", ""))
    if match is None or (report.when != "call" and not report.failed and not report.skipped):
        return
    key = f"{Path(str(item.fspath)).resolve()}::{int(match.group(1))}"
    entry = {"outcome": report.outcome, "message": ""}
    if report.failed:
        error = None
        for out in getattr(item, "test_outputs", None) or []:
            if out.get("output_type") == "error":
                error = out
        if error is not None:
            entry["message"] = f"{error.get('ename')}: {strip_ansi(str(error.get('evalue')))}"
        elif call.excinfo is not None:
            text = strip_ansi(str(call.excinfo.value)).strip()
            entry["message"] = text.splitlines()[0] if text else ""
    _results[key] = entry


def pytest_sessionfinish(session, exitstatus):
    path = os.environ.get("COURSEKIT_NBVAL_REPORT")
    if path:
        with open(path, "w", encoding="utf-8") as fh:
            json.dump(dict(sorted(_results.items())), fh, indent=1)
