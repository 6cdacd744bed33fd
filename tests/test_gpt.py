"""Tests of coursekit.models.gpt (and the benchmark's schedule and evaluation helpers).

Oracles: torch's own scaled_dot_product_attention and cross_entropy, the positional
encoding formula evaluated with math.sin / math.cos, and layer-0 attention recomputed
by hand from the model's weights.
"""
from __future__ import annotations

import importlib.util
import math
import sys
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F

from coursekit.models.gpt import (GPT, PRESETS, GPTConfig, causal_mask, scaled_dot_product_attention,
                                  sinusoidal_positions)

ROOT = Path(__file__).resolve().parents[1]


def tiny(**overrides) -> GPT:
    torch.manual_seed(0)
    config = GPTConfig(**{**dict(vocab_size=11, block_size=16, n_layer=2, n_head=4, n_embd=32), **overrides})
    return GPT(config).eval()


def ids(B=2, T=12, V=11, seed=1):
    return torch.randint(0, V, (B, T), generator=torch.Generator().manual_seed(seed))


# --- attention -----------------------------------------------------------------------

@pytest.mark.parametrize("shape", [(5, 8), (2, 7, 4), (2, 3, 9, 16)])
@pytest.mark.parametrize("causal", [True, False])
def test_attention_matches_torch(shape, causal):
    g = torch.Generator().manual_seed(0)
    q, k, v = (torch.randn(*shape, generator=g, dtype=torch.float64) for _ in range(3))
    y, att = scaled_dot_product_attention(q, k, v, causal=causal)
    expected = F.scaled_dot_product_attention(q, k, v, is_causal=causal)
    torch.testing.assert_close(y, expected, atol=1e-10, rtol=1e-10)
    torch.testing.assert_close(att.sum(-1), torch.ones(shape[:-1], dtype=torch.float64))
    if causal:
        T = shape[-2]
        assert (att[..., ~causal_mask(T)] == 0).all()


def test_causal_mask_is_lower_triangular():
    m = causal_mask(4)
    assert m.dtype == torch.bool and m.shape == (4, 4)
    assert m.tolist() == [[i >= j for j in range(4)] for i in range(4)]


# --- positional encoding -------------------------------------------------------------

@pytest.mark.parametrize("T,C", [(1, 2), (7, 6), (64, 32)])
def test_sinusoidal_positions_formula(T, C):
    pe = sinusoidal_positions(T, C)
    expected = torch.tensor([[math.sin(p / 10000 ** (c / C)) if c % 2 == 0 else
                              math.cos(p / 10000 ** ((c - 1) / C)) for c in range(C)]
                             for p in range(T)])
    assert pe.shape == (T, C)
    torch.testing.assert_close(pe, expected, atol=1e-5, rtol=0)


def test_sinusoidal_positions_odd_width_rejected():
    with pytest.raises(ValueError, match="even"):
        sinusoidal_positions(4, 5)


# --- the model -----------------------------------------------------------------------

@pytest.mark.parametrize("pos_emb", ["learned", "sinusoidal"])
@pytest.mark.parametrize("bias", [True, False])
def test_forward_shapes_and_loss(pos_emb, bias):
    model = tiny(pos_emb=pos_emb, bias=bias)
    x, y = ids(seed=1), ids(seed=2)
    logits, loss = model(x, y)
    assert logits.shape == (2, 12, 11)
    assert model(x)[1] is None
    torch.testing.assert_close(loss, F.cross_entropy(logits.reshape(-1, 11), y.reshape(-1)))
    # at initialisation the model is nearly uniform: loss close to ln(V)
    assert abs(loss.item() - math.log(11)) < 0.1


@pytest.mark.parametrize("fused", [True, False])
@pytest.mark.parametrize("pos_emb", ["learned", "sinusoidal"])
@pytest.mark.parametrize("t", [0, 5, 11])
def test_changing_a_future_token_never_changes_earlier_logits(fused, pos_emb, t):
    model = tiny(fused_attention=fused, pos_emb=pos_emb)
    x = ids(T=12)
    x2 = x.clone()
    x2[:, t] = (x2[:, t] + 3) % 11
    with torch.no_grad():
        a, _ = model(x)
        b, _ = model(x2)
    torch.testing.assert_close(a[:, :t], b[:, :t], atol=1e-6, rtol=0)
    assert (a[:, t:] - b[:, t:]).abs().amax(dim=(0, 2)).min() > 1e-6  # position t onward does see it


def test_fused_and_explicit_attention_agree():
    x = ids()
    a, _ = tiny(fused_attention=True)(x)
    b, _ = tiny(fused_attention=False)(x)
    torch.testing.assert_close(a, b, atol=1e-5, rtol=1e-5)


def test_too_long_input_is_rejected():
    with pytest.raises(ValueError, match="block_size"):
        tiny()(ids(T=17))


def test_weight_tying_and_parameter_count():
    tied, untied = tiny(), tiny(tie_weights=False)
    assert tied.head.weight is tied.tok_emb.weight
    assert untied.head.weight is not untied.tok_emb.weight
    assert untied.num_params() - tied.num_params() == 11 * 32
    assert tied.num_params() == sum(p.numel() for p in set(tied.parameters()))


@pytest.mark.parametrize("name", list(PRESETS))
def test_presets_build(name):
    config = GPTConfig.preset(name, vocab_size=7)
    assert config.vocab_size == 7 and config.n_embd % config.n_head == 0
    if name in ("gpt-pico", "gpt-nano"):
        logits, _ = GPT(config)(torch.zeros(1, 3, dtype=torch.long))
        assert logits.shape == (1, 3, 7)


@pytest.mark.parametrize("bad", [dict(n_embd=30, n_head=4), dict(pos_emb="rotary"), dict(vocab_size=0)])
def test_bad_configs_are_rejected(bad):
    with pytest.raises(ValueError):
        GPTConfig(**bad)
    with pytest.raises(KeyError, match="gpt-pico"):
        GPTConfig.preset("gpt-huge")


def test_attention_maps_match_a_hand_computation():
    model = tiny(bias=True)
    x = ids(B=2, T=9)
    maps = model.attention_maps(x)
    assert maps.shape == (2, 2, 4, 9, 9)                       # (L, B, H, T, T)
    torch.testing.assert_close(maps.sum(-1), torch.ones(2, 2, 4, 9))
    assert (maps[..., ~causal_mask(9)] == 0).all()
    # oracle for layer 0: embeddings -> ln1 -> q, k -> softmax(q k^T / sqrt(D)) with the mask
    with torch.no_grad():
        h = model.tok_emb(x) + model.pos_emb.weight[:9]
        h = model.blocks[0].ln1(h)
        W, b = model.blocks[0].attn.qkv.weight, model.blocks[0].attn.qkv.bias
        qkv = h @ W.T + b
        q, k = qkv[..., :32], qkv[..., 32:64]
        q = q.reshape(2, 9, 4, 8).permute(0, 2, 1, 3)
        k = k.reshape(2, 9, 4, 8).permute(0, 2, 1, 3)
        s = (q @ k.transpose(-1, -2) / math.sqrt(8)).masked_fill(~causal_mask(9), float("-inf"))
        torch.testing.assert_close(maps[0], s.softmax(-1), atol=1e-6, rtol=1e-5)
    assert model.training is False  # state is restored (it was eval)


def test_residual_projections_use_scaled_init():
    model = GPT(GPTConfig(vocab_size=50, n_layer=8, n_head=4, n_embd=256))
    std = model.blocks[0].attn.proj.weight.std().item()
    assert abs(std - 0.02 / math.sqrt(16)) < 0.001
    assert abs(model.blocks[0].attn.qkv.weight.std().item() - 0.02) < 0.002


# --- generation ----------------------------------------------------------------------

def test_generate_keeps_prompt_and_crops_context():
    model = tiny()
    prompt = ids(B=3, T=4)
    out = model.generate(prompt, 30, generator=torch.Generator().manual_seed(0))  # 34 > block_size 16
    assert out.shape == (3, 34) and out.dtype == torch.long
    assert torch.equal(out[:, :4], prompt)
    assert out.min() >= 0 and out.max() < 11


def test_greedy_generation_matches_step_by_step_argmax():
    model = tiny()
    prompt = ids(B=2, T=3)
    out = model.generate(prompt, 20, temperature=0)
    seq = prompt
    for _ in range(20):
        logits, _ = model(seq[:, -16:])
        seq = torch.cat([seq, logits[:, -1].argmax(-1, keepdim=True)], 1)
    assert torch.equal(out, seq)
    assert torch.equal(model.generate(prompt, 20, temperature=1.0, top_k=1), seq)


def test_top_k_only_samples_the_k_most_likely():
    model = tiny()
    prompt = ids(B=1, T=5).repeat(400, 1)
    out = model.generate(prompt, 1, top_k=3, generator=torch.Generator().manual_seed(0))[:, -1]
    allowed = set(torch.topk(model(prompt[:1])[0][0, -1], 3).indices.tolist())
    assert set(out.tolist()) == allowed   # all three appear in 400 draws, nothing else


def test_generation_is_reproducible_and_temperature_matters():
    model = tiny()
    prompt = ids(B=4, T=2)
    a = model.generate(prompt, 15, generator=torch.Generator().manual_seed(3))
    b = model.generate(prompt, 15, generator=torch.Generator().manual_seed(3))
    c = model.generate(prompt, 15, temperature=5.0, generator=torch.Generator().manual_seed(3))
    assert torch.equal(a, b) and not torch.equal(a, c)
    with pytest.raises(ValueError):
        model.generate(prompt, 1, temperature=-1)


def test_generate_restores_training_mode_and_needs_no_grad():
    model = tiny().train()
    out = model.generate(ids(B=1, T=2), 3)
    assert model.training and not out.requires_grad


# --- training ------------------------------------------------------------------------

def test_a_pico_model_learns_a_repeating_text():
    torch.manual_seed(0)
    data = torch.tensor([0, 1, 2, 3, 4, 5, 6, 7] * 40)
    model = GPT(GPTConfig.preset("gpt-pico", vocab_size=8, block_size=16))
    opt = model.configure_optimizer(lr=1e-2, weight_decay=0.0)
    g = torch.Generator().manual_seed(0)
    from coursekit.data import get_batch
    for _ in range(60):
        x, y = get_batch(data, 16, 8, generator=g)
        _, loss = model(x, y)
        opt.zero_grad()
        loss.backward()
        opt.step()
    assert loss.item() < 0.2, f"loss {loss.item():.3f} after 60 steps on a periodic sequence"
    out = model.generate(torch.tensor([[3]]), 8, temperature=0)
    assert out[0].tolist() == [3, 4, 5, 6, 7, 0, 1, 2, 3]


def test_optimizer_decays_only_matrices():
    model = tiny()
    opt = model.configure_optimizer(lr=1e-3, weight_decay=0.1)
    decayed, plain = opt.param_groups
    assert decayed["weight_decay"] == 0.1 and plain["weight_decay"] == 0.0
    assert all(p.dim() >= 2 for p in decayed["params"]) and all(p.dim() < 2 for p in plain["params"])
    assert len(decayed["params"]) + len(plain["params"]) == len(list(model.parameters()))


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
def test_runs_on_cuda():
    model = tiny().cuda()
    out = model.generate(ids(B=1, T=2).cuda(), 5, generator=torch.Generator(device="cuda").manual_seed(0))
    assert out.device.type == "cuda"


# --- the benchmark's helpers ---------------------------------------------------------

def _benchmark():
    spec = importlib.util.spec_from_file_location("gpt_shakespeare", ROOT / "benchmarks" / "gpt_shakespeare.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules.setdefault("gpt_shakespeare", module)  # dataclasses look their module up
    spec.loader.exec_module(module)
    return module


@pytest.mark.parametrize("decay", ["cosine", "linear"])
def test_benchmark_learning_rate_schedule(decay):
    bench = _benchmark()
    recipe = bench.Recipe(lr=2e-3, min_lr=1e-4, warmup_steps=10, decay=decay)
    assert bench.learning_rate(recipe, 0, 0.0) == pytest.approx(2e-4)      # warming up
    assert bench.learning_rate(recipe, 9, 0.0) == pytest.approx(2e-3)      # peak
    assert bench.learning_rate(recipe, 500, 1.0) == pytest.approx(1e-4)    # end of the budget
    middle = bench.learning_rate(recipe, 500, 0.5)
    assert middle == pytest.approx(1e-4 + 0.5 * (2e-3 - 1e-4))            # both shapes: half-way at 0.5
    assert bench.learning_rate(recipe, 500, 0.25) > bench.learning_rate(recipe, 500, 0.75)


@pytest.mark.parametrize("n", [50, 64, 97])
def test_benchmark_evaluate_covers_every_target(n):
    bench = _benchmark()
    model = tiny()
    data = ids(B=1, T=n, seed=5)[0]
    got = bench.evaluate(model, data, block_size=16, batch_windows=2)
    # oracle: every target data[i + 1] predicted from its own window, one window at a time
    total = 0.0
    for start in range(0, n - 1, 16):
        x = data[start:min(start + 16, n - 1)][None]
        y = data[start + 1:start + 1 + x.shape[1]][None]
        logits, _ = model(x)
        total += F.cross_entropy(logits[0], y[0], reduction="sum").item()
    assert got == pytest.approx(total / (n - 1), rel=1e-6)


def test_benchmark_parses_overrides():
    bench = _benchmark()
    assert bench.parse_overrides(["lr=3e-3", "bias=true", "batch_size=8", "decay=linear"]) == \
        {"lr": 3e-3, "bias": True, "batch_size": 8, "decay": "linear"}
    with pytest.raises(SystemExit):
        bench.parse_overrides(["learning_rate=1"])
