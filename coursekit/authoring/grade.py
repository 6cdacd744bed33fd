"""Grade exercise notebooks in a sandbox and write a gradebook an instructor can trust.

Layout: ``coursekit grade submissions/*/*.ipynb --out grades`` where each submission is
``submissions/<learner>/<chapter>.ipynb``: the learner's name is the folder's name and
the chapter is the file's name (it must match a notebook in ``solutions/``). The
instructor's guide is docs/grading.md.

For each submission (the submitted file is only read):

1. read and validate it (size, JSON, nbformat version, which exercise set it is);
2. rebuild the graded copy: every check cell is taken from the solution notebook
   (hidden tests included), matched by its tag (``grade_id``); a check cell the
   learner edited, deleted, re-tagged or moved is restored, in the released order,
   and the tampering is flagged;
3. run it in the sandbox (:mod:`coursekit.authoring.sandbox`): the notebook's cells in
   a shut-in process with time and memory limits, then each check in a fresh process
   with freshly imported coursekit, on copies of the objects the check reads, so
   nothing the learner's cells redefine can change a check's outcome;
4. give each exercise its points when its check passed, else zero with the reason;
5. set each written answer (a markdown cell nbgrader calls a manually graded answer)
   aside for a person: its text goes to the feedback file, its points wait in the
   gradebook (``awaiting``) until a marks file records them (``marks``, ``--manual``);
   an answer left as ``YOUR ANSWER HERE`` scores zero, as under nbgrader.

The steps live in their own modules: reading and rebuilding (1, 2) in
:mod:`~coursekit.authoring.submission`, what each check reads (2b) in
:mod:`~coursekit.authoring.analysis`, the sandbox (3) in
:mod:`coursekit.authoring.sandbox` (typed messages in its ``messages`` module), scoring
and written answers (4, 5) in :mod:`~coursekit.authoring.scoring`, the reports in
:mod:`~coursekit.authoring.gradebook`; this module ties them together.

Writes ``OUT/gradebook.csv`` (learner, notebook, one column per exercise, total, max,
awaiting, reasons), ``OUT/summary.md``, ``OUT/feedback/<learner>/<chapter>.md`` and
``OUT/marks-template.csv``. The same inputs give the same bytes.
"""
from __future__ import annotations

import dataclasses
import functools
import os
import shutil
import stat
import sys
import tempfile
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import nbformat

from coursekit.authoring import view
from coursekit.authoring.analysis import SolutionInfo, check_spec, solution_info
from coursekit.authoring.gradebook import (GradeRow, apply_marks, finish_rows, read_marks,
                                           write_reports, write_rows)
from coursekit.authoring.release import check_cells, manual_cells
from coursekit.authoring.sandbox.messages import Cell, Job
from coursekit.authoring.scoring import _clean, sandbox_label, score, written_answers
from coursekit.authoring.submission import (SubmissionError, build_graded, exercise_set_problem,
                                            read_submission)
from coursekit.authoring.workers import WorkerError, get_pool, grading_area


@dataclass
class Settings:
    """How grading runs."""

    solutions: Path = Path("solutions")  # folder of solution notebooks (the answer key)
    cell_timeout: int = 120              # seconds one cell (or one check) may run
    notebook_timeout: int = 900          # seconds a whole notebook may run
    jobs: int = 0                        # parallel submissions; 0 = one per CPU core
    fast: bool = True                    # grade in fast mode (short training budgets)
    memory_mb: int = 2048                # memory a notebook may use beyond the grader's own
    device: str = "cpu"                  # torch device the notebooks see (same grades anywhere)
    isolate: bool = True                 # namespaces where Linux allows: read-only files, no network
    snapshot_mb: int = 512               # largest copy of a check's objects
    secret: str = ""                     # seeds the hidden cases; "" = the output folder's


def learner_of(path: Path) -> str:
    """The learner's name: the folder that holds the submission."""
    return Path(os.path.abspath(path)).parent.name


# -- 3. running ------------------------------------------------------------------------
def _job(graded, by_cell: dict[int, str], info: SolutionInfo, settings: Settings,
         folder: Path, deny: list[str], jobs: int) -> Job:
    code_cells = [c for c in graded.cells if c.cell_type == "code"]
    checks, cells = [], []
    for index, cell in enumerate(code_cells):
        entry = Cell(cell.source)
        if index in by_cell:
            entry.check = len(checks)
            checks.append(check_spec(by_cell[index], cell.source, info, index))
        cells.append(entry)
    for name in ("work", "home", "tmp"):   # the notebook may write anywhere in ``folder``
        (folder / name).mkdir(parents=True, exist_ok=True)
    env = {"HOME": str(folder / "home"), "TMPDIR": str(folder / "tmp"),
           "PATH": os.environ.get("PATH", "/usr/bin:/bin"), "LANG": "C.UTF-8",
           "MPLBACKEND": "Agg", "MPLCONFIGDIR": str(folder / "home" / ".matplotlib"),
           "PYTHONHASHSEED": "0", "COURSEKIT_DEVICE": settings.device,
           "COURSEKIT_CACHE": view.cache_dir(), "COURSEKIT_GRADING": "1"}
    if os.environ.get("COURSEKIT_SHAKESPEARE"):
        env["COURSEKIT_SHAKESPEARE"] = os.environ["COURSEKIT_SHAKESPEARE"]
    if settings.fast:
        env["COURSEKIT_FAST"] = "1"
    if settings.device == "cpu":
        env["CUDA_VISIBLE_DEVICES"] = ""
    cpus = os.cpu_count() or 1
    return Job(cells=cells, checks=checks, imports=info.imports, root=str(folder),
               work=str(folder / "work"), home=str(folder / "home"), tmp=str(folder / "tmp"),
               env=env, deny=deny, allow_read=view.allowed_reads(),
               private=[str(Path.home()), tempfile.gettempdir()],
               cell_timeout=settings.cell_timeout, notebook_timeout=settings.notebook_timeout,
               memory_mb=settings.memory_mb, snapshot_mb=settings.snapshot_mb,
               threads=max(1, cpus // max(1, jobs)), isolate=settings.isolate,
               view=view.view([str(folder)], "") if settings.isolate else None,
               secret=settings.secret)


def grade_one(path: Path, settings: Settings, pool=None, jobs: int = 1,
              deny: list[str] | None = None, scratch: Path | None = None) -> GradeRow:
    """Grade one submission (see the module's docstring)."""
    path = Path(path)
    row = GradeRow(learner_of(path), path.name, path=str(path))
    solution_path = Path(settings.solutions) / path.name
    if not solution_path.is_file():
        row.reasons.append(f"not an exercise of this course: there is no solutions/{path.name}")
        return row
    try:
        solution = _read_solution(solution_path)
        checks = check_cells(solution)
        manual = manual_cells(solution)
    except Exception as err:   # the instructor's file, not the learner's: say so
        row.reasons.append(f"the answer key solutions/{path.name} cannot be used "
                           f"({type(err).__name__}: {str(err).splitlines()[0][:200]})")
        return row
    cells = sorted([*checks, *manual], key=lambda c: c.index)       # the notebook's order
    row.max_points = {c.grade_id: c.points for c in cells}
    row.points = {c.grade_id: 0.0 for c in cells}
    row.manual = {m.grade_id: m.points for m in manual}
    notes: list[str] = []
    try:
        nb = read_submission(path, notes)
    except SubmissionError as err:
        row.reasons.append(str(err))
        return row
    problem = exercise_set_problem(nb, solution, path.name)
    if problem:
        row.reasons.append(problem)
        return row
    graded, flags, by_cell = build_graded(nb, solution, path.name)
    row.reasons.extend(notes + flags)
    written_answers(row, nb)
    info = _solution_info(solution_path)
    pool = pool or get_pool(1, max(1, os.cpu_count() or 1), settings.isolate)
    folder = Path(tempfile.mkdtemp(prefix="coursekit-grade-", dir=scratch or grading_area()))
    try:
        job = _job(graded, by_cell, info, settings, folder,
                   deny if deny is not None else _deny([path], settings, None), jobs)
        limit = settings.notebook_timeout + len(job.checks) * (settings.cell_timeout + 10) + 120
        try:
            result = pool.run(job, limit)
        except WorkerError as err:
            first = _clean(str(err).splitlines()[0][:200], folder)
            reason = f"the grader failed on this notebook ({first})"
            row.reasons.append(reason)
            for gid in row.feedback or row.max_points:
                row.feedback[gid] = reason
            return row
        row.sealed = result.sealed
        row.sandbox = sandbox_label(result, settings)
        score(row, graded, job, result, settings, folder)
    finally:
        _remove(folder)
    return row


@functools.lru_cache(maxsize=64)
def _solution_cached(path: str, mtime: float):
    solution = nbformat.read(path, as_version=4)
    return solution, solution_info(solution)


def _read_solution(path: Path):
    return _solution_cached(str(Path(path).resolve()), Path(path).stat().st_mtime)[0]


def _solution_info(path: Path) -> SolutionInfo:
    return _solution_cached(str(Path(path).resolve()), Path(path).stat().st_mtime)[1]


def _remove(folder: Path) -> None:
    def unlock(func, name, _exc):
        try:
            os.chmod(os.path.dirname(name), stat.S_IRWXU)
            os.chmod(name, stat.S_IRWXU)
            func(name)
        except OSError:
            pass
    for root, dirs, _ in os.walk(folder):
        for d in dirs:
            try:
                os.chmod(os.path.join(root, d), stat.S_IRWXU)
            except OSError:
                pass
    shutil.rmtree(folder, onerror=unlock)


def _deny(paths: list[Path], settings: Settings, out: Path | None) -> list[str]:
    """Folders a notebook must not read: the answer key, the output, the submissions."""
    deny = {str(Path(settings.solutions).resolve())}
    if out is not None:
        deny.add(str(Path(out).resolve()))
    for p in paths:
        deny.add(str(Path(os.path.abspath(p)).parent.resolve()))
    # never a folder that holds the code notebooks import (a submission at the top of
    # the course folder, say): the learner's files there stay readable instead
    needed = [str(Path(r).resolve()) for r in view.allowed_reads()]
    return sorted(d for d in deny
                  if not any(n == d or n.startswith(d.rstrip("/") + "/") for n in needed))


SECRET_FILE = ".grading-secret"


def grading_secret(out: Path, given: str = "") -> str:
    """The secret the hidden cases draw their seeds from.

    ``given`` (``--secret``), else the environment's ``COURSEKIT_GRADING_SECRET``, else
    the one kept in ``OUT/.grading-secret`` (drawn on the first run, readable only by
    the instructor), so a regrade into the same folder gives the same marks. Submissions
    cannot read the output folder, and only the check processes are handed the secret.
    """
    if given:
        return given
    if os.environ.get("COURSEKIT_GRADING_SECRET"):
        return os.environ["COURSEKIT_GRADING_SECRET"]
    import secrets
    path = Path(out) / SECRET_FILE
    if path.is_file():
        kept = path.read_text(encoding="utf-8").strip()
        if kept:
            return kept
    path.parent.mkdir(parents=True, exist_ok=True)
    drawn = secrets.token_hex(16)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w", encoding="utf-8") as f:
        f.write(drawn + "\n")
    return drawn


def shard_of(paths: list[Path], shard: tuple[int, int] | None) -> list[Path]:
    """The submissions that shard K of N grades: every N-th of the sorted list, from the K-th.

    Every shard must be given the same list (for example the same glob), so that together
    they grade each submission exactly once.
    """
    paths = sorted(dict.fromkeys(Path(os.path.abspath(p)) for p in paths), key=str)
    if shard is None:
        return paths
    k, n = shard
    if not (isinstance(k, int) and isinstance(n, int) and 1 <= k <= n):
        raise ValueError(f"--shard must be K/N with 1 <= K <= N, got {k}/{n}")
    return paths[k - 1::n]


def grade(submissions: list[Path], out: Path, settings: Settings | None = None,
          progress: bool = True, shard: tuple[int, int] | None = None,
          marks: Path | None = None) -> list[GradeRow]:
    """Grade every submission (or shard K of N of them) and write the reports.

    Writes ``gradebook.csv``, ``summary.md``, ``feedback/``, ``rows.json`` (and, when
    the notebooks have written answers, ``marks-template.csv``) in ``out``; shards'
    folders merge with ``coursekit.authoring.gradebook.merge``. ``marks`` is a marks
    file (``gradebook.read_marks``) recording the written answers' points.
    """
    settings = settings or Settings()
    if marks is not None and shard is not None:
        raise ValueError("--manual with --shard: a shard does not see the whole class; pass "
                         "the marks file to `coursekit gradebook merge --manual` instead")
    recorded = read_marks(marks) if marks is not None else []   # a bad file fails first
    if shard is not None and not (settings.secret or os.environ.get("COURSEKIT_GRADING_SECRET")):
        raise ValueError("sharded grading needs one secret shared by every shard (their hidden "
                         "cases must match): pass --secret or set COURSEKIT_GRADING_SECRET")
    settings = dataclasses.replace(settings, secret=grading_secret(Path(out), settings.secret))
    if not Path(settings.solutions).is_dir():
        raise FileNotFoundError(f"no solutions folder at {settings.solutions}; pass --solutions")
    if not hasattr(os, "fork"):
        raise RuntimeError("coursekit grade needs Linux or macOS (it forks sandboxed "
                           "processes); on Windows, run it in WSL")
    jobs = settings.jobs or os.cpu_count() or 1
    paths = shard_of(list(submissions), shard)
    deny = _deny(paths, settings, Path(out))
    pool = get_pool(jobs, max(1, (os.cpu_count() or 1) // jobs), settings.isolate)
    pool.warm_up(min(jobs, len(paths)))
    scratch = Path(tempfile.mkdtemp(prefix="coursekit-grading-", dir=grading_area()))
    try:
        with ThreadPoolExecutor(max_workers=jobs) as threads:
            work = threads.map(lambda p: grade_one(p, settings, pool, jobs, deny, scratch), paths)
            raw = list(_progress(work, len(paths), progress))
    finally:
        _remove(scratch)
    rows = finish_rows(raw)
    write_rows(raw, Path(out), settings.secret, shard)
    try:
        marked = apply_marks(rows, recorded, str(marks)) if recorded else rows
    except ValueError as err:
        write_reports(rows, Path(out))
        raise ValueError(f"{err}. The gradebook was written without marks; correct the file "
                         f"and run `coursekit gradebook merge {out} --out {out} --manual "
                         f"{marks}` (no regrading)") from None
    write_reports(marked, Path(out))
    return marked


def _progress(iterable, total, show):
    if not show:
        return iterable
    from tqdm.auto import tqdm
    return tqdm(iterable, total=total, desc="grading", file=sys.stderr)


