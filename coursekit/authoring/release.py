"""Make exercise notebooks from solution notebooks (nbgrader's conventions).

A solution notebook is the single source. ``release`` copies it, and

1. replaces every region between ``### BEGIN SOLUTION`` and ``### END SOLUTION`` in a
   code cell by ``# YOUR CODE HERE`` and ``raise NotImplementedError()`` at the marker's
   indentation (in a markdown cell by ``YOUR ANSWER HERE``);
2. removes every region between ``### BEGIN HIDDEN TESTS`` and ``### END HIDDEN TESTS``;
3. clears outputs and execution counts, drops widget state;
4. puts a first cell saying the notebook is generated and from which file;
5. records the release in the notebook's metadata (``coursekit.source``, ``coursekit.checks``
   and, when the notebook has written answers, ``coursekit.manual``).

Cell metadata is kept as the author wrote it (nbgrader's ``grade``, ``solution``,
``grade_id``, ``points``, ``locked``). A written (markdown) answer is what nbgrader calls a
*manually graded answer*: ``solution: true``, ``grade: true`` and ``points``; nbgrader
refuses a markdown solution cell without them, and ``coursekit release`` warns
(``nbgrader_problems``).

The result is written deterministically, so ``release --check`` can compare bytes.
"""
from __future__ import annotations

import copy
import json
import re
from dataclasses import dataclass
from pathlib import Path

import nbformat

BEGIN_SOLUTION = "### BEGIN SOLUTION"
END_SOLUTION = "### END SOLUTION"
BEGIN_HIDDEN = "### BEGIN HIDDEN TESTS"
END_HIDDEN = "### END HIDDEN TESTS"
CODE_STUB = ["# YOUR CODE HERE", "raise NotImplementedError()"]
MARKDOWN_STUB = ["YOUR ANSWER HERE"]
GENERATED_TAG = "coursekit-generated"


class ReleaseError(ValueError):
    """A solution notebook is malformed (unbalanced markers, duplicate check names...)."""


@dataclass
class CheckCell:
    """A graded check cell: its exercise name (nbgrader grade_id) and points."""

    grade_id: str
    points: float
    index: int          # position in the solution notebook's cells
    source: str         # full source, hidden tests included


def _replace_regions(lines: list[str], begin: str, end: str, stub: list[str] | None,
                     where: str) -> list[str]:
    out: list[str] = []
    inside = False
    for number, line in enumerate(lines, 1):
        stripped = line.strip()
        if stripped == begin:
            if inside:
                raise ReleaseError(f"{where}, line {number}: {begin!r} inside another region")
            inside = True
            if stub:
                indent = line[: len(line) - len(line.lstrip())]
                out.extend(indent + s for s in stub)
        elif stripped == end:
            if not inside:
                raise ReleaseError(f"{where}, line {number}: {end!r} without {begin!r}")
            inside = False
        elif not inside:
            out.append(line)
    if inside:
        raise ReleaseError(f"{where}: {begin!r} is never closed by {end!r}")
    return out


def nbgrader_meta(cell) -> dict:
    return cell.get("metadata", {}).get("nbgrader", {}) or {}


def check_cells(nb) -> list[CheckCell]:
    """The graded check cells of a notebook, in order. Raises ReleaseError on duplicates."""
    found: list[CheckCell] = []
    seen: set[str] = set()
    for i, cell in enumerate(nb.cells):
        meta = nbgrader_meta(cell)
        if cell.cell_type == "code" and meta.get("grade") and meta.get("grade_id"):
            gid = str(meta["grade_id"])
            if gid in seen:
                raise ReleaseError(f"cell {i}: grade_id {gid!r} is used by two check cells")
            seen.add(gid)
            found.append(CheckCell(gid, float(meta.get("points", 0)), i, cell.source))
    return found


@dataclass
class ManualCell:
    """A written answer that a person marks (nbgrader's manually graded answer)."""

    grade_id: str
    points: float
    index: int          # position in the notebook's cells


def manual_cells(nb) -> list[ManualCell]:
    """The written answers of a notebook, in order: markdown cells with ``solution``,
    ``grade``, a ``grade_id`` and ``points`` (see ``nbgrader_problems`` for the rest)."""
    found: list[ManualCell] = []
    for i, cell in enumerate(nb.cells):
        meta = nbgrader_meta(cell)
        if (cell.cell_type == "markdown" and meta.get("solution") and meta.get("grade")
                and meta.get("grade_id") and meta.get("points")):
            found.append(ManualCell(str(meta["grade_id"]), float(meta["points"]), i))
    return found


def nbgrader_problems(nb) -> list[str]:
    """What nbgrader's ``generate_assignment`` would refuse: a markdown solution cell
    that is not a manually graded answer (``grade: true``, a ``grade_id``, ``points``)."""
    problems = []
    for i, cell in enumerate(nb.cells):
        meta = nbgrader_meta(cell)
        if cell.cell_type == "markdown" and meta.get("solution") and not (
                meta.get("grade") and meta.get("grade_id") and meta.get("points")):
            problems.append(f"cell {i} ({meta.get('grade_id') or 'no grade_id'}): a written "
                            "(markdown) answer must be a manually graded answer, as nbgrader "
                            "requires: nbgrader metadata solution: true, grade: true, a "
                            "grade_id and points > 0")
    return problems


def make_exercise(solution_nb, source_name: str):
    """Return the exercise notebook made from a solution notebook (a new object)."""
    nb = copy.deepcopy(solution_nb)
    checks = check_cells(nb)
    manual = manual_cells(nb)
    for i, cell in enumerate(nb.cells):
        where = f"{source_name}, cell {i}"
        lines = cell.source.split("\n")
        stub = CODE_STUB if cell.cell_type == "code" else MARKDOWN_STUB
        lines = _replace_regions(lines, BEGIN_SOLUTION, END_SOLUTION, stub, where)
        lines = _replace_regions(lines, BEGIN_HIDDEN, END_HIDDEN, None, where)
        cell.source = "\n".join(lines).rstrip("\n")
        if cell.cell_type == "code":
            cell.outputs = []
            cell.execution_count = None
        cell.metadata.pop("execution", None)
        cell.metadata.pop("collapsed", None)
        cell.metadata.pop("scrolled", None)
    banner = nbformat.v4.new_markdown_cell(
        f"> **Exercise notebook.** Generated by `coursekit release` from "
        f"`solutions/{source_name}`; edits to this file are overwritten, so authors edit the "
        f"solution notebook. Learners: fill in every `# YOUR CODE HERE`, then run the check "
        f"cell below it.")
    banner.metadata = {"tags": [GENERATED_TAG], "editable": False, "deletable": False}
    nb.cells.insert(0, banner)
    for i, cell in enumerate(nb.cells):   # stable ids: position-based, same on every release
        cell.id = f"cell-{i:03d}"
    nb.metadata.pop("widgets", None)
    nb.metadata["coursekit"] = {
        "source": f"solutions/{source_name}",
        "checks": {c.grade_id: c.points for c in checks},
    }
    if manual:
        nb.metadata["coursekit"]["manual"] = {m.grade_id: m.points for m in manual}
    return nb


def dumps(nb) -> str:
    """Serialise a notebook deterministically."""
    nbformat.validate(nb)
    return json.dumps(nb, indent=1, sort_keys=True, ensure_ascii=False) + "\n"


def release(solutions: Path, exercises: Path, check: bool = False) -> list[str]:
    """Write (or with ``check=True`` only compare) one exercise notebook per solution.

    Returns:
        The names of the exercise notebooks that were stale (written or, with check,
        out of date), plus exercise notebooks that have no solution any more.
    """
    solutions, exercises = Path(solutions), Path(exercises)
    if not solutions.is_dir():
        raise ReleaseError(f"no solutions folder at {solutions}")
    stale: list[str] = []
    names = sorted(p.name for p in solutions.glob("*.ipynb"))
    for name in names:
        sol = nbformat.read(solutions / name, as_version=4)
        text = dumps(make_exercise(sol, name))
        target = exercises / name
        current = target.read_text(encoding="utf-8") if target.exists() else None
        if current != text:
            stale.append(name)
            if not check:
                exercises.mkdir(parents=True, exist_ok=True)
                target.write_text(text, encoding="utf-8")
    orphans = sorted(p.name for p in exercises.glob("*.ipynb") if p.name not in names) \
        if exercises.is_dir() else []
    stale.extend(f"{n} (no solutions/{n})" for n in orphans)
    return stale


_SOLUTION_RE = re.compile(r"^\s*### (BEGIN|END) (SOLUTION|HIDDEN TESTS)\s*$", re.M)


def has_markers(text: str) -> bool:
    """True when a source still contains solution or hidden-test markers."""
    return bool(_SOLUTION_RE.search(text))
