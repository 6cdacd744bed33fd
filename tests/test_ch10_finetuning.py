"""Chapter 10: the lesson's inline LoRA forward, merge and freezing give the same numbers as
coursekit.models.lora; LoRA's properties (B = 0 at the start, the alpha / r scale, only A
and B train, merging gives identical outputs); fine-tuning leaves the base run and the
frozen weights unchanged; the news domain fits the story model's alphabet; digit
transfer; the before/after widget; the released stubs fail (answer key: test_check_contract.py).
The checks' right and wrong answers live in tests/answers/ch10.py (test_check_contract.py)."""
from __future__ import annotations

import copy

import pytest
import torch
from nbtools import exec_answer_cells, exec_tagged_cells, notebook
from torch import nn

import coursekit as ck
from coursekit.checks import ch10
from coursekit.checks.assertions import CheckFailure
from coursekit.data import CharTokenizer, story_corpus
from coursekit.data.news import news_corpus
from coursekit.lm import LMData, LMRun
from coursekit.models import lora as L
from coursekit.models.gpt import GPT, GPTConfig
from coursekit.train import History

TEXT = news_corpus(40, seed=3) + story_corpus(40, seed=3)


@pytest.fixture(scope="module")
def tiny():
    tok = CharTokenizer(TEXT)
    torch.manual_seed(0)
    model = GPT(GPTConfig(vocab_size=tok.vocab_size, block_size=32, n_layer=2, n_head=2, n_embd=16)).eval()
    with torch.no_grad():                      # sharper distributions than at initialisation
        model.head.weight.mul_(20)
    return LMRun(model, History(), model.config, tokenizer=tok)


@pytest.fixture(scope="module")
def lesson():
    before = torch.get_num_threads()
    ns = exec_tagged_cells(notebook("notebooks", "10"))
    torch.set_num_threads(before)
    return ns


def _randomise_adapters(model, seed=0, scale=0.1):
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for m in model.modules():
            if isinstance(m, L.LoRALinear):
                m.B.copy_(scale * torch.randn(m.B.shape, generator=g))


# --- the lesson's inline code equals the package -------------------------------------------------

@pytest.mark.parametrize("r,alpha,bias", [(1, 1.0, True), (4, 8.0, True), (3, 12.0, False)])
def test_lesson_lora_forward_and_merge_match_the_package(lesson, r, alpha, bias):
    torch.manual_seed(r)
    layer = L.LoRALinear(nn.Linear(10, 7, bias=bias), r, alpha)
    with torch.no_grad():
        layer.B.normal_()
    x = torch.randn(3, 4, 10)
    ours = lesson["lora_forward"](x, layer.base.weight, layer.base.bias, layer.A, layer.B, alpha)
    torch.testing.assert_close(ours, layer(x))
    torch.testing.assert_close(lesson["merge_weight"](layer.base.weight, layer.A, layer.B, alpha),
                               layer.merged().weight)


def test_lesson_freezing_matches_the_package(lesson, tiny):
    ours = lesson["freeze_all_but_last_block"](copy.deepcopy(tiny.model))
    theirs = L.prepare(tiny.model, "last-block")
    assert ({n: p.requires_grad for n, p in ours.named_parameters()}
            == {n: p.requires_grad for n, p in theirs.named_parameters()})
    assert lesson["n_trainable"](ours) == L.count_parameters(theirs)["trainable"] > 0


# --- LoRA's properties ----------------------------------------------------------------------------

def test_lora_starts_as_the_base_model_and_trains_only_the_adapters(tiny):
    model = L.add_lora(copy.deepcopy(tiny.model), L.LoRAConfig(r=2, alpha=4.0))
    idx = tiny.tokenizer.encode(TEXT[:32])[None]
    with torch.no_grad():
        assert torch.equal(model(idx)[0], tiny.model(idx)[0])
    trainable = {n for n, p in model.named_parameters() if p.requires_grad}
    assert trainable and all(n.endswith((".A", ".B")) for n in trainable)
    expected = sum(2 * (m.in_features + m.out_features) for n, m in tiny.model.named_modules()
                   if isinstance(m, nn.Linear) and n.endswith(("qkv", "attn.proj", "fc", "mlp.proj")))
    assert L.count_parameters(model)["trainable"] == expected
    model(idx, idx)[1].backward()
    for n, p in model.named_parameters():
        assert (p.grad is not None) == (n in trainable), n


def test_lora_scale_is_alpha_over_r():
    torch.manual_seed(0)
    base = nn.Linear(6, 5)
    for r, alpha in ((1, 1.0), (2, 1.0), (4, 16.0)):
        layer = L.LoRALinear(copy.deepcopy(base), r, alpha)
        with torch.no_grad():
            layer.B.fill_(1.0)
        x = torch.randn(3, 6)
        torch.testing.assert_close(layer(x) - base(x), alpha / r * (x @ layer.A.T @ layer.B.T))
    with pytest.raises(ValueError):
        L.LoRALinear(nn.Linear(6, 5), 6, 1.0)                 # rank above min(in, out)
    with pytest.raises(TypeError):
        L.LoRALinear(nn.Conv1d(2, 2, 1), 1, 1.0)


def test_merging_gives_identical_outputs_and_plain_layers(tiny):
    model = L.add_lora(copy.deepcopy(tiny.model), L.LoRAConfig.preset("attn-mlp"))
    _randomise_adapters(model)
    merged = L.merge_lora(model)
    idx = tiny.tokenizer.encode(TEXT[:32])[None]
    with torch.no_grad():
        a, b = model(idx)[0], merged(idx)[0]
        assert not torch.allclose(a, tiny.model(idx)[0], atol=1e-3)    # the adapters do something
    torch.testing.assert_close(a, b, atol=1e-5, rtol=1e-5)
    assert not any(isinstance(m, L.LoRALinear) for m in merged.modules())
    assert any(isinstance(m, L.LoRALinear) for m in model.modules())  # the original is left as it was
    assert merged.num_params() == tiny.model.num_params()
    # generation from the merged model equals generation from the adapted one
    g = lambda m: m.generate(idx[:, :5], 20, generator=torch.Generator().manual_seed(1))
    assert torch.equal(g(model), g(merged))


def test_add_lora_targets_seed_and_rng(tiny):
    state = torch.random.get_rng_state()
    a = L.add_lora(copy.deepcopy(tiny.model), L.LoRAConfig.preset("qkv-r1"), seed=3)
    assert torch.equal(torch.random.get_rng_state(), state)
    b = L.add_lora(copy.deepcopy(tiny.model), L.LoRAConfig.preset("qkv-r1"), seed=3)
    assert torch.equal(a.blocks[0].attn.qkv.A, b.blocks[0].attn.qkv.A)
    assert isinstance(a.blocks[0].attn.qkv, L.LoRALinear) and isinstance(a.blocks[0].attn.proj, nn.Linear)
    with pytest.raises(ValueError, match="no nn.Linear"):
        L.add_lora(copy.deepcopy(tiny.model), L.LoRAConfig(targets=("nothing",)))


def test_the_story_models_lora_preset_trains_at_most_five_percent():
    cfg = GPTConfig.preset("story", vocab_size=48)
    model = L.add_lora(GPT(cfg), L.LoRAConfig.preset("attn-mlp"))
    counts = L.count_parameters(model)
    assert counts["trainable"] / counts["total"] <= 0.05


@pytest.mark.parametrize("method", L.METHODS)
def test_finetune_leaves_the_base_and_the_frozen_weights_as_they_were(tiny, method):
    data = LMData.from_text(news_corpus(20, seed=0), tiny.tokenizer)
    before = copy.deepcopy(tiny.model.state_dict())
    run = L.finetune(tiny, data, 4, method=method, context=16, progress=False)
    assert all(torch.equal(v, before[k]) for k, v in tiny.model.state_dict().items())
    assert run.config == tiny.config and run.model is not tiny.model
    tuned = run.model.state_dict()
    for name, p in run.model.named_parameters():
        key = name.replace(".base.", ".")
        if method in ("last-block", "lora") and not p.requires_grad:
            assert torch.equal(tuned[name], before[key]), name                  # frozen: unchanged
    if method in ("full", "last-block"):
        assert any(not torch.equal(tuned[k], before[k]) for k in before)      # something trained
    with pytest.raises(ValueError):
        L.finetune(tiny, data, 1, method="bitfit")


# --- the data --------------------------------------------------------------------------------------

def test_news_corpus_is_in_the_story_alphabet_and_deterministic():
    alphabet = set(story_corpus(3000, seed=0))
    text = news_corpus(300, seed=0)
    assert set(text) <= alphabet
    assert news_corpus(5, seed=2) == news_corpus(5, seed=2) != news_corpus(5, seed=3)
    assert text.count("\n\n") == 299 and "Forecast for" in text
    with pytest.raises(ValueError, match="not in the alphabet"):
        news_corpus(5, alphabet="abc")
    with pytest.raises(ValueError):
        news_corpus(0)


def test_digit_transfer_splits_and_accuracies():
    from coursekit.transfer import few_shot_accuracy, few_shot_split, train_source_body
    x, y, xv, yv = few_shot_split(3, seed=0)
    assert x.shape == (15, 1, 8, 8) and torch.bincount(y).tolist() == [3, 3, 3, 3, 3]
    assert len(xv) > 100 and set(yv.tolist()) == {0, 1, 2, 3, 4}
    body = train_source_body(seed=0, steps=30)
    assert not any(p.requires_grad for p in body.parameters())
    frozen = copy.deepcopy(body.state_dict())
    acc = few_shot_accuracy(body, 3, seed=0, steps=20)
    assert set(acc) == {"transfer", "scratch", "random body"} and all(0 <= v <= 1 for v in acc.values())
    assert all(torch.equal(v, frozen[k]) for k, v in body.state_dict().items())   # the body stays frozen


# --- the widget ------------------------------------------------------------------------------------

def test_widget_shows_base_and_tuned_continuations(tiny):
    tuned = L.add_lora(copy.deepcopy(tiny.model), L.LoRAConfig(r=2, alpha=4.0))
    _randomise_adapters(tuned, seed=2, scale=3.0)
    w = ck.widgets.finetune_samples(tiny, {"lora": tuned, "same": copy.deepcopy(tiny.model)},
                                    prompts=["REPORT FROM", "Anna was"], n_new=30)
    assert w.error == "" and w.n_draws == 1 and w.png.startswith(b"\x89PNG")
    assert (w.method, w.prompt) == ("lora", "REPORT FROM")
    expected = tiny.sample("REPORT FROM", 30, temperature=0.8,
                           generator=torch.Generator().manual_seed(0))[len("REPORT FROM"):]
    assert w.base_text == expected and len(w.tuned_text) == 30 and w.tuned_text != w.base_text
    png = w.png
    w.set(method="same", prompt="Anna was", seed=3)
    assert w.n_draws == 2 and w.png != png and w.tuned_text == w.base_text    # same weights, same draws
    w.set(temperature=0.0)
    assert w.base_text == tiny.sample("Anna was", 30, temperature=0)[len("Anna was"):]


def test_widget_refuses_bad_input(tiny):
    with pytest.raises(ValueError):
        ck.widgets.finetune_samples(tiny, {}, prompts=["a"])
    with pytest.raises(ValueError):
        ck.widgets.finetune_samples(tiny, {"x": tiny}, prompts=[])
    with pytest.raises(ValueError):
        ck.widgets.finetune_samples(tiny.model, {"x": tiny}, prompts=["a"])      # no tokenizer


# --- the checks and the notebooks ------------------------------------------------------------

EXERCISES = {"lora_linear": "LoRALinear", "merge_lora_layer": "merge_lora_layer",
             "freeze_all_but": "freeze_all_but"}


def _answer_cells(folder: str) -> dict:
    return exec_answer_cells(folder, "10", {"torch": torch, "nn": nn, "math": __import__("math")})


def test_the_released_exercises_fail_every_check_until_written():
    ns = _answer_cells("exercises")
    for name, obj in EXERCISES.items():
        with pytest.raises(CheckFailure, match="not written yet"):
            getattr(ch10, f"check_{name}")(ns[obj])
