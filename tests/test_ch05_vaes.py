"""Checks of chapter 05 (coursekit.checks.ch05): each passes on the reference answers,
fails on the exercise stubs, and fails on typical wrong answers with a hint that names
the mistake."""
import inspect

import nbformat
import pytest
import torch

from coursekit.authoring.release import make_exercise
from coursekit.checks import CheckFailure, ch05
from nbtools import notebook

CHECKS = ["check_reparameterise", "check_kl_divergence", "check_negative_elbo", "check_encoder",
          "check_train_step"]
# what each check is given, by name in the solution notebook
ANSWERS = {"check_reparameterise": "reparameterise", "check_kl_divergence": "kl_divergence",
           "check_negative_elbo": "negative_elbo", "check_encoder": "Encoder",
           "check_train_step": "train_step"}


def _run(nb) -> dict:
    """Run a solution or exercise notebook's set-up cells and answer cells; return the names."""
    ns: dict = {"__name__": "__exercise__"}
    code = [c for c in nb.cells if c.cell_type == "code"]
    for i, cell in enumerate(code):
        meta = cell.metadata.get("nbgrader", {})
        if i < 2 or meta.get("solution"):
            exec(compile(cell.source, f"cell{i}", "exec"), ns)
    return ns


@pytest.fixture(scope="module")
def solution_nb():
    return nbformat.read(notebook("solutions", "05"), as_version=4)


@pytest.fixture(scope="module")
def solution(solution_nb):
    return _run(solution_nb)


@pytest.fixture(scope="module")
def stubs(solution_nb):
    return _run(make_exercise(solution_nb, "05_vaes.ipynb"))


def test_every_check_has_a_check_cell_and_the_reverse(solution_nb):
    graded = {c.metadata["nbgrader"]["grade_id"] for c in solution_nb.cells
              if c.metadata.get("nbgrader", {}).get("grade") and c.cell_type == "code"}
    public = {name for name, fn in inspect.getmembers(ch05, inspect.isfunction)
              if name.startswith("check_")}
    assert graded == public == set(CHECKS)


@pytest.mark.parametrize("check", CHECKS)
def test_check_passes_on_the_solution_notebook(solution, check, capsys):
    getattr(ch05, check)(solution[ANSWERS[check]])
    assert f"PASSED {check}" in capsys.readouterr().out


@pytest.mark.parametrize("check", CHECKS)
def test_check_fails_on_the_exercise_stub(stubs, check):
    with pytest.raises(CheckFailure, match="not written yet"):
        getattr(ch05, check)(stubs[ANSWERS[check]])


# The checks' right and wrong answers live in tests/answers/ch05.py and are run by
# tests/test_check_contract.py; this file keeps what is specific to the chapter.



@pytest.mark.parametrize("check", CHECKS)
def test_checks_reject_non_functions_clearly(check):
    with pytest.raises(CheckFailure, match="hint"):
        getattr(ch05, check)(torch.zeros(3))
