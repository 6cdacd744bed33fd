"""Chapter 01: the exercise checks, the lesson's inline Markov chain vs coursekit's, notebooks."""
import math

import nbformat
import pytest
import torch

from coursekit.checks import CheckFailure, ch01
from coursekit.models.markov import MarkovChain
from nbtools import exec_tagged_cells, notebook

RUN_FIRST = "import coursekit as ck\ndevice = ck.setup(seed=0)"


# -- reference answers and typical wrong answers ------------------------------------------

def _counts(text, vocab):
    index = {ch: i for i, ch in enumerate(vocab)}
    counts = torch.zeros(len(vocab), len(vocab))
    for a, b in zip(text, text[1:]):
        counts[index[a], index[b]] += 1
    return counts


def bigram_probs(text, vocab, alpha):
    counts = _counts(text, vocab)
    return (counts + alpha) / (counts.sum(1, keepdim=True) + alpha * len(vocab))


def sample_categorical(probs, n, generator):
    u = torch.rand(n, generator=generator)
    return torch.searchsorted(torch.cumsum(probs, 0), u, right=True).clamp(max=len(probs) - 1)


def sample_by_comparison(probs, n, generator):
    """Another correct inverse-CDF answer, without searchsorted."""
    u = torch.rand(n, generator=generator)
    return (u[:, None] >= torch.cumsum(probs, 0)[None, :]).sum(1).clamp(max=len(probs) - 1)


def log_likelihood(text, P, stoi):
    return sum(math.log(P[stoi[a], stoi[b]]) for a, b in zip(text, text[1:]))


def bayes_posterior(log_px_given_y, log_prior):
    return torch.softmax(log_px_given_y + log_prior, dim=1)


def stub(*args):
    raise NotImplementedError()


REFERENCES = [
    (ch01.check_bigram_probs, bigram_probs),
    (ch01.check_sample_categorical, sample_categorical),
    (ch01.check_sample_categorical, sample_by_comparison),
    (ch01.check_log_likelihood, log_likelihood),
    (ch01.check_bayes_posterior, bayes_posterior),
]

WRONG = [
    # (check, wrong answer, words the failure message must contain)
    (ch01.check_bigram_probs, lambda t, v, a: bigram_probs(t, v, a).T, "transposed"),
    (ch01.check_bigram_probs, lambda t, v, a: _counts(t, v) + a, "rows should sum to 1"),
    (ch01.check_bigram_probs, lambda t, v, a: bigram_probs(t, v, 0.0), "alpha is ignored"),
    (ch01.check_bigram_probs, lambda t, v, a: (_counts(t, v) + a) / (_counts(t, v) + a).sum(0, keepdim=True),
     "rows should sum to 1"),
    (ch01.check_bigram_probs, lambda t, v, a: (_counts(t, v) + a) / (_counts(t, v).sum(1, keepdim=True) + a),
     "rows should sum to 1"),
    (ch01.check_bigram_probs, lambda t, v, a: bigram_probs(t, v, a).tolist(), "torch.Tensor"),
    (ch01.check_bigram_probs, lambda t, v, a: bigram_probs(t, v, a)[:-1], "wrong shape"),
    (ch01.check_sample_categorical, lambda p, n, g: torch.multinomial(p, n, replacement=True, generator=g),
     "torch.multinomial is correct in distribution"),
    (ch01.check_sample_categorical, lambda p, n, g: sample_categorical(p, n, None), "seeded alike"),
    (ch01.check_sample_categorical, lambda p, n, g: sample_categorical(p, n, g).float(), "integer"),
    (ch01.check_sample_categorical, lambda p, n, g: p.argmax().repeat(n), "frequencies"),
    (ch01.check_sample_categorical,
     lambda p, n, g: (sample_categorical(p, n, g) + 1).clamp(max=len(p) - 1), "probs = [0, 1, 0]"),
    (ch01.check_sample_categorical, lambda p, n, g: sample_categorical(p, n, g)[:-1], "wrong shape"),
    (ch01.check_sample_categorical, lambda p, n, g: torch.searchsorted(torch.cumsum(p, 0), torch.rand(n, generator=g) * 1.5),
     "in 0..2"),
    (ch01.check_log_likelihood, lambda t, P, s: math.prod(P[s[a], s[b]].item() for a, b in zip(t, t[1:])),
     "probability itself"),
    (ch01.check_log_likelihood, lambda t, P, s: log_likelihood(t, P, s) / max(len(t) - 1, 1),
     "mean per character"),
    (ch01.check_log_likelihood, lambda t, P, s: log_likelihood(t, P, s) / math.log(10), "natural log"),
    (ch01.check_log_likelihood, lambda t, P, s: sum(math.log(P[s[t[i - 1]], s[t[i]]]) for i in range(len(t))),
     "first character"),
    (ch01.check_log_likelihood, lambda t, P, s: -log_likelihood(t, P, s) + 0.0 if len(t) > 1 else 0.0,
     "one-character text"),
    (ch01.check_log_likelihood, lambda t, P, s: torch.zeros(2), "one number"),
    (ch01.check_bayes_posterior, lambda lp, pr: torch.softmax(lp, dim=1), "prior is missing"),
    (ch01.check_bayes_posterior, lambda lp, pr: torch.softmax(lp + pr, dim=0), "each row should sum to 1"),
    (ch01.check_bayes_posterior, lambda lp, pr: torch.log_softmax(lp + pr, dim=1), "log-probabilities"),
    (ch01.check_bayes_posterior,
     lambda lp, pr: (lp + pr).exp() / (lp + pr).exp().sum(1, keepdim=True), "underflows"),
    (ch01.check_bayes_posterior, lambda lp, pr: torch.softmax(lp + pr, dim=1)[:, 1], "wrong shape"),
]


@pytest.mark.parametrize("check, answer", REFERENCES,
                         ids=[f"{c.__name__}-{a.__name__}" for c, a in REFERENCES])
def test_check_passes_on_the_reference(check, answer, capsys):
    check(answer)
    assert capsys.readouterr().out.startswith(f"PASSED {check.__name__}")


@pytest.mark.parametrize("check", sorted({c for c, _ in REFERENCES}, key=lambda c: c.__name__),
                         ids=lambda c: c.__name__)
def test_check_fails_on_the_stub(check):
    with pytest.raises(CheckFailure, match="not written yet"):
        check(stub)


@pytest.mark.parametrize("check, wrong, says", WRONG,
                         ids=[f"{c.__name__}-{i}" for i, (c, _, _) in enumerate(WRONG)])
def test_check_fails_on_a_typical_wrong_answer(check, wrong, says):
    with pytest.raises(CheckFailure) as info:
        check(wrong)
    message = str(info.value)
    assert says in message, message
    assert message.startswith(f"{check.__name__} failed")


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
        assert capsys.readouterr().out.count("PASSED check_") == 4
