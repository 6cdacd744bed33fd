"""A failing check in a real kernel: the learner sees their own code and the check's
message, not coursekit's frames; ``ck.checks.full_tracebacks()`` brings them back."""
import re

import nbclient
import nbformat
import pytest

pytestmark = pytest.mark.slow

SETUP = "import coursekit as ck\nimport torch\ndevice = ck.setup(seed=0, quiet=True)"
CHECK = """from coursekit.checks import assertions
def check_double(fn):
    z = torch.arange(4.0)
    got = assertions.call("check_double", fn, z, what="double(z)")
    assertions.expect_close("check_double", "double of 0..3", got, 2 * z, hint="multiply by two")
    assertions.passed("check_double")
"""
WRONG = "def double(z):\n    return z + 1\ncheck_double(double)"
RAISES = "def double(z):\n    return z @ torch.ones(7)\ncheck_double(double)"
RIGHT = "def double(z):\n    return z * 2\ncheck_double(double)"


def _run(*sources):
    nb = nbformat.v4.new_notebook()
    nb.cells = [nbformat.v4.new_code_cell(s) for s in (SETUP, CHECK, *sources)]
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3",
                                 "language": "python"}
    nbclient.NotebookClient(nb, allow_errors=True, timeout=120).execute()
    return nb.cells[2:]


def _shown(cell) -> tuple[str, str]:
    errors = [o for o in cell.outputs if o.output_type == "error"]
    if not errors:
        return "", ""
    text = re.sub(r"\x1b\[[0-9;]*m", "", "\n".join(errors[0].traceback))
    return errors[0].ename, text


@pytest.fixture(scope="module")
def cells():
    return _run(WRONG, RAISES, RIGHT, "ck.checks.full_tracebacks()\n" + WRONG,
                "ck.checks.full_tracebacks(False)\n" + WRONG)


def test_a_failing_check_shows_the_learners_cell_and_the_message_only(cells):
    ename, text = _shown(cells[0])
    assert ename == "CheckFailure"
    assert "check_double failed" in text and re.search(r"hint:\s+multiply by two", text), text
    assert "return z + 1" in text or "check_double(double)" in text, text   # their cell
    assert "assertions.py" not in text and "coursekit/checks" not in text, text
    assert "only your own code is shown" in text
    assert len([l for l in text.splitlines() if l.strip()]) < 25, text


def test_an_error_inside_the_learners_function_shows_where_it_raised(cells):
    ename, text = _shown(cells[1])
    assert ename == "CheckFailure"
    assert "z @ torch.ones(7)" in text, text                 # the learner's failing line
    assert "The check above caught that error" in text, text
    assert "coursekit/checks" not in text and "torch/" not in text, text


def test_a_right_answer_still_passes(cells):
    assert _shown(cells[2]) == ("", "")
    assert any("PASSED check_double" in o.get("text", "") for o in cells[2].outputs)


def test_the_full_traceback_is_one_switch_away(cells):
    ename, text = _shown(cells[3])
    assert ename == "CheckFailure" and "assertions.py" in text, text
    assert "only your own code is shown" not in text
    ename, text = _shown(cells[4])
    assert "assertions.py" not in text and "only your own code is shown" in text, text
