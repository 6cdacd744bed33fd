"""Chapter 01: the checks' references against coursekit's Markov chain, the lesson's inline
Markov chain vs coursekit's, and the notebooks. Right and wrong answers for the checks are
in tests/answers/ch01.py (run by tests/test_check_contract.py)."""
import nbformat
import pytest
import torch

from coursekit.checks import CheckFailure, ch01
from coursekit.models.markov import MarkovChain
from nbtools import exec_tagged_cells, notebook

RUN_FIRST = "import coursekit as ck\ndevice = ck.setup(seed=0)"


# -- the checks' own references (the answer table is tests/answers/ch01.py) -----------------

def test_references_agree_with_the_markov_chain():
    """The check module's references and coursekit.models.markov are independent; they agree."""
    text = "the cat sat on the mat. a dog sat on a log.\n"
    vocab = sorted(set(text))
    chain = MarkovChain(order=1, alpha=0.3).fit(text, vocab=vocab)
    ref = ch01._bigram_probs(text, vocab, 0.3)
    torch.testing.assert_close(ref, chain.transition_matrix(), atol=1e-12, rtol=0)
    stoi = {c: i for i, c in enumerate(vocab)}
    held = "the dog sat on the cat."
    assert ch01._log_likelihood(held, ref, stoi) == pytest.approx(
        chain.log_likelihood(held[1:], prompt=held[0]), rel=1e-10)


def test_bayes_reference_agrees_with_softmax():
    log_px = torch.randn(6, 4, dtype=torch.float64) * 5
    log_prior = torch.log_softmax(torch.randn(4, dtype=torch.float64), 0)
    torch.testing.assert_close(ch01._bayes_posterior(log_px, log_prior),
                               torch.softmax(log_px + log_prior, dim=1), atol=1e-12, rtol=0)


# -- the lesson's inline Markov chain against coursekit's ----------------------------------

@pytest.fixture(scope="module")
def lesson():
    return exec_tagged_cells(notebook("notebooks", "01"), "inline")


@pytest.mark.parametrize("k", [0, 1, 3, 6])
def test_inline_counts_equal_the_package_counts(lesson, k):
    text = lesson["train_text"][:6000]
    inline = lesson["count_transitions"](text, k)
    chain = MarkovChain(order=k).fit(text, vocab=lesson["vocab"])
    assert {c: dict(n) for c, n in inline.items()} == chain.counts


@pytest.mark.parametrize("k, alpha", [(0, 0.01), (1, 0.0), (3, 0.01), (5, 1.0)])
def test_inline_probabilities_and_samples_equal_the_package(lesson, k, alpha):
    text, vocab = lesson["train_text"], lesson["vocab"]
    counts = lesson["count_transitions"](text, k)
    chain = MarkovChain(order=k, alpha=alpha).fit(text, vocab=vocab)
    for history in ["", "O", "Once upon a ti", "He asked", "xyz!", lesson["val_text"][:50]]:
        inline = lesson["next_char_probs"](counts, vocab, history, k, alpha)
        torch.testing.assert_close(inline, chain.next_probs(history), atol=0, rtol=0)
    for seed in (0, 1):
        a = lesson["sample_text"](counts, vocab, k, alpha, 120, "Once", torch.Generator().manual_seed(seed))
        b = chain.sample(120, "Once", generator=torch.Generator().manual_seed(seed))
        assert a == b


def test_lesson_inline_cells_produce_text(lesson):
    assert lesson["probs"].shape == (len(lesson["vocab"]),)
    assert abs(lesson["probs"].sum().item() - 1) < 1e-12
    assert len(lesson["inline_sample"]) == 250 and set(lesson["inline_sample"]) <= set(lesson["vocab"])


# -- notebooks ---------------------------------------------------------------------------

def _code_cells(nb):
    return [c for c in nb.cells if c.cell_type == "code"]


@pytest.mark.parametrize("folder", ["notebooks", "solutions"])
def test_notebooks_start_with_the_run_this_first_cell(folder):
    nb = nbformat.read(notebook(folder, "01"), as_version=4)
    assert _code_cells(nb)[0].source == RUN_FIRST
    assert nb.cells[0].source.startswith("# 01")


def test_lesson_has_objectives_history_recap_and_further_reading():
    md = "\n".join(c.source for c in nbformat.read(notebook("notebooks", "01"), as_version=4).cells
                   if c.cell_type == "markdown")
    for must in ("Learning objectives", "## Recap", "## Further reading", "Generative Adversarial Nets",
                 "Auto-Encoding Variational Bayes", "Attention Is All You Need",
                 "Denoising Diffusion Probabilistic Models", "Boltzmann"):
        assert must in md, must


def test_every_exercise_check_has_a_check_cell_with_its_name():
    nb = nbformat.read(notebook("solutions", "01"), as_version=4)
    graded = {c.metadata["nbgrader"]["grade_id"]: c for c in nb.cells
              if c.metadata.get("nbgrader", {}).get("grade")}
    assert set(graded) == {n for n in dir(ch01) if n.startswith("check_")}
    for gid, cell in graded.items():
        assert f"ck.checks.ch01.{gid}(" in cell.source
        assert cell.metadata["tags"] == ["check"] and cell.metadata["nbgrader"]["points"] > 0


@pytest.mark.parametrize("released", [False, True], ids=["solution", "exercise"])
def test_solution_passes_every_check_and_the_released_stubs_fail_them(released, capsys):
    """Answer and check cells run in order (the other cells are the ones that use the answers)."""
    from coursekit.authoring.release import make_exercise
    nb = nbformat.read(notebook("solutions", "01"), as_version=4)
    if released:
        nb = make_exercise(nb, "01_generative_vs_discriminative.ipynb")
    cells = _code_cells(nb)
    ns: dict = {}
    exec(cells[0].source + "\n" + "import torch, math", ns)
    n_checks = 0
    for cell in cells[1:]:
        meta = cell.metadata.get("nbgrader", {})
        if meta.get("solution"):
            if released:
                with pytest.raises(NotImplementedError):
                    exec(cell.source, ns)
            else:
                exec(cell.source, ns)
        elif meta.get("grade"):
            n_checks += 1
            if released:
                with pytest.raises(CheckFailure, match="not written yet"):
                    exec(cell.source, ns)
            else:
                exec(cell.source, ns)
    assert n_checks == 4
    if not released:
        # each check runs twice in the solutions: its public cases, then the hidden ones
        assert capsys.readouterr().out.count("PASSED check_") == 2 * 4
