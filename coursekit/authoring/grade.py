"""Grade exercise notebooks with nbval and write a gradebook.

Layout: ``coursekit grade submissions/*/*.ipynb --out grades`` where each submission is
``submissions/<learner>/<chapter>.ipynb``: the learner's name is the folder's name and
the chapter is the file's name (it must match a notebook in ``solutions/``).

For each submission, in a temporary folder (the submitted file is only read):

1. read and validate it (size, JSON, nbformat version, which exercise set it is);
2. rebuild the graded copy: every check cell is taken from the solution notebook
   (hidden tests included), matched by its ``grade_id``; a check cell the learner
   edited, deleted or re-tagged is restored and the tampering is flagged;
3. run it through nbval (lax mode, a per-cell and a per-notebook time limit) in fast
   mode, with a plugin that records each cell's verdict;
4. give each exercise its points when its check cell passed, else zero with the reason.

Writes ``OUT/gradebook.csv`` (learner, notebook, one column per exercise, total, max,
reasons), ``OUT/summary.md`` and ``OUT/feedback/<learner>/<chapter>.md``.
"""
from __future__ import annotations

import csv
import io
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

import nbformat

from coursekit.authoring.release import check_cells, has_markers, make_exercise, nbgrader_meta

MAX_BYTES = 20 * 1024 * 1024


@dataclass
class Settings:
    """How grading runs."""

    solutions: Path = Path("solutions")  # folder of solution notebooks (the answer key)
    cell_timeout: int = 120              # seconds one cell may run
    notebook_timeout: int = 900          # seconds a whole notebook may run
    jobs: int = 0                        # parallel submissions; 0 = one per CPU core
    fast: bool = True                    # grade in fast mode (short training budgets)


@dataclass
class GradeRow:
    """One submission's grades."""

    learner: str
    notebook: str
    points: dict[str, float] = field(default_factory=dict)      # grade_id -> points earned
    max_points: dict[str, float] = field(default_factory=dict)  # grade_id -> points possible
    reasons: list[str] = field(default_factory=list)            # why points were lost
    feedback: dict[str, str] = field(default_factory=dict)      # grade_id -> check's message

    @property
    def total(self) -> float:
        return sum(self.points.values())

    @property
    def max_total(self) -> float:
        return sum(self.max_points.values())


def learner_of(path: Path) -> str:
    """The learner's name: the folder that holds the submission."""
    return path.resolve().parent.name


# -- 1. reading ------------------------------------------------------------------------
class SubmissionError(Exception):
    """The submission cannot be graded at all; the message is the gradebook's reason."""


def read_submission(path: Path):
    try:
        size = path.stat().st_size
    except OSError as err:
        raise SubmissionError(f"cannot read the file: {err.strerror}") from None
    if size == 0:
        raise SubmissionError("the file is empty (0 bytes)")
    if size > MAX_BYTES:
        raise SubmissionError(f"the file is {size / 2**20:.0f} MB, over the "
                              f"{MAX_BYTES // 2**20} MB limit for a notebook")
    raw = path.read_bytes()
    try:
        data = json.loads(raw.decode("utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as err:
        raise SubmissionError(f"not a notebook: the file is not valid JSON ({err})") from None
    if not isinstance(data, dict) or "cells" not in data and "worksheets" not in data:
        raise SubmissionError("not a notebook: the JSON has no cells")
    try:
        nb = nbformat.reads(json.dumps(data), as_version=4)
        nbformat.validate(nb)
    except Exception as err:  # nbformat raises several types for broken notebooks
        raise SubmissionError(f"not a valid Jupyter notebook ({type(err).__name__}: "
                              f"{str(err).splitlines()[0][:200]})") from None
    return nb


# -- 2. rebuilding the graded copy -----------------------------------------------------
def build_graded(nb, solution, name: str) -> tuple[object, list[str], dict[int, str]]:
    """Return (graded notebook, flags, {code-cell index: grade_id})."""
    released = {c.grade_id: c for c in check_cells(make_exercise(solution, name))}
    answer_key = {c.grade_id: c for c in check_cells(solution)}
    flags: list[str] = []
    cells = []
    placed: set[str] = set()
    for cell in nb.cells:
        meta = nbgrader_meta(cell)
        gid = meta.get("grade_id")
        if gid in answer_key and (meta.get("grade") or cell.cell_type == "code"):
            if gid in placed:
                flags.append(f"{gid}: check cell duplicated (extra copy ignored)")
                continue
            if cell.source.strip() not in (released[gid].source.strip(),
                                           answer_key[gid].source.strip()):
                flags.append(f"{gid}: check cell was edited (restored)")
            cells.append(_check_cell(answer_key[gid]))
            placed.add(gid)
        elif cell.cell_type == "code" and has_markers(cell.source) and "HIDDEN" in cell.source:
            flags.append("a cell holds hidden-test markers (ignored)")
        else:
            cells.append(cell)
    # re-insert deleted check cells after the answer cell they belong to, else at the end
    for gid, check in answer_key.items():
        if gid in placed:
            continue
        flags.append(f"{gid}: check cell was deleted or re-tagged (restored)")
        answer_id = gid.removeprefix("check_") + "_answer"
        where = next((i + 1 for i, c in enumerate(cells)
                      if nbgrader_meta(c).get("grade_id") == answer_id), len(cells))
        cells.insert(where, _check_cell(check))
    graded = nbformat.v4.new_notebook(cells=cells, metadata=solution.metadata)
    for i, cell in enumerate(graded.cells):
        cell.id = f"graded-{i:03d}"
    code_index, checks = 0, {}
    for cell in graded.cells:
        if cell.cell_type == "code":
            gid = nbgrader_meta(cell).get("grade_id")
            if gid in answer_key:
                checks[code_index] = gid
            code_index += 1
    return graded, flags, checks


def _check_cell(check):
    cell = nbformat.v4.new_code_cell(check.source)
    cell.metadata = {"nbgrader": {"grade": True, "solution": False, "locked": True,
                                  "grade_id": check.grade_id, "points": check.points,
                                  "schema_version": 3}, "tags": ["check"]}
    return cell


# -- 3. running ------------------------------------------------------------------------
def run_nbval(notebook_path: Path, settings: Settings) -> tuple[dict[int, dict], str]:
    """Run nbval on one notebook; return ({code-cell index: verdict}, problem or "")."""
    report = notebook_path.with_suffix(".verdicts.json")
    env = dict(os.environ)
    env["COURSEKIT_NBVAL_REPORT"] = str(report)
    env["MPLBACKEND"] = "Agg"
    if settings.fast:
        env["COURSEKIT_FAST"] = "1"
    else:
        env.pop("COURSEKIT_FAST", None)
    cmd = [sys.executable, "-m", "pytest", str(notebook_path.name), "--nbval-lax",
           "--nbval-current-env", f"--nbval-cell-timeout={settings.cell_timeout}",
           "-p", "coursekit.authoring.nbval_report", "-p", "no:cacheprovider",
           "-q", "--no-header", "-o", "addopts=", "--rootdir", str(notebook_path.parent)]
    problem = ""
    proc = subprocess.Popen(cmd, cwd=notebook_path.parent, env=env, stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, start_new_session=True)
    try:
        proc.communicate(timeout=settings.notebook_timeout)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.communicate()
        problem = f"the notebook ran past its {settings.notebook_timeout} s time limit"
    verdicts: dict[int, dict] = {}
    if report.exists():
        try:
            verdicts = {int(k): v for k, v in json.loads(report.read_text()).items()}
        except (ValueError, OSError):
            problem = problem or "the grader could not read nbval's results"
    elif not problem:
        problem = "nbval did not finish (the kernel died or could not start)"
    return verdicts, problem


# -- 4. scoring ------------------------------------------------------------------------
def grade_one(path: Path, settings: Settings) -> GradeRow:
    path = Path(path)
    row = GradeRow(learner_of(path), path.name)
    solution_path = settings.solutions / path.name
    if not solution_path.exists():
        row.reasons.append(f"not an exercise of this course: there is no solutions/{path.name}")
        return row
    solution = nbformat.read(solution_path, as_version=4)
    checks = check_cells(solution)
    row.max_points = {c.grade_id: c.points for c in checks}
    row.points = {c.grade_id: 0.0 for c in checks}
    try:
        nb = read_submission(path)
    except SubmissionError as err:
        row.reasons.append(str(err))
        return row
    graded, flags, by_cell = build_graded(nb, solution, path.name)
    row.reasons.extend(flags)
    with tempfile.TemporaryDirectory(prefix="coursekit-grade-") as tmp:
        work = Path(tmp) / path.name
        work.write_text(json.dumps(graded), encoding="utf-8")
        verdicts, problem = run_nbval(work, settings)
    for index, gid in by_cell.items():
        verdict = verdicts.get(index)
        if verdict is None:
            reason = problem or "the check cell did not run"
            row.reasons.append(f"{gid}: {reason}")
            row.feedback[gid] = reason
        elif verdict["outcome"] == "passed":
            row.points[gid] = row.max_points[gid]
            row.feedback[gid] = "passed"
        elif verdict["outcome"] == "skipped":
            reason = "not run: an earlier cell ran past the time limit, so nbval stopped"
            row.reasons.append(f"{gid}: {reason}")
            row.feedback[gid] = reason
        else:
            message = verdict.get("message") or "the check cell failed"
            row.reasons.append(f"{gid}: {_first_line(message)}")
            row.feedback[gid] = message
    return row


def _first_line(message: str) -> str:
    lines = [l.strip() for l in message.strip().splitlines() if l.strip()]
    if not lines:
        return "failed"
    text = lines[0]
    if text.startswith("KeyboardInterrupt"):
        text = "ran past the cell time limit (an endless loop?)"
    if "NotImplementedError" in message and "not written yet" not in text:
        text = "not answered (NotImplementedError)"
    return text[:300]


def grade(submissions: list[Path], out: Path, settings: Settings | None = None,
          progress: bool = True) -> list[GradeRow]:
    """Grade every submission and write the gradebook, summary and feedback files."""
    settings = settings or Settings()
    if not Path(settings.solutions).is_dir():
        raise FileNotFoundError(f"no solutions folder at {settings.solutions}; pass --solutions")
    jobs = settings.jobs or os.cpu_count() or 1
    paths = [Path(p) for p in submissions]
    with ThreadPoolExecutor(max_workers=jobs) as pool:
        rows = list(_progress(pool.map(lambda p: grade_one(p, settings), paths),
                              len(paths), progress))
    rows.sort(key=lambda r: (r.learner, r.notebook))
    write_reports(rows, Path(out))
    return rows


def _progress(iterable, total, show):
    if not show:
        return iterable
    from tqdm.auto import tqdm
    return tqdm(iterable, total=total, desc="grading", file=sys.stderr)


def _fmt(x: float) -> str:
    return f"{x:g}"


def write_reports(rows: list[GradeRow], out: Path) -> None:
    """Write gradebook.csv, summary.md and feedback/ (same inputs -> same bytes)."""
    out.mkdir(parents=True, exist_ok=True)
    columns: list[str] = []
    for row in rows:
        columns.extend(g for g in row.max_points if g not in columns)
    buf = io.StringIO()
    writer = csv.writer(buf, lineterminator="\n")
    writer.writerow(["learner", "notebook", *columns, "total", "max", "reasons"])
    for row in rows:
        writer.writerow([row.learner, row.notebook,
                         *[_fmt(row.points[c]) if c in row.points else "" for c in columns],
                         _fmt(row.total), _fmt(row.max_total), "; ".join(row.reasons)])
    (out / "gradebook.csv").write_text(buf.getvalue(), encoding="utf-8")

    lines = ["# Grading summary", "", f"{len(rows)} submission(s).", "",
             "| learner | notebook | points | lost points |", "|---|---|---|---|"]
    for row in rows:
        lost = "<br>".join(r.replace("|", "\\|") for r in row.reasons) or "none"
        lines.append(f"| {row.learner} | {row.notebook} | {_fmt(row.total)} / "
                     f"{_fmt(row.max_total)} | {lost} |")
    (out / "summary.md").write_text("\n".join(lines) + "\n", encoding="utf-8")

    feedback_root = out / "feedback"
    if feedback_root.exists():
        shutil.rmtree(feedback_root)
    for row in rows:
        folder = feedback_root / row.learner
        folder.mkdir(parents=True, exist_ok=True)
        text = [f"# {row.notebook}: {_fmt(row.total)} / {_fmt(row.max_total)} points", ""]
        for gid, possible in row.max_points.items():
            got = row.points.get(gid, 0.0)
            text.append(f"## {gid}: {_fmt(got)} / {_fmt(possible)}")
            text.append("")
            text.append("```")
            text.append(row.feedback.get(gid, "not graded").rstrip())
            text.append("```")
            text.append("")
        other = [r for r in row.reasons if not any(r.startswith(g + ":") for g in row.max_points)
                 or "restored" in r]
        if other:
            text.append("## Notes")
            text.extend(f"- {r}" for r in other)
        (folder / (Path(row.notebook).stem + ".md")).write_text("\n".join(text) + "\n",
                                                                encoding="utf-8")
