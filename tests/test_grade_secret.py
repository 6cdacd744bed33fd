"""`coursekit grade` and the exercise guards: hidden cases seeded from a secret that only
the check process holds, and answers that use what the exercise forbids refused, with
the call and the reason named in the learner's feedback."""
import stat

import nbformat
import pytest

from coursebuilder import RUN_FIRST_TENSORS, answer, meta_answer, meta_check, submit
from coursekit.authoring.grade import SECRET_FILE, Settings, grade, grading_secret
from coursekit.authoring.release import release
from coursekit.checks.assertions import hidden_seed

pytestmark = pytest.mark.slow

NAME = "97_guarded.ipynb"

ANSWER_GUESS = """### BEGIN SOLUTION
guess = None
### END SOLUTION"""

# Passes only for a guess equal to the hidden seed: a notebook that could compute the
# seed would pass, so the learner's process must not be able to.
CHECK_GUESS = """print("the hidden case runs when the notebook is graded")
### BEGIN HIDDEN TESTS
if guess != ck.checks.hidden_seed("probe"):
    ck.checks.assertions.fail("check_guess", "the hidden seed", "the secret's seed", guess,
                              "it cannot be guessed")
ck.checks.assertions.passed("check_guess")
### END HIDDEN TESTS"""

ANSWER_RELU = """def relu(z):
    ### BEGIN SOLUTION
    return z * (z > 0)
    ### END SOLUTION"""

CHECK_RELU = """from coursekit.checks.forbidden import ban
bans = [ban("torch.relu", "torch.Tensor.relu", "torch.nn.functional.relu",
            reason="the exercise builds ReLU from a comparison", ops=["relu"])]
z = torch.linspace(-2, 2, 9)
got = ck.checks.assertions.call("check_relu", relu, z, what="relu(z)", bans=bans)
ck.checks.assertions.expect_close("check_relu", "relu on -2..2", got, z.clamp(min=0))
ck.checks.assertions.passed("check_relu")"""


def _solution():
    v4 = nbformat.v4
    nb = v4.new_notebook(cells=[
        v4.new_markdown_cell("# Guarded exercises"),
        v4.new_code_cell(RUN_FIRST_TENSORS),
        v4.new_code_cell(ANSWER_GUESS, metadata=meta_answer("guess_answer")),
        v4.new_code_cell(CHECK_GUESS, metadata=meta_check("check_guess", 1)),
        v4.new_code_cell(ANSWER_RELU, metadata=meta_answer("relu_answer")),
        v4.new_code_cell(CHECK_RELU, metadata=meta_check("check_relu", 1)),
    ])
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3",
                                 "language": "python"}
    return nb


@pytest.fixture(scope="module")
def course(tmp_path_factory):
    root = tmp_path_factory.mktemp("guarded")
    (root / "solutions").mkdir()
    nbformat.write(_solution(), root / "solutions" / NAME)
    release(root / "solutions", root / "exercises")
    return root, nbformat.read(root / "exercises" / NAME, as_version=4)


def _graded(root, subs, out, secret=""):
    rows = grade([submit(root, who, nb, name=NAME) for who, nb in subs.items()], out,
                 Settings(solutions=root / "solutions", jobs=2, secret=secret), progress=False)
    return {r.learner: r for r in rows}


@pytest.fixture(scope="module")
def graded(course):
    root, exercise = course
    secret = "instructor-only-3f9a"
    from coursekit.checks import assertions
    assertions._GRADING_SECRET = secret
    try:
        right_seed = hidden_seed("probe")
    finally:
        assertions._GRADING_SECRET = None
    subs = {
        "knows": answer(exercise, "guess_answer", f"guess = {right_seed}"),
        "computes": answer(exercise, "guess_answer", 'guess = ck.checks.hidden_seed("probe")'),
        "env": answer(exercise, "guess_answer",
                      "import os, hashlib\n"
                      "s = os.environ.get('COURSEKIT_GRADING_SECRET', '')\n"
                      "from coursekit.checks import assertions as a\n"
                      "s = a._GRADING_SECRET or s\n"
                      "d = hashlib.sha256(f'{s}\\0probe'.encode()).digest()\n"
                      "guess = int.from_bytes(d[:4], 'little') % (2 ** 31 - 1)"),
        "torch-relu": answer(exercise, "relu_answer",
                             "import torch\nr = torch.relu\ndef relu(z):\n    return r(z)"),
        "getattr-relu": answer(exercise, "relu_answer",
                               "import torch\ndef relu(z):\n"
                               "    return getattr(torch, 're' + 'lu')(z)"),
        "honest": answer(exercise, "relu_answer", "def relu(z):\n    return torch.where(z > 0, z, 0 * z)"),
    }
    return root, secret, right_seed, _graded(root, subs, root / "out", secret)


def test_only_the_check_process_holds_the_secret(graded):
    _, _, _, rows = graded
    assert rows["knows"].points["check_guess"] == 1, rows["knows"].reasons
    for who in ("computes", "env"):
        assert rows[who].points["check_guess"] == 0, (who, rows[who].reasons)


def test_the_secret_changes_the_hidden_seed(graded):
    root, secret, right_seed, _ = graded
    assert right_seed != hidden_seed("probe")       # outside grading: the fixed seed


def test_a_banned_call_is_refused_by_name_with_its_reason(graded):
    _, _, _, rows = graded
    assert rows["honest"].points["check_relu"] == 1, rows["honest"].reasons
    for who in ("torch-relu", "getattr-relu"):
        row = rows[who]
        assert row.points["check_relu"] == 0, (who, row.reasons)
        text = row.feedback["check_relu"]
        assert "relu" in text and "builds ReLU from a comparison" in text, text


def test_the_drawn_secret_is_kept_private_and_reused(tmp_path, monkeypatch):
    monkeypatch.delenv("COURSEKIT_GRADING_SECRET", raising=False)
    first = grading_secret(tmp_path / "out")
    path = tmp_path / "out" / SECRET_FILE
    assert path.is_file() and stat.S_IMODE(path.stat().st_mode) == 0o600
    assert grading_secret(tmp_path / "out") == first and len(first) >= 32
    assert grading_secret(tmp_path / "other") != first
    assert grading_secret(tmp_path / "out", "given") == "given"
    monkeypatch.setenv("COURSEKIT_GRADING_SECRET", "from-env")
    assert grading_secret(tmp_path / "out") == "from-env"
