"""Scoring (step 4 of :mod:`coursekit.authoring.grade`): points, reasons and feedback
from the sandbox's :class:`~coursekit.authoring.sandbox.messages.JobResult`, and the
written answers set aside for a person (step 5).
"""
from __future__ import annotations

import os
import re
from pathlib import Path
from typing import TYPE_CHECKING

from coursekit.authoring.gradebook import GradeRow
from coursekit.authoring.release import MARKDOWN_STUB
from coursekit.authoring.sandbox.messages import Error, Job, JobResult, Stop
from coursekit.authoring.submission import cell_grade_id
from coursekit.checks.assertions import short_text

if TYPE_CHECKING:
    from coursekit.authoring.grade import Settings

MAX_MESSAGE = 4000          # characters of a check's message kept in the feedback


def _label(source: str) -> str:
    first = next((l.strip() for l in source.splitlines() if l.strip()), "")
    return f'the cell starting "{first[:60]}"'


def _stop_phrase(stop: Stop, settings: Settings) -> str:
    why = stop.why
    if why == "sandbox":
        detail = stop.detail.removeprefix("grading sandbox: ")
        detail = detail.removesuffix(" is not allowed while grading")
        return f"did something grading does not allow: {detail}"
    return {
        "timeout": f"ran past the {settings.cell_timeout} s time limit for one cell "
                   "(an endless loop, a sleep or too much work?)",
        "notebook-timeout": f"was running when the notebook reached its "
                            f"{settings.notebook_timeout} s time limit",
        "memory": f"ran out of memory (the limit is {settings.memory_mb} MB)",
        "exit": "made the kernel exit (exit() or quit())",
        "protocol": "interfered with the grader (tampering)",
    }.get(why, "ended the notebook's process (os._exit, a crash or a kill)")


def _message(error: Error | None) -> str:
    """The feedback for a failed check. A check's own failure (``CheckFailure``) is shown
    whole; any other exception came from the answer's code, and its text, the
    learner's own, is cut to a line or two (``short_text`` says what was cut)."""
    if error is None:
        return "the check failed"
    ename, evalue = error.ename, error.evalue.strip()
    if ename == "CheckFailure" and evalue:
        return evalue
    return f"{ename}: {short_text(evalue)}" if evalue else ename


def _reason(message: str, error: Error | None, copy_errors: dict[str, str]) -> str:
    """The gradebook's one-line reason: a check's first line, which never quotes the
    learner (``call`` puts their text on a line of its own), or for an exception from
    the answer's code only its type; its text stays in that learner's feedback. When
    the grader could not copy an object the check reads, that is the reason."""
    if copy_errors and error is not None and error.ename != "CheckFailure":
        name, why = sorted(copy_errors.items())[0]
        return f"the grader could not copy `{name}` out of the notebook ({why[:120]})"
    if error is not None and error.ename != "CheckFailure":
        name = re.search(r"name '(\w+)' is not defined", error.evalue)
        if error.ename == "NotImplementedError":
            return "not answered (NotImplementedError)"
        if error.ename == "NameError" and name:
            return f"NameError: name '{name.group(1)}' is not defined"
        return f"{error.ename} raised while the check ran (see the feedback)"
    return _first_line(message)


def _first_line(message: str) -> str:
    lines = [l.strip() for l in message.strip().splitlines() if l.strip()]
    if not lines:
        return "failed"
    text = lines[0]
    if "NotImplementedError" in message and "not written yet" not in text:
        text = "not answered (NotImplementedError)"
    return text[:300]


def _clean(text: str, folder: Path) -> str:
    """Remove what changes from run to run: temporary paths, memory addresses."""
    for path in {str(folder), os.path.realpath(folder)}:
        text = text.replace(path, "<grading folder>")
    text = re.sub(r"/[^\s'\"]*?coursekit-grading-(?:area-[A-Za-z0-9_]+/coursekit-grading-)?"
                  r"[A-Za-z0-9_]+", "<grading area>", text)
    text = re.sub(r"0x[0-9a-fA-F]{6,}", "0x...", text)
    text = re.sub(r"<ipython-input-\d+-[0-9a-f]+>", "<cell>", text)
    return text[:MAX_MESSAGE]


def _name_context(message: str, check_cell: int, job: Job, result: JobResult) -> str:
    """For a NameError, the earlier cell whose error left the name undefined."""
    match = re.search(r"name '(\w+)' is not defined", message)
    if not match:
        return ""
    name = match.group(1)
    for i in range(check_cell - 1, -1, -1):
        cell, err = job.cells[i], result.cells[i].error
        if cell.check is None and err is not None and re.search(rf"\b{name}\b", cell.source):
            first = (err.evalue.splitlines() or [""])[0][:120]
            return (f" ({_label(cell.source)} raised {err.ename}: {first}, so "
                    f"`{name}` was never defined)")
    return ""


def score(row: GradeRow, graded, job: Job, result: JobResult, settings: Settings,
          folder: Path) -> None:
    """Fill the row's points, reasons and feedback from the sandbox's result."""
    stop = result.stop
    code_cells = [c for c in graded.cells if c.cell_type == "code"]
    for check, verdict in zip(job.checks, result.checks):
        gid, outcome = check.gid, verdict.outcome
        if outcome == "passed":
            row.points[gid] = row.max_points[gid]
            row.feedback[gid] = "passed"
            continue
        if outcome == "not-run" and stop is not None and stop.cell == check.cell:
            reason = message = "the check " + _stop_phrase(stop, settings)
        elif outcome == "not-run" and stop is not None:
            where = _label(job.cells[stop.cell].source) if stop.cell is not None else "the notebook"
            reason = message = (f"not run: {where} {_stop_phrase(stop, settings)}; "
                                "grading stops there, as nbval does, so later cells did not run")
        elif outcome == "not-run":
            reason = message = "not run: the notebook stopped before this check"
        elif outcome == "stopped":
            reason = message = "the check " + _stop_phrase(verdict.stop, settings)
        else:
            message = _clean(_message(verdict.error), folder)
            if verdict.tampered:
                names = ", ".join(verdict.tampered[:5])
                reason = (f"tampering: the submission's code changed the grader's tools "
                          f"while the check ran ({names}); scored zero")
                message = reason + "\n\n" + message
            else:
                reason = (_reason(message, verdict.error, verdict.copy_errors)
                          + _name_context(message, check.cell, job, result))
                for name, error in sorted(verdict.copy_errors.items()):
                    message += (f"\n(note: the grader could not copy `{name}` out of the "
                                f"notebook: {error})")
            if verdict.kernel is None and result.cells[check.cell].ran \
                    and not verdict.copy_errors:
                row.reasons.append(f"{gid}: passed inside the notebook but failed when the "
                                   "grader re-ran it in a clean process (the notebook may "
                                   "tamper with checks)")
        saved = code_cells[check.cell].metadata.get("coursekit_saved_outputs", "")
        if f"PASSED {gid}" in saved:
            row.reasons.append(f"{gid}: the saved output shows a pass that the grader's run "
                               "does not reproduce (outputs from another run?)")
        row.reasons.append(f"{gid}: {_clean(reason, folder)}")
        row.feedback[gid] = _clean(message, folder)


def sandbox_label(result: JobResult, settings: Settings) -> str:
    """What confined the notebook, in the gradebook's words (docs/grading.md)."""
    confinement = result.confinement
    if result.bubblewrap:
        return ("bubblewrap: allow-listed files, no network" if confinement == "view" else
                "bubblewrap: allow-listed files, no network (no inner namespaces)")
    if confinement == "view":
        return "namespaces: allow-listed files, no network"
    if confinement == "read-only":
        return "namespaces: read-only files, no network (the allow-list could not be built)"
    if not settings.isolate:
        return "audit hook only: isolation turned off"
    return "audit hook only: namespaces unavailable here"


def written_answers(row: GradeRow, nb) -> None:
    """Set the learner's written answers aside for a person (step 5): the text goes into
    the row and its points wait (out of ``row.points``); an unchanged stub or a missing
    cell scores zero with the reason."""
    stub = "\n".join(MARKDOWN_STUB).strip()
    for gid in row.manual:
        texts = [c.source for c in nb.cells
                 if c.cell_type == "markdown" and cell_grade_id(c) == gid]
        text = "\n\n".join(t.strip() for t in texts).strip()
        if not texts:
            row.reasons.append(f"{gid}: the written answer's cell is missing (deleted, or its "
                               "tag changed); a person can still mark it with --manual")
        elif text in ("", stub):
            row.reasons.append(f"{gid}: not answered (the cell still says {stub})")
        else:
            row.answers[gid] = text
            row.points.pop(gid)
            row.feedback[gid] = "awaiting an instructor"
