"""Reading a submission and rebuilding the copy that is graded (steps 1 and 2 of
:mod:`coursekit.authoring.grade`): validate the file, then take every check cell from
the solution notebook, restoring and flagging what the learner edited, moved or deleted.
"""
from __future__ import annotations

import json
from pathlib import Path

import nbformat

from coursekit.authoring.release import check_cells, has_markers, make_exercise, nbgrader_meta

MAX_BYTES = 20 * 1024 * 1024


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
def cell_grade_id(cell) -> str | None:
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
        gid = cell_grade_id(cell)
        if gid in answer_key:
            released_ids[cell.id] = gid
    order = [g for g in (cell_grade_id(c) for c in solution.cells) if g]
    rank = {g: i for i, g in enumerate(dict.fromkeys(order))}
    flags: list[str] = []

    # a. classify the learner's cells: check cells (restored), the rest kept as written
    items: list[tuple[str | None, object]] = []   # (anchor grade_id or None, cell)
    placed: set[str] = set()
    for cell in nb.cells:
        own = cell_grade_id(cell)
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
            gid = cell_grade_id(cell)
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
