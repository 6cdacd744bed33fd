"""Helpers for tests that read the course notebooks."""
from __future__ import annotations

from pathlib import Path

import nbformat

ROOT = Path(__file__).resolve().parents[1]


def notebook(folder: str, chapter: str) -> Path:
    """The notebook ``folder/NN_*.ipynb`` of chapter ``NN`` (e.g. "02")."""
    found = sorted((ROOT / folder).glob(f"{chapter}_*.ipynb"))
    assert len(found) == 1, f"expected one {folder}/{chapter}_*.ipynb, found {found}"
    return found[0]


def exec_tagged_cells(path: Path, tag: str = "inline", namespace: dict | None = None) -> dict:
    """Run the run-this-first cell and every code cell tagged ``tag``; return the namespace.

    Lets a test compare a lesson's inline version of a model with coursekit's.
    """
    nb = nbformat.read(path, as_version=4)
    ns: dict = {} if namespace is None else namespace
    ns.setdefault("__name__", "__lesson__")
    code = [c for c in nb.cells if c.cell_type == "code"]
    ran = 0
    for i, cell in enumerate(code):
        tags = cell.get("metadata", {}).get("tags", [])
        if i == 0 or tag in tags:
            source = "\n".join(l for l in cell.source.splitlines() if not l.lstrip().startswith(("%", "!")))
            exec(compile(source, f"{path.name}[{i}]", "exec"), ns)
            ran += 1
    assert ran > 1, f"{path.name} has no code cell tagged {tag!r}"
    return ns


def exec_answers(nb, namespace: dict | None = None, run_first: int = 0) -> dict:
    """Run a notebook's first ``run_first`` code cells, then its answer cells (nbgrader
    ``solution`` code cells), in one namespace and return it: the learner's functions,
    answered (a solutions notebook) or stubbed (a released exercise)."""
    ns = dict(namespace or {})
    code = [c for c in nb.cells if c.cell_type == "code"]
    for i, cell in enumerate(code):
        meta = cell.metadata.get("nbgrader", {})
        if i < run_first or meta.get("solution"):
            exec(compile(cell.source, meta.get("grade_id", f"cell{i}"), "exec"), ns)
    return ns


def exec_answer_cells(folder: str, chapter: str, namespace: dict | None = None) -> dict:
    """``exec_answers`` on ``folder``'s notebook of ``chapter``."""
    return exec_answers(nbformat.read(notebook(folder, chapter), as_version=4), namespace)
