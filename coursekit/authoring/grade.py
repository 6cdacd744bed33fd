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

Writes ``OUT/gradebook.csv`` (learner, notebook, one column per exercise, total, max,
awaiting, reasons), ``OUT/summary.md``, ``OUT/feedback/<learner>/<chapter>.md`` and
``OUT/marks-template.csv``. The same inputs give the same bytes.
"""
from __future__ import annotations

import ast
import builtins
import dataclasses
import functools
import json
import os
import re
import shutil
import stat
import sys
import symtable
import tempfile
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import nbformat

from coursekit.authoring.gradebook import (GradeRow, apply_marks, finish_rows, read_marks,
                                           write_reports, write_rows)
from coursekit.authoring.release import (MARKDOWN_STUB, check_cells, has_markers, make_exercise,
                                         manual_cells, nbgrader_meta)
from coursekit.authoring import view
from coursekit.checks.assertions import short_text
from coursekit.authoring.workers import WorkerError, get_pool, grading_area

MAX_BYTES = 20 * 1024 * 1024
MAX_MESSAGE = 4000          # characters of a check's message kept in the feedback


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


# -- 1. reading ------------------------------------------------------------------------
class SubmissionError(Exception):
    """The submission cannot be graded at all; the message is the gradebook's reason."""


def read_submission(path: Path, notes: list[str] | None = None):
    """Read and validate a submitted notebook; ``notes`` collects harmless remarks."""
    notes = notes if notes is not None else []
    try:
        if not Path(path).is_file():
            raise SubmissionError("cannot read the file: it does not exist or is not a file")
        size = Path(path).stat().st_size
    except OSError as err:
        raise SubmissionError(f"cannot read the file: {err.strerror}") from None
    if size == 0:
        raise SubmissionError("the file is empty (0 bytes)")
    if size > MAX_BYTES:
        raise SubmissionError(f"the file is {size / 2**20:.0f} MB, over the "
                              f"{MAX_BYTES // 2**20} MB limit for a notebook")
    raw = Path(path).read_bytes()
    try:
        data = json.loads(raw.decode("utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError, RecursionError) as err:
        raise SubmissionError(f"not a notebook: the file is not valid JSON ({err})") from None
    if not isinstance(data, dict) or ("cells" not in data and "worksheets" not in data):
        raise SubmissionError("not a notebook: the JSON has no cells")
    version = data.get("nbformat")
    if not isinstance(version, int) or version not in (3, 4):
        raise SubmissionError(f"not a notebook this grader reads: nbformat {version!r} "
                              "(save it from JupyterLab as nbformat 4)")
    try:
        nb = nbformat.reads(json.dumps(data), as_version=4)
        nb.nbformat_minor = max(nb.nbformat_minor, 5)
        seen: set[str] = set()
        for i, cell in enumerate(nb.cells):
            if not isinstance(cell.get("id"), str) or not cell.get("id") or cell["id"] in seen:
                cell["id"] = f"submitted-{i:03d}"
            seen.add(cell["id"])
        nbformat.validate(nb)
    except Exception as err:  # nbformat raises several types for broken notebooks
        raise SubmissionError(f"not a valid Jupyter notebook ({type(err).__name__}: "
                              f"{str(err).splitlines()[0][:200] if str(err) else ''})") from None
    if version == 3:
        notes.append("note: converted from nbformat 3 before grading")
    return nb


def exercise_set_problem(nb, solution, name: str) -> str:
    """A reason when the notebook is another chapter's exercise set, else ''."""
    source = (nb.metadata.get("coursekit") or {}).get("source") if isinstance(
        nb.metadata.get("coursekit"), dict) else None
    if isinstance(source, str) and source and source != f"solutions/{name}":
        return (f"a different exercise set: this notebook was released from {source}, "
                f"not from solutions/{name}")
    ours = {str(nbgrader_meta(c).get("grade_id")) for c in solution.cells
            if nbgrader_meta(c).get("grade_id")}
    theirs = {str(nbgrader_meta(c).get("grade_id")) for c in nb.cells
              if isinstance(c.get("metadata"), dict) and nbgrader_meta(c).get("grade_id")}
    if theirs and not theirs & ours:
        return (f"a different exercise set: none of its exercises ({', '.join(sorted(theirs)[:4])}"
                f"{'...' if len(theirs) > 4 else ''}) belong to {name}")
    return ""


# -- 2. rebuilding the graded copy -----------------------------------------------------
def _gid(cell) -> str | None:
    gid = nbgrader_meta(cell).get("grade_id")
    return str(gid) if gid is not None else None


def build_graded(nb, solution, name: str) -> tuple[object, list[str], dict[int, str]]:
    """Return (graded notebook, flags, {code-cell index: grade_id}).

    Check cells come from the solution (hidden tests included). A learner's check cell
    is recognised by its tag (grade_id), else by its cell id or its exact released
    source (then it was re-tagged). Answer and check cells keep the learner's order
    unless it differs from the released one; then the cells are put back in the
    released order, each answer cell with the cells the learner added after it.
    """
    exercise = make_exercise(solution, name)
    released = {c.grade_id: c for c in check_cells(exercise)}
    answer_key = {c.grade_id: c for c in check_cells(solution)}
    released_ids = {}
    for cell in exercise.cells:
        gid = _gid(cell)
        if gid in answer_key:
            released_ids[cell.id] = gid
    order = [g for g in (_gid(c) for c in solution.cells) if g]
    rank = {g: i for i, g in enumerate(dict.fromkeys(order))}
    flags: list[str] = []

    # a. classify the learner's cells: check cells (restored), the rest kept as written
    items: list[tuple[str | None, object]] = []   # (anchor grade_id or None, cell)
    placed: set[str] = set()
    for cell in nb.cells:
        own = _gid(cell)
        gid, how = own, ""
        if own in answer_key and (nbgrader_meta(cell).get("grade") or cell.cell_type == "code"):
            how = "tag"
        elif cell.cell_type == "code" and released_ids.get(cell.get("id")) is not None:
            gid, how = released_ids[cell.id], "id"
        elif cell.cell_type == "code" and cell.source.strip():
            gid = next((g for g, c in released.items()
                        if cell.source.strip() in (c.source.strip(), answer_key[g].source.strip())),
                       None)
            how = "source" if gid else ""
        if how:
            if gid in placed:
                flags.append(f"{gid}: check cell duplicated (extra copy ignored)")
                continue
            if how != "tag":
                flags.append(f"{gid}: check cell was re-tagged (restored)")
            elif cell.source.strip() not in (released[gid].source.strip(),
                                             answer_key[gid].source.strip()):
                flags.append(f"{gid}: check cell was edited (restored)")
            items.append((gid, _check_cell(answer_key[gid], cell)))
            placed.add(gid)
        elif cell.cell_type == "code" and has_markers(cell.source) and "HIDDEN" in cell.source:
            flags.append("a cell holds hidden-test markers (ignored)")
        else:
            items.append((own if own in rank else None, cell))

    # b. put answer and check cells back in the released order when they were moved
    anchors = [g for g, _ in items if g is not None]
    firsts = list(dict.fromkeys(anchors))
    if firsts != sorted(firsts, key=rank.__getitem__):
        moved = next(g for a, g in zip(firsts, sorted(firsts, key=rank.__getitem__)) if a != g)
        flags.append(f"cells out of order: {moved} was moved (graded in the released order)")
        segments: list[tuple[float, list]] = [(-1, [])]
        for gid, cell in items:
            if gid is not None:
                segments.append((rank[gid], []))
            segments[-1][1].append((gid, cell))
        segments.sort(key=lambda s: s[0])
        items = [item for _, segment in segments for item in segment]

    # c. re-insert deleted check cells before the next exercise's cells (or at the end)
    for gid in sorted(set(answer_key) - placed, key=rank.__getitem__):
        flags.append(f"{gid}: check cell was deleted (restored)")
        where = next((i for i, (g, _) in enumerate(items)
                      if g is not None and rank[g] > rank[gid]), len(items))
        items.insert(where, (gid, _check_cell(answer_key[gid])))

    cells = [cell for _, cell in items]
    graded = nbformat.v4.new_notebook(cells=cells, metadata=solution.metadata)
    for i, cell in enumerate(graded.cells):
        cell.id = f"graded-{i:03d}"
    code_index, checks = 0, {}
    for cell in graded.cells:
        if cell.cell_type == "code":
            gid = _gid(cell)
            if gid in answer_key and nbgrader_meta(cell).get("grade"):
                checks[code_index] = gid
            code_index += 1
    return graded, flags, checks


def _check_cell(check, learner_cell=None):
    cell = nbformat.v4.new_code_cell(check.source)
    cell.metadata = {"nbgrader": {"grade": True, "solution": False, "locked": True,
                                  "grade_id": check.grade_id, "points": check.points,
                                  "schema_version": 3}, "tags": ["check"]}
    if learner_cell is not None:   # keep what the learner's copy claimed, to compare later
        cell.metadata["coursekit_saved_outputs"] = _output_text(learner_cell)
    return cell


def _output_text(cell) -> str:
    parts = []
    for out in cell.get("outputs", []) or []:
        if out.get("output_type") == "stream":
            parts.append(str(out.get("text", "")))
        elif out.get("output_type") in ("execute_result", "display_data"):
            parts.append(str((out.get("data") or {}).get("text/plain", "")))
        elif out.get("output_type") == "error":
            parts.append(f"{out.get('ename')}: {out.get('evalue')}")
    return "".join(parts)[:2000]


# -- 2b. what each check reads ------------------------------------------------------------
@functools.lru_cache(maxsize=4096)
def python_source(source: str) -> str:
    """A cell's code as plain Python (IPython magics turned into calls)."""
    from IPython.core.inputtransformer2 import TransformerManager
    try:
        return TransformerManager().transform_cell(source)
    except Exception:
        return source


def _module_statements(body):
    for node in body:
        yield node
        for name in ("body", "orelse", "finalbody"):
            if isinstance(node, (ast.If, ast.Try, ast.With)) and hasattr(node, name):
                yield from _module_statements(getattr(node, name))
        if isinstance(node, ast.Try):
            for handler in node.handlers:
                yield from _module_statements(handler.body)


@dataclass
class SolutionInfo:
    """What the grader needs from a solution notebook, computed once."""

    imports: list[str]       # its import statements, run afresh in every check process
    imported: set[str]       # names they bind
    defined: set[str]        # names its cells assign (the learner's objects)


def solution_info(solution) -> SolutionInfo:
    imports: list[str] = []
    imported: set[str] = set()
    defined: set[str] = set()
    for cell in solution.cells:
        if cell.cell_type != "code" or nbgrader_meta(cell).get("grade"):
            continue
        code = python_source(cell.source)
        try:
            tree = ast.parse(code)
            table = symtable.symtable(code, "<cell>", "exec")
        except (SyntaxError, ValueError):
            continue
        for node in _module_statements(tree.body):
            if isinstance(node, (ast.Import, ast.ImportFrom)) and not getattr(node, "level", 0):
                statement = ast.unparse(node)
                if statement not in imports:
                    imports.append(statement)
        for symbol in table.get_symbols():
            if symbol.is_imported():
                imported.add(symbol.get_name())
            elif symbol.is_assigned():
                defined.add(symbol.get_name())
    return SolutionInfo(imports, imported - defined, defined)


def check_spec(gid: str, source: str, info: SolutionInfo) -> dict:
    """The check's code and the learner names it reads (copied out of the notebook)."""
    code = python_source(source)
    referenced: set[str] = set()
    bound: set[str] = set()
    imported: set[str] = set()
    try:
        table = symtable.symtable(code, f"<{gid}>", "exec")
    except SyntaxError:
        table = None
    if table is not None:
        for symbol in table.get_symbols():
            if symbol.is_referenced():
                referenced.add(symbol.get_name())
            if symbol.is_imported():
                imported.add(symbol.get_name())
            elif symbol.is_assigned():
                bound.add(symbol.get_name())
        todo = list(table.get_children())
        while todo:
            child = todo.pop()
            todo.extend(child.get_children())
            for symbol in child.get_symbols():
                if symbol.is_global() and symbol.is_referenced():
                    referenced.add(symbol.get_name())
    builtin_names = set(dir(builtins))
    names = sorted(n for n in referenced - imported
                   if n in info.defined or (n not in info.imported and n not in builtin_names
                                            and n != "get_ipython"))
    modules = sorted({f"coursekit.checks.{m}" for m in re.findall(r"checks\.(ch\d+)", code)})
    return {"gid": gid, "code": code, "names": names, "bound": sorted(bound),
            "modules": modules}


# -- 3. running ------------------------------------------------------------------------
def _allowed_reads() -> list[str]:
    return view.allowed_reads()


def _job(graded, by_cell: dict[int, str], info: SolutionInfo, settings: Settings,
         folder: Path, deny: list[str], jobs: int) -> dict:
    code_cells = [c for c in graded.cells if c.cell_type == "code"]
    checks, cells = [], []
    for index, cell in enumerate(code_cells):
        entry = {"source": cell.source, "check": None}
        if index in by_cell:
            spec = check_spec(by_cell[index], cell.source, info)
            spec["cell"] = index
            entry["check"] = len(checks)
            checks.append(spec)
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
    return {"cells": cells, "checks": checks, "imports": info.imports,
            "root": str(folder), "work": str(folder / "work"), "home": str(folder / "home"),
            "tmp": str(folder / "tmp"), "env": env, "deny": deny,
            "allow_read": _allowed_reads(), "private": [str(Path.home()), tempfile.gettempdir()],
            "cell_timeout": settings.cell_timeout, "notebook_timeout": settings.notebook_timeout,
            "memory_mb": settings.memory_mb, "snapshot_mb": settings.snapshot_mb,
            "threads": max(1, cpus // max(1, jobs)), "isolate": settings.isolate,
            "view": view.view([str(folder)], "") if settings.isolate else None,
            "secret": settings.secret}


# -- 4. scoring ------------------------------------------------------------------------
def _label(source: str) -> str:
    first = next((l.strip() for l in source.splitlines() if l.strip()), "")
    return f'the cell starting "{first[:60]}"'


def _stop_phrase(stop: dict, settings: Settings) -> str:
    why = stop.get("why")
    if why == "sandbox":
        detail = str(stop.get("detail", "")).removeprefix("grading sandbox: ")
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


def _message(error: dict | None) -> str:
    """The feedback for a failed check. A check's own failure (``CheckFailure``) is shown
    whole; any other exception came from the answer's code, and its text, the
    learner's own, is cut to a line or two (``short_text`` says what was cut)."""
    if not error:
        return "the check failed"
    ename, evalue = error.get("ename", "Error"), str(error.get("evalue", "")).strip()
    if ename == "CheckFailure" and evalue:
        return evalue
    return f"{ename}: {short_text(evalue)}" if evalue else ename


def _reason(message: str, error: dict | None) -> str:
    """The gradebook's one-line reason: a check's first line, which never quotes the
    learner (``call`` puts their text on a line of its own), or for an exception from
    the answer's code only its type; its text stays in that learner's feedback."""
    if error and error.get("ename") != "CheckFailure":
        name = re.search(r"name '(\w+)' is not defined", str(error.get("evalue", "")))
        if error.get("ename") == "NotImplementedError":
            return "not answered (NotImplementedError)"
        if error.get("ename") == "NameError" and name:
            return f"NameError: name '{name.group(1)}' is not defined"
        return f"{error.get('ename', 'Error')} raised while the check ran (see the feedback)"
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
    text = re.sub(r"/[^\s'\"]*?coursekit-grading-[A-Za-z0-9_]+", "<grading area>", text)
    text = re.sub(r"0x[0-9a-fA-F]{6,}", "0x...", text)
    text = re.sub(r"<ipython-input-\d+-[0-9a-f]+>", "<cell>", text)
    return text[:MAX_MESSAGE]


def _name_context(message: str, check_cell: int, job: dict, result: dict) -> str:
    """For a NameError, the earlier cell whose error left the name undefined."""
    match = re.search(r"name '(\w+)' is not defined", message)
    if not match:
        return ""
    name = match.group(1)
    for i in range(check_cell - 1, -1, -1):
        cell, outcome = job["cells"][i], result["cells"][i]
        if cell["check"] is None and outcome["error"] and re.search(rf"\b{name}\b", cell["source"]):
            err = outcome["error"]
            first = (str(err.get("evalue", "")).splitlines() or [""])[0][:120]
            return (f" ({_label(cell['source'])} raised {err.get('ename')}: {first}, so "
                    f"`{name}` was never defined)")
    return ""


def score(row: GradeRow, graded, job: dict, result: dict, settings: Settings,
          folder: Path) -> None:
    """Fill the row's points, reasons and feedback from the sandbox's result."""
    stop = result.get("stop")
    code_cells = [c for c in graded.cells if c.cell_type == "code"]
    for k, check in enumerate(job["checks"]):
        gid, verdict = check["gid"], result["checks"][k]
        outcome = verdict["outcome"]
        if outcome == "passed":
            row.points[gid] = row.max_points[gid]
            row.feedback[gid] = "passed"
            continue
        if outcome == "not-run" and stop is not None and stop.get("cell") == check["cell"]:
            reason = message = "the check " + _stop_phrase(stop, settings)
        elif outcome == "not-run" and stop is not None:
            where = _label(job["cells"][stop["cell"]]["source"]) \
                if stop.get("cell") is not None else "the notebook"
            reason = message = (f"not run: {where} {_stop_phrase(stop, settings)}; "
                                "grading stops there, as nbval does, so later cells did not run")
        elif outcome == "not-run":
            reason = message = "not run: the notebook stopped before this check"
        elif outcome == "stopped":
            reason = message = "the check " + _stop_phrase(verdict["stop"], settings)
        else:
            message = _clean(_message(verdict.get("error")), folder)
            if verdict.get("tampered"):
                names = ", ".join(verdict["tampered"][:5])
                reason = (f"tampering: the submission's code changed the grader's tools "
                          f"while the check ran ({names}); scored zero")
                message = reason + "\n\n" + message
            else:
                reason = (_reason(message, verdict.get("error"))
                          + _name_context(message, check["cell"], job, result))
                for name, error in sorted(verdict.get("copy_errors", {}).items()):
                    message += (f"\n(note: the grader could not copy `{name}` out of the "
                                f"notebook: {error})")
            if verdict.get("kernel") is None and result["cells"][check["cell"]]["ran"] \
                    and not verdict.get("copy_errors"):
                row.reasons.append(f"{gid}: passed inside the notebook but failed when the "
                                   "grader re-ran it in a clean process (the notebook may "
                                   "tamper with checks)")
        saved = code_cells[check["cell"]].metadata.get("coursekit_saved_outputs", "")
        if f"PASSED {gid}" in saved:
            row.reasons.append(f"{gid}: the saved output shows a pass that the grader's run "
                               "does not reproduce (outputs from another run?)")
        row.reasons.append(f"{gid}: {_clean(reason, folder)}")
        row.feedback[gid] = _clean(message, folder)


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
    pool = pool or get_pool(1, max(1, os.cpu_count() or 1))
    folder = Path(tempfile.mkdtemp(prefix="coursekit-grade-", dir=scratch or grading_area()))
    try:
        job = _job(graded, by_cell, info, settings, folder,
                   deny if deny is not None else _deny([path], settings, None), jobs)
        limit = settings.notebook_timeout + len(job["checks"]) * (settings.cell_timeout + 10) + 120
        try:
            result = pool.run(job, limit)
        except WorkerError as err:
            first = _clean(str(err).splitlines()[0][:200], folder)
            reason = f"the grader failed on this notebook ({first})"
            row.reasons.append(reason)
            for gid in row.feedback or row.max_points:
                row.feedback[gid] = reason
            return row
        row.sealed = bool(result.get("sealed") or result.get("bubblewrap"))
        row.sandbox = sandbox_label(result, settings)
        score(row, graded, job, result, settings, folder)
    finally:
        _remove(folder)
    return row


def sandbox_label(result: dict, settings: Settings) -> str:
    """What confined the notebook, in the gradebook's words (docs/grading.md)."""
    confinement = result.get("confinement", "view" if result.get("sealed") else "")
    if result.get("bubblewrap"):
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
                 if c.cell_type == "markdown" and _gid(c) == gid]
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
    needed = [str(Path(r).resolve()) for r in _allowed_reads()]
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
    pool = get_pool(jobs, max(1, (os.cpu_count() or 1) // jobs))
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


