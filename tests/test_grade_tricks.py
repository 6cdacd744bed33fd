"""`coursekit grade` decides each check with its own code: tricks in a submission fail.

Every trick below is planted in a submission whose softmax is wrong (it forgets to
normalise), so the honest grade of check_softmax is 0. A trick "works" when it turns
that 0 into points; the grader must give 0 every time and still grade the rest of the
notebook (check_scale, answered correctly, keeps its 3 points). Several tricks do fool
plain nbval, which only watches the kernel's error messages; the last test shows it.
"""
import json
import os
import subprocess
import sys

import nbformat
import pytest

from coursebuilder import answer, make_tensor_course, submit, with_cell_after
from coursekit.authoring.grade import Settings, grade

pytestmark = pytest.mark.slow

WRONG_SOFTMAX = "def softmax(z):\n    return z.exp()"
# a Scale with an extra parameter: right outputs, wrong parameter count (found with sum())
TWO_PARAMETER_SCALE = """class Scale(torch.nn.Module):
    def __init__(self, w0=2.0):
        super().__init__()
        self.w = torch.nn.Parameter(torch.tensor(float(w0)))
        self.b = torch.nn.Parameter(torch.tensor(0.0))

    def forward(self, x):
        return self.w * x + self.b"""
RIGHT_SCALE = """class Scale(torch.nn.Module):
    def __init__(self, w0=2.0):
        super().__init__()
        self.w = torch.nn.Parameter(torch.tensor(float(w0)))

    def forward(self, x):
        return self.w * x"""

# name -> code in a cell of its own, right after the (wrong) softmax answer
TRICKS = {
    "custom_exc": "get_ipython().set_custom_exc((BaseException,), lambda *args, **kw: None)",
    "excepthook": "import sys\nsys.excepthook = lambda *args: None",
    "assertion_error": ("import builtins\n"
                        "class AssertionError(Exception):\n    pass\n"
                        "builtins.AssertionError = AssertionError"),
    "print": "import builtins\nbuiltins.print = lambda *a, **k: None\nprint = builtins.print",
    "patch_check_module": ("import coursekit.checks.assertions as m\n"
                           "m.expect_close = lambda *a, **k: None"),
    "replace_ck_checks": ("import types\n"
                          "fake = types.SimpleNamespace(call=lambda c, f, *a, **k: f(*a),\n"
                          "    expect_close=lambda *a, **k: None, passed=lambda *a, **k: None,\n"
                          "    fail=lambda *a, **k: None)\n"
                          "ck.checks = types.SimpleNamespace(assertions=fake)"),
    "patch_torch": "torch.allclose = lambda *a, **k: True",
    "patch_builtins": ("import builtins\n"
                       "builtins.sum = lambda *a, **k: 1\n"
                       "builtins.NotImplementedError = type('NotImplementedError', (Warning,), {})"),
    "patch_sys_modules": ("import sys, types, coursekit.checks\n"
                          "fake = types.ModuleType('coursekit.checks.assertions')\n"
                          "fake.__dict__.update(call=lambda c, f, *a, **k: f(*a),\n"
                          "    expect_close=lambda *a, **k: None, passed=lambda *a, **k: None)\n"
                          "sys.modules['coursekit.checks.assertions'] = fake\n"
                          "ck.checks.assertions = fake"),
}

# name -> a softmax that attacks while the check is calling it
CALL_TIME = {
    "patch_at_call": ("def softmax(z):\n"
                      "    import coursekit.checks.assertions as m\n"
                      "    m.expect_close = lambda *a, **k: None\n"
                      "    return z.exp()"),
    "torch_at_call": ("def softmax(z):\n"
                      "    import torch\n"
                      "    torch.allclose = lambda *a, **k: True\n"
                      "    return z.exp()"),
    "exit_at_call": "def softmax(z):\n    import sys\n    sys.exit(0)",
}


@pytest.fixture(scope="module")
def tricked(tmp_path_factory):
    root = tmp_path_factory.mktemp("tricks")
    _, ex = make_tensor_course(root)
    exercise = nbformat.read(ex, as_version=4)
    base = answer(exercise, "scale_answer", RIGHT_SCALE)
    subs = {"honest_wrong": submit(root, "honest_wrong",
                                   answer(base, "softmax_answer", WRONG_SOFTMAX), "98_tensors.ipynb")}
    for name, code in TRICKS.items():
        nb = with_cell_after(answer(base, "softmax_answer", WRONG_SOFTMAX), "softmax_answer", code)
        if name == "patch_builtins":
            nb = answer(nb, "scale_answer", TWO_PARAMETER_SCALE)
        subs[name] = submit(root, name, nb, "98_tensors.ipynb")
    for name, code in CALL_TIME.items():
        subs[name] = submit(root, name, answer(base, "softmax_answer", code), "98_tensors.ipynb")
    rows = grade(list(subs.values()), root / "grades",
                 Settings(solutions=root / "solutions", cell_timeout=20, jobs=2), progress=False)
    return root, subs, {r.learner: r for r in rows}


def test_the_honest_wrong_answer_scores_zero(tricked):
    row = tricked[2]["honest_wrong"]
    assert row.points == {"check_softmax": 0, "check_scale": 3}, row.reasons


@pytest.mark.parametrize("trick", sorted(TRICKS))
def test_tricks_in_the_notebooks_cells_do_not_change_the_grade(tricked, trick):
    row = tricked[2][trick]
    scale = 0 if trick == "patch_builtins" else 3     # (that one also has a wrong Scale)
    assert row.points == {"check_softmax": 0, "check_scale": scale}, row.reasons
    assert any(r.startswith("check_softmax: check_softmax failed") for r in row.reasons), row.reasons


@pytest.mark.parametrize("trick", ["patch_check_module", "replace_ck_checks", "patch_torch",
                                   "patch_sys_modules"])
def test_tricks_that_fool_the_kernel_are_flagged(tricked, trick):
    """The check passed inside the learner's kernel but not in the grader: flagged."""
    reasons = tricked[2][trick].reasons
    assert any("passed inside the notebook but failed when the grader re-ran it" in r
               for r in reasons), reasons


@pytest.mark.parametrize("trick", ["patch_at_call", "torch_at_call"])
def test_tampering_while_the_check_runs_is_caught(tricked, trick):
    row = tricked[2][trick]
    assert row.points == {"check_softmax": 0, "check_scale": 3}, row.reasons
    assert any(r.startswith("check_softmax: tampering:") for r in row.reasons), row.reasons


def test_exiting_while_the_check_runs_fails_that_check_only(tricked):
    row = tricked[2]["exit_at_call"]
    assert row.points == {"check_softmax": 0, "check_scale": 3}, row.reasons
    assert "SystemExit" in row.feedback["check_softmax"]


def test_plain_nbval_is_fooled_where_the_grader_is_not(tricked, tmp_path):
    """The tricks are real: plain nbval passes the check cell; the grader gives 0."""
    root, subs, rows = tricked
    fooled = {"patch_check_module": "check_softmax", "replace_ck_checks": "check_softmax",
              "patch_torch": "check_softmax", "custom_exc": "check_softmax",
              "patch_sys_modules": "check_softmax", "patch_builtins": "check_scale"}
    report = tmp_path / "verdicts.json"
    env = dict(os.environ, COURSEKIT_NBVAL_REPORT=str(report), COURSEKIT_FAST="1")
    subprocess.run([sys.executable, "-m", "pytest", "--nbval-lax", "--nbval-current-env",
                    "-p", "coursekit.authoring.nbval_report", "-p", "no:cacheprovider", "-q",
                    "-o", "addopts=", *[str(subs[k]) for k in fooled]],
                   capture_output=True, text=True, cwd=root, env=env, timeout=600)
    verdicts = json.loads(report.read_text())
    for trick, gid in fooled.items():
        nb = nbformat.read(subs[trick], as_version=4)
        code = [c for c in nb.cells if c.cell_type == "code"]
        index = next(i for i, c in enumerate(code)
                     if c.metadata.get("nbgrader", {}).get("grade_id") == gid)
        assert verdicts[f"{subs[trick].resolve()}::{index}"]["outcome"] == "passed", trick
        assert rows[trick].points[gid] == 0, trick
