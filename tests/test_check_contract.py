"""Every chapter's checks against their answer tables (``tests/answers/chNN.py``).

For each graded check of each chapter: an independent right answer passes, the released
stub fails, at least three wrong answers fail with a message that helps (the four-part
message and the phrase the table names), every ban the check declares is caught by a
dodge in the table, no failure message hands out a line of the model answer, and the
instructor-only cases of the solutions draw their seeds from ``ck.checks.hidden_seed``, and
the answer key and every right answer pass those cases whatever seed a grading secret gives.
"""
from __future__ import annotations

import ast
import importlib
import inspect
import re

import nbformat
import pytest
import torch

from coursekit.checks import CheckFailure
from nbtools import ROOT, notebook

# Every chapter with a solutions notebook has checks and an answer table.
# Seeds the grader might draw: spread out, and including 23, 34 and 37, which once tied two beams.
HIDDEN_SEEDS = (23, 34, 37, 1_000_003, 2_147_483_000, 90_210, 4_242, 777)

CHAPTERS = sorted(f"ch{p.name[:2]}" for p in (ROOT / "solutions").glob("[0-9][0-9]_*.ipynb"))


def _table(chapter: str):
    return importlib.import_module(f"answers.{chapter}")


def _graded_checks(chapter: str) -> list[str]:
    """The grade_ids of the chapter's solutions notebook (the checks it grades)."""
    nb = nbformat.read(notebook("solutions", chapter[2:]), as_version=4)
    return [c.metadata["nbgrader"]["grade_id"] for c in nb.cells
            if c.get("metadata", {}).get("nbgrader", {}).get("grade")
            and c.cell_type == "code"]


def _check(chapter: str, name: str):
    return getattr(importlib.import_module(f"coursekit.checks.{chapter}"), name)


def _bans(chapter: str) -> dict:
    return getattr(importlib.import_module(f"coursekit.checks.{chapter}"), "BANS", {})


def _solution_lines(chapter: str) -> list[str]:
    """The model answer's lines (between the SOLUTION markers), long enough to matter."""
    nb = nbformat.read(notebook("solutions", chapter[2:]), as_version=4)
    lines, inside = [], False
    for cell in nb.cells:
        if cell.cell_type != "code":
            continue
        for line in cell.source.splitlines():
            if "### BEGIN SOLUTION" in line:
                inside = True
            elif "### END SOLUTION" in line:
                inside = False
            elif inside:
                text = line.split("#")[0].strip()
                if len(text) >= 24 and not text.startswith(("def ", "class ")):
                    lines.append(text)
    return lines


def _run(chapter: str, case) -> str:
    with pytest.raises(CheckFailure) as info:
        _check(chapter, case.check)(*case.args(), **case.kwargs)
    return str(info.value)


def _params(kind: str):
    out = []
    for chapter in CHAPTERS:
        try:
            table = _table(chapter)
        except ModuleNotFoundError:
            continue
        for case in getattr(table, kind):
            out.append(pytest.param(chapter, case, id=f"{chapter}-{case.id}"))
    return out


def stub(*args, **kwargs):
    raise NotImplementedError()


class StubClass:
    def __init__(self, *args, **kwargs):
        raise NotImplementedError()


@pytest.mark.parametrize("chapter", CHAPTERS)
def test_every_graded_check_has_a_full_table(chapter):
    table = _table(chapter)
    for name in _graded_checks(chapter):
        right = [c for c in table.RIGHT if c.check == name]
        wrong = [c for c in table.WRONG if c.check == name]
        assert right, f"{chapter}: no right answer for {name}"
        assert len(wrong) >= 3, f"{chapter}: {name} has only {len(wrong)} wrong answers"
        assert all(c.expect for c in wrong), f"{chapter}: a wrong answer of {name} names no phrase"


@pytest.mark.parametrize("chapter,case", _params("RIGHT"))
def test_a_right_answer_passes(chapter, case, capsys):
    _check(chapter, case.check)(*case.args(), **case.kwargs)
    assert capsys.readouterr().out.startswith(f"PASSED {case.check}")


@pytest.mark.parametrize("chapter,case", _params("RIGHT"))
def test_a_right_answer_passes_whatever_the_hidden_seed(chapter, case, capsys):
    """``coursekit grade`` draws a fresh secret, so hidden cases change from run to run: a right
    answer must pass every seed, ties included (a CI run once failed the answer key on a tie
    between two equally good beams)."""
    check = _check(chapter, case.check)
    if "seed" not in inspect.signature(check).parameters:
        pytest.skip(f"{case.check} takes no seed")
    for seed in HIDDEN_SEEDS:
        check(*case.args(), **{**case.kwargs, "seed": seed})
        assert capsys.readouterr().out.startswith(f"PASSED {case.check}"), f"seed {seed}"


def _answer_key(chapter: str) -> tuple[dict, list]:
    """The solutions notebook's imports and answer cells run in one namespace, and its graded cells."""
    nb = nbformat.read(notebook("solutions", chapter[2:]), as_version=4)
    ns: dict = {}
    for cell in nb.cells:                       # every import the notebook makes, nothing else
        if cell.cell_type == "code":
            imports = [n for n in ast.parse(cell.source).body if isinstance(n, (ast.Import, ast.ImportFrom))]
            exec(compile(ast.Module(imports, []), f"{chapter} imports", "exec"), ns)
    for cell in nb.cells:
        if cell.cell_type == "code" and cell.metadata.get("nbgrader", {}).get("solution"):
            exec(compile(cell.source, cell.metadata["nbgrader"]["grade_id"], "exec"), ns)
    graded = [c for c in nb.cells if c.cell_type == "code" and c.metadata.get("nbgrader", {}).get("grade")]
    return ns, graded


@pytest.mark.parametrize("chapter", CHAPTERS)
def test_the_answer_key_passes_the_hidden_cases_whatever_the_secret(chapter, monkeypatch, capsys):
    """The hidden tests of every graded cell, run on the model answers with the seeds a grading
    secret might give: the answer key must get full marks under any secret."""
    import coursekit as ck

    ns, graded = _answer_key(chapter)
    ran = 0
    for cell in graded:
        hidden = cell.source.split("### BEGIN HIDDEN TESTS", 1)
        if len(hidden) < 2:
            continue
        hidden = hidden[1].split("### END HIDDEN TESTS")[0]
        for seed in HIDDEN_SEEDS:
            monkeypatch.setattr(ck.checks, "hidden_seed", lambda label, s=seed: s)
            exec(compile(hidden, cell.metadata["nbgrader"]["grade_id"], "exec"), ns)
            out = capsys.readouterr().out
            assert "PASSED" in out and "failed" not in out, (cell.metadata["nbgrader"]["grade_id"], seed, out)
            ran += 1
    assert ran >= len(HIDDEN_SEEDS), f"{chapter}: no graded cell has hidden tests"


@pytest.mark.parametrize("chapter,case", _params("RIGHT"))
def test_the_stub_fails(chapter, case):
    stubbed = tuple(StubClass if isinstance(a, type) else stub for a in case.args())
    with pytest.raises(CheckFailure, match="not written yet"):
        _check(chapter, case.check)(*stubbed, **case.kwargs)


@pytest.mark.parametrize("chapter,case", _params("WRONG"))
def test_a_wrong_answer_fails_with_a_helpful_message(chapter, case):
    message = _run(chapter, case)
    assert message.startswith(f"{case.check} failed: "), message
    assert case.expect.lower() in message.lower(), \
        f"the message does not say {case.expect!r}:\n{message}"
    assert "hint:" in message, f"the message has no hint:\n{message}"
    for line in _solution_lines(chapter):
        assert line not in message, f"the message hands out the model answer's line {line!r}"


@pytest.mark.parametrize("chapter", CHAPTERS)
def test_every_ban_is_caught_by_a_dodge_in_the_table(chapter):
    table = _table(chapter)
    for name, bans in _bans(chapter).items():
        messages = [_run(chapter, c) for c in table.WRONG if c.check == name]
        for b in bans:
            assert any(b.label in m or any(t in m for t in b.targets + b.ops) for m in messages), \
                f"{chapter}: no wrong answer of {name} uses the banned {b.label}"


@pytest.mark.parametrize("chapter", CHAPTERS)
def test_hidden_tests_draw_seeds_the_learner_cannot_see(chapter):
    nb = nbformat.read(notebook("solutions", chapter[2:]), as_version=4)
    for cell in nb.cells:
        if "### BEGIN HIDDEN TESTS" not in cell.source:
            continue
        hidden = cell.source.split("### BEGIN HIDDEN TESTS", 1)[1].split("### END HIDDEN TESTS")[0]
        literal = re.findall(r"(seed\s*=\s*\d+|manual_seed\(\s*\d+|seed_everything\(\s*\d+)", hidden)
        assert not literal, (f"{chapter}: hidden tests use a fixed seed {literal}; draw it "
                             "with ck.checks.hidden_seed('<label>')")


@pytest.mark.parametrize("chapter,case", _params("RIGHT"))
def test_a_check_leaves_the_learners_random_numbers_alone(chapter, case, capsys):
    """A check draws its cases from its own generators: the learner's next random numbers
    are the same whether or not a check ran in between."""
    import random

    torch.manual_seed(123)
    random.seed(5)
    expected = (torch.rand(3), random.random())
    torch.manual_seed(123)
    random.seed(5)
    _check(chapter, case.check)(*case.args(), **case.kwargs)
    assert torch.equal(torch.rand(3), expected[0]) and random.random() == expected[1], \
        f"{case.check} changed the global random state"
