"""What each check reads (step 2b of :mod:`coursekit.authoring.grade`): from the
solution's source, the names a check cell takes from the notebook and the imports it
needs, so the check process gets copies of just those objects.
"""
from __future__ import annotations

import ast
import builtins
import functools
import re
import symtable
from dataclasses import dataclass

from coursekit.authoring.release import nbgrader_meta
from coursekit.authoring.sandbox.messages import CheckSpec


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


def check_spec(gid: str, source: str, info: SolutionInfo, cell: int = -1) -> CheckSpec:
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
    return CheckSpec(gid, code, names, sorted(bound), modules, cell)
