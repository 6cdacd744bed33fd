"""Chapter 09: the lesson's inline masking and parameter count give the same numbers as
coursekit.models.mlm and coursekit.scaling under one seed; the masked model reads both
sides and scores only chosen positions; the power-law fit, the sweep's bookkeeping and the
scaling explorer widget; the released stubs fail (answer key: test_check_contract.py). The checks' right
and wrong answers live in tests/answers/ch09.py (test_check_contract.py)."""
from __future__ import annotations

import inspect
import math

import pytest
import torch
from nbtools import exec_answer_cells, exec_tagged_cells, notebook

import coursekit as ck
from coursekit import scaling
from coursekit.checks import ch09
from coursekit.checks.assertions import CheckFailure
from coursekit.data import CharTokenizer
from coursekit.lm import LMData
from coursekit.models.gpt import GPT, GPTConfig
from coursekit.models.mlm import IGNORE, MaskedLM, MLMConfig, letter_table, mask_tokens, train_mlm

TEXT = "the cat sat on the mat. In Millbrook there is a red lighthouse.\n" * 40


@pytest.fixture(scope="module")
def lesson():
    before = torch.get_num_threads()
    ns = exec_tagged_cells(notebook("notebooks", "09"), namespace={"torch": torch})
    torch.set_num_threads(before)
    return ns


# --- the lesson's inline code equals the package ---------------------------------------------

@pytest.mark.parametrize("shape,rate,seed", [((1, 20), 0.3, 1), ((4, 64), 0.15, 2), ((3, 7), 1.0, 3),
                                             ((2, 50), 0.0, 4)])
def test_lesson_masking_matches_the_package(lesson, shape, rate, seed):
    V = 30
    ids = torch.randint(0, V - 1, shape, generator=torch.Generator().manual_seed(seed + 100))
    ours = lesson["mask_inline"](ids, V - 1, V, rate, generator=torch.Generator().manual_seed(seed))
    theirs = mask_tokens(ids, V - 1, V, rate, generator=torch.Generator().manual_seed(seed))
    assert torch.equal(ours[0], theirs[0]) and torch.equal(ours[1], theirs[1])


CONFIGS = [GPTConfig(n_layer=3, n_head=4, n_embd=96, block_size=128),
           GPTConfig(vocab_size=300, n_layer=2, n_head=2, n_embd=32, bias=False),
           GPTConfig(n_layer=1, n_head=1, n_embd=8, layer_norm=False),
           GPTConfig(n_layer=2, n_head=2, n_embd=16, tie_weights=False)]


@pytest.mark.parametrize("cfg", CONFIGS)
def test_non_embedding_counts_agree(lesson, cfg):
    """The lesson's count, the package's and the check's formula (an independent oracle) agree."""
    torch.manual_seed(0)
    model = GPT(cfg)
    n = scaling.non_embedding_params(model)
    assert n == ch09._non_embedding(cfg)
    if cfg.tie_weights:
        assert lesson["non_embedding_inline"](model) == n
    embeddings = model.tok_emb.weight.numel() + model.pos_emb.weight.numel()
    head = 0 if cfg.tie_weights else model.head.weight.numel()
    assert n == model.num_params() - embeddings - head
    assert scaling.training_flops(n, 1000) == 6 * n * 1000


# --- masking and the masked model ---------------------------------------------------------------

def test_mask_tokens_follows_berts_recipe():
    V, mask_id = 40, 39
    ids = torch.randint(0, V - 1, (64, 256), generator=torch.Generator().manual_seed(0))
    inputs, targets = mask_tokens(ids, mask_id, V, 0.15, generator=torch.Generator().manual_seed(1))
    chosen = targets != IGNORE
    assert abs(chosen.float().mean().item() - 0.15) < 0.01
    assert torch.equal(targets[chosen], ids[chosen]) and torch.equal(inputs[~chosen], ids[~chosen])
    masked = (inputs == mask_id)[chosen].float().mean().item()
    kept = (inputs == ids)[chosen].float().mean().item()
    assert abs(masked - 0.8) < 0.03 and abs(kept - 0.1 - 0.1 / (V - 1)) < 0.03
    assert not (inputs[~chosen] == mask_id).any()


def test_whole_word_masking_chooses_whole_words():
    tok = CharTokenizer(TEXT)
    letters = letter_table(tok, tok.vocab_size + 1)
    ids = tok.encode(TEXT[:400]).view(4, 100)
    _, targets = mask_tokens(ids, tok.vocab_size, tok.vocab_size + 1, 0.3,
                             generator=torch.Generator().manual_seed(0), letters=letters)
    chosen = targets != IGNORE
    assert chosen.any() and letters[ids[chosen]].all()              # only letters
    for b in range(4):                                              # a word is chosen entirely or not at all
        text = tok.decode(ids[b].tolist())
        flags = chosen[b].tolist()
        for i in range(1, 100):
            if text[i].isalpha() and text[i - 1].isalpha():
                assert flags[i] == flags[i - 1], (b, i, text)


def test_the_masked_model_reads_both_sides_and_the_causal_one_does_not():
    torch.manual_seed(0)
    mlm = MaskedLM(MLMConfig.preset("mlm-pico", vocab_size=20)).eval()
    gpt = GPT(GPTConfig.preset("gpt-pico", vocab_size=20)).eval()
    idx = torch.randint(0, 19, (1, 10))
    later = idx.clone()
    later[0, 7] = (later[0, 7] + 1) % 19
    with torch.no_grad():
        assert not torch.allclose(mlm(idx)[0][0, 2], mlm(later)[0][0, 2])      # position 2 sees position 7
        torch.testing.assert_close(gpt(idx)[0][0, :7], gpt(later)[0][0, :7])   # the causal one cannot
        targets = torch.full_like(idx, IGNORE)
        targets[0, 3] = idx[0, 3]
        logits, loss = mlm(idx, targets)
        torch.testing.assert_close(loss, torch.nn.functional.cross_entropy(logits[0, 3:4], idx[0, 3:4]))
        blank = idx.clone()
        blank[0, 4] = 19
        filled = mlm.fill(blank)
    assert torch.equal(filled[0, [0, 1, 2, 3, 5]], idx[0, [0, 1, 2, 3, 5]]) and filled[0, 4] != 19


def test_masked_model_reuses_the_gpt_initialisation_and_optimiser_groups():
    torch.manual_seed(0)
    mlm = MaskedLM(MLMConfig.preset("mlm-pico", vocab_size=20))
    weights = [p for p in mlm.parameters() if p.dim() >= 2]
    assert all(abs(p.std().item() - 0.02) < 0.004 for p in weights)              # N(0, 0.02)
    assert all(torch.all(m.bias == 0) for m in mlm.modules() if isinstance(m, torch.nn.Linear)
               and m.bias is not None)
    assert mlm.num_params() == sum(p.numel() for p in mlm.parameters())          # the tied matrix once
    assert mlm.head.weight is mlm.tok_emb.weight
    groups = mlm.configure_optimizer(lr=1e-3).param_groups
    assert [g["weight_decay"] for g in groups] == [0.1, 0.0]
    assert {id(p) for p in groups[0]["params"]} == {id(p) for p in weights}


def test_train_mlm_has_the_contract_and_learns():
    params = inspect.signature(train_mlm).parameters
    assert list(params)[:3] == ["cfg", "data", "n_steps"]
    assert all(params[k].kind is inspect.Parameter.KEYWORD_ONLY for k in ("device", "seed", "progress"))
    data = LMData.from_text(TEXT)
    cfg = MLMConfig.preset("mlm-pico", vocab_size=data.tokenizer.vocab_size + 1, mask_rate=0.3)
    state = torch.get_rng_state()
    run = train_mlm(cfg, data, 120, seed=0, progress=False)
    assert torch.equal(state, torch.get_rng_state())
    assert run.history["val_loss"][-1] < run.history["val_loss"][0] - 0.5
    again = train_mlm(cfg, data, 5, seed=0, progress=False)
    assert again.history["loss"][0] == run.history["loss"][0]                   # seeded
    with pytest.raises(ValueError, match="mask token"):
        train_mlm(MLMConfig.preset("mlm-pico", vocab_size=data.tokenizer.vocab_size), data, 1, progress=False)


# --- scaling ------------------------------------------------------------------------------------

@pytest.mark.parametrize("law", [(5.0, 0.3, 0.8), (20.0, 0.5, 0.0), (2.0, 0.12, 1.3)])
def test_fit_power_law_recovers_exact_laws(law):
    a, alpha, c = law
    sizes = [1000, 3000, 9000, 27000, 81000]
    fit = scaling.fit_power_law(sizes, [a * n ** -alpha + c for n in sizes])
    assert fit(10**6) == pytest.approx(a * 1e6 ** -alpha + c, abs=2e-3)
    assert fit.c == pytest.approx(c, abs=0.02) and fit.alpha == pytest.approx(alpha, rel=0.1)
    ref = ch09._fit(sizes, [a * n ** -alpha + c for n in sizes])               # the check's reference
    assert ref[2] == pytest.approx(fit.c, abs=0.01)


def test_size_runs_interpolate_and_find_the_best_size():
    small = scaling.SizeRun(8, 1000, tokens=[100, 1000, 10000], val_loss=[3.0, 2.0, 1.5], seconds=1.0)
    large = scaling.SizeRun(32, 10000, tokens=[100, 1000, 10000], val_loss=[3.2, 1.8, 1.0], seconds=2.0)
    assert small.flops == [6e5, 6e6, 6e7] and small.flops_per_second == 6e7
    assert small.loss_at(6e6) == pytest.approx(2.0)
    assert small.loss_at(math.sqrt(6e5 * 6e6)) == pytest.approx(2.5)           # log-linear between evals
    assert math.isnan(small.loss_at(1e9)) and math.isnan(large.loss_at(1e5))
    best, losses = scaling.best_size([small, large], 6e5)
    assert best is small and math.isnan(losses[1])                             # the large one starts at 6e6
    best, losses = scaling.best_size([small, large], 6e7)
    assert best is small and losses == [1.5, pytest.approx(1.8)]               # the large one has read less
    best, _ = scaling.best_size([small, large], 6e8)
    assert best is large


def test_sweep_trains_one_run_per_width_and_counts_tokens():
    data = LMData.from_text(TEXT)
    state = torch.get_rng_state()
    runs = scaling.sweep([8, 16], data, 30, block_size=16, progress=False, n_evals=4, val_tokens=256)
    assert torch.equal(state, torch.get_rng_state())
    assert [r.width for r in runs] == [8, 16] and runs[0].n_params < runs[1].n_params
    for r in runs:
        assert r.tokens[-1] == 30 * 16 * 16 and len(r.tokens) == len(r.val_loss) >= 3
        assert r.val_loss[-1] < r.val_loss[0] and r.seconds > 0


def test_learning_rate_warms_up_then_holds_or_decays_to_a_tenth():
    lr = lambda step, schedule: scaling.learning_rate(step, 100, 1.0, 10, schedule)
    assert lr(5, "constant") == lr(5, "cosine") == pytest.approx(0.5)             # the same warmup
    assert lr(10, "cosine") == pytest.approx(1.0) and lr(100, "constant") == 1.0
    assert lr(55, "cosine") == pytest.approx(0.55)                                # half way: (1 + 0.1) / 2
    assert lr(100, "cosine") == pytest.approx(0.1)
    decay = [lr(s, "cosine") for s in range(10, 101)]
    assert all(a >= b for a, b in zip(decay, decay[1:]))
    with pytest.raises(ValueError, match="schedule"):
        scaling.learning_rate(1, 100, 1.0, 10, "linear")


def test_a_cosine_run_evaluated_once_is_seeded_and_ends_lower_than_it_starts():
    data = LMData.from_text(TEXT)
    cfg = scaling.scaling_config(16, data.tokenizer.vocab_size, block_size=16)
    kwargs = dict(progress=False, schedule="cosine", n_evals=1, val_tokens=256)
    run = scaling.train_size(cfg, data, 40, **kwargs)
    assert run.tokens == [40 * 16 * 16] and len(run.val_loss) == 1
    assert run.val_loss == scaling.train_size(cfg, data, 40, **kwargs).val_loss     # seeded
    assert run.val_loss[0] < scaling.train_size(cfg, data, 2, **kwargs).val_loss[0]
    with pytest.raises(ValueError, match="schedule"):
        scaling.train_size(cfg, data, 5, progress=False, schedule="step")
    with pytest.raises(ValueError, match="at least 1"):
        scaling.train_size(cfg, data, 5, progress=False, n_evals=0)


# --- the widget -------------------------------------------------------------------------------------

def _runs():
    out = []
    for w, n, floor in [(8, 1000, 1.6), (16, 4000, 1.3), (32, 16000, 1.1), (64, 64000, 1.0)]:
        tokens = [2 ** k * 1000 for k in range(10)]
        out.append(scaling.SizeRun(w, n, tokens=tokens, val_loss=[floor + 3 / (1 + t * n / 1e8) ** 0.5
                                                                  for t in tokens], seconds=1.0))
    return out


def test_scaling_explorer_draws_and_moves_the_best_size_with_the_budget():
    runs = _runs()
    w = ck.widgets.scaling_explorer(runs)
    assert w.error == "" and w.png.startswith(b"\x89PNG") and w.law is not None
    best, losses = scaling.best_size(runs, w.budget)
    assert w.best_width == best.width and w.losses == losses
    bests = []
    for log10 in (w.controls["log10_flops"].min + 0.3, w.controls["log10_flops"].max - 0.05):
        before = w.png
        w.set(log10_flops=log10)
        assert w.png != before and w.budget == pytest.approx(10 ** log10)
        bests.append(w.best_width)
    assert bests[0] < bests[1]                                                  # more compute, larger best size
    with pytest.raises(ValueError):
        ck.widgets.scaling_explorer(runs[:1])


# --- the checks and the notebooks ------------------------------------------------------------

EXERCISES = ["mask_for_mlm", "kaplan_flops", "fit_power_law"]


def _answer_cells(folder: str) -> dict:
    return exec_answer_cells(folder, "09", {"torch": torch, "math": math})


def test_the_released_exercises_fail_every_check_until_written():
    ns = _answer_cells("exercises")
    for name in EXERCISES:
        with pytest.raises(CheckFailure, match="not written yet"):
            getattr(ch09, f"check_{name}")(ns[name])
