"""Checks for chapter 06, decoder-only Transformers (``exercises/06_transformers.ipynb``).

    ck.checks.ch06.check_attention(attention)
    ck.checks.ch06.check_causal_attention(causal_attention)
    ck.checks.ch06.check_split_heads(split_heads, merge_heads)
    ck.checks.ch06.check_positional_encoding(positional_encoding)
    ck.checks.ch06.check_block(Block)

Every reference is computed here, from ``coursekit.models.gpt``'s functions or written
out directly, on fixed and random inputs.
"""
from __future__ import annotations

import math

import torch
from einops import rearrange

from coursekit.checks.assertions import (as_tensor, call, expect_close, fail, passed,
                                         require_callable)
from coursekit.models.gpt import sinusoidal_positions


# --- references ----------------------------------------------------------------------

def _attention_ref(q, k, v, causal=False):
    scores = q @ k.transpose(-2, -1) / math.sqrt(q.shape[-1])
    if causal:
        T = q.shape[-2]
        mask = torch.tril(torch.ones(T, T, dtype=torch.bool))
        scores = scores.masked_fill(~mask, float("-inf"))
    return torch.softmax(scores, dim=-1) @ v


def _qkv(shape, seed):
    g = torch.Generator().manual_seed(seed)
    return tuple(torch.randn(*shape, generator=g) for _ in range(3))


def _diagnose_attention(q, k, v, got, causal):
    """Name the usual mistake whose output matches what the learner returned."""
    d = q.shape[-1]
    T = q.shape[-2]
    mask = torch.tril(torch.ones(T, T, dtype=torch.bool))
    raw = q @ k.transpose(-2, -1)

    def masked(s):
        return s.masked_fill(~mask, float("-inf")) if causal else s

    candidates = {
        "the scores were not divided by sqrt(d_k) (d_k = the last axis of q)":
            torch.softmax(masked(raw), -1) @ v,
        "the scores were divided by d_k instead of sqrt(d_k)":
            torch.softmax(masked(raw / d), -1) @ v,
        "the softmax was taken over the queries (dim=-2) instead of the keys (dim=-1)":
            torch.softmax(masked(raw / math.sqrt(d)), -2) @ v,
        "no softmax was applied to the scores":
            (raw / math.sqrt(d)).masked_fill(~mask, 0.0) @ v if causal else (raw / math.sqrt(d)) @ v,
    }
    if causal:
        candidates.update({
            "the mask hides the past instead of the future: keep j <= i, i.e. torch.tril":
                torch.softmax((raw / math.sqrt(d)).masked_fill(mask.T.logical_not(), float("-inf")), -1) @ v,
            "the masked scores were set to 0 instead of -inf, so the future still gets weight":
                torch.softmax((raw / math.sqrt(d)).masked_fill(~mask, 0.0), -1) @ v,
            "the diagonal is masked too: a token may attend to itself (j == i)":
                None,  # handled below (first row would be all -inf -> NaN)
            "there is no causal mask at all":
                torch.softmax(raw / math.sqrt(d), -1) @ v,
        })
    for hint, wrong in candidates.items():
        if wrong is not None and got.shape == wrong.shape and torch.allclose(got, wrong, atol=1e-4):
            return hint
    if causal and torch.isnan(got).any():
        return ("the result has NaNs: a row with every score -inf (e.g. masking the diagonal) "
                "makes softmax divide 0 by 0; keep j <= i")
    return "compare your steps with softmax(q @ k^T / sqrt(d_k)) @ v, printing shapes on the way"


def _check_attention_fn(name, fn, causal):
    require_callable(name, fn, "your attention function", n_args=3)
    cases = [((4, 8), 0), ((2, 5, 16), 1), ((2, 3, 6, 4), 2), ((1, 1, 3), 3)]
    for shape, seed in cases:
        q, k, v = _qkv(shape, seed)
        v = v[..., : max(1, shape[-1] // 2)] if len(shape) == 3 else v  # values may be narrower
        q_in, k_in, v_in = q.clone(), k.clone(), v.clone()
        got = call(name, fn, q_in, k_in, v_in, what=f"{fn.__name__}(q, k, v)")
        expected = _attention_ref(q, k, v, causal=causal)
        case = f"{fn.__name__}(q, k, v) with q, k of shape {tuple(q.shape)} and v of shape {tuple(v.shape)}"
        if isinstance(got, (tuple, list)):
            fail(name, case, "one tensor: the attention output", f"a {type(got).__name__} of {len(got)} items",
                 "return only the output; the lesson's version also returned the weights, "
                 "the exercise does not")
        got = as_tensor(name, got, "the result", shape=tuple(expected.shape), dtype_float=True)
        if not (torch.equal(q_in, q) and torch.equal(k_in, k) and torch.equal(v_in, v)):
            fail(name, case, "q, k and v unchanged", "your function changed its inputs in place",
                 "use out-of-place operations (scores = ..., not q /= ...)")
        got = got.detach().to(torch.float64)
        if not torch.allclose(got, expected.double(), atol=1e-5, rtol=1e-4):
            worst = (got - expected.double()).abs().max().item()
            fail(name, case + f" (largest difference {worst:.3g}, tolerance 1e-05)", expected,
                 got, _diagnose_attention(q.double(), k.double(), v.double(), got, causal))


# --- checks --------------------------------------------------------------------------

def check_attention(attention) -> None:
    """``attention(q, k, v)`` = softmax(q k^T / sqrt(d_k)) v over the last two axes, no mask."""
    _check_attention_fn("check_attention", attention, causal=False)
    passed("check_attention", "matches softmax(QK^T/sqrt(d_k))V on 4 shapes, up to 4-D")


def check_causal_attention(causal_attention) -> None:
    """``causal_attention(q, k, v)``: like ``attention`` but position i sees only j <= i."""
    _check_attention_fn("check_causal_attention", causal_attention, causal=True)
    # causality, measured: changing the last query/key/value never changes earlier outputs
    q, k, v = _qkv((2, 7, 8), 10)
    base = call("check_causal_attention", causal_attention, q, k, v, what="causal_attention(q, k, v)")
    q2, k2, v2 = q.clone(), k.clone(), v.clone()
    for t in (q2, k2, v2):
        t[:, -1] += 5.0
    moved = call("check_causal_attention", causal_attention, q2, k2, v2, what="causal_attention(q, k, v)")
    if not torch.allclose(base[:, :-1], moved[:, :-1], atol=1e-6):
        fail("check_causal_attention", "changing only the last position of q, k and v",
             "outputs at positions 0..T-2 unchanged", "earlier outputs changed",
             "the future is leaking in: mask the scores where key j > query i")
    passed("check_causal_attention", "matches the reference, and the future never leaks into the past")


def check_split_heads(split_heads, merge_heads) -> None:
    """``split_heads(x, n_head)``: (B, T, C) -> (B, H, T, C/H); ``merge_heads`` undoes it."""
    name = "check_split_heads"
    require_callable(name, split_heads, "split_heads", n_args=2)
    require_callable(name, merge_heads, "merge_heads", n_args=1)
    for (B, T, C, H), seed in [((2, 5, 12, 3), 0), ((1, 4, 8, 2), 1), ((3, 2, 16, 4), 2), ((2, 3, 6, 1), 3)]:
        x = torch.randn(B, T, C, generator=torch.Generator().manual_seed(seed))
        case = f"split_heads(x, n_head={H}) with x of shape {(B, T, C)}"
        got = call(name, split_heads, x.clone(), H, what="split_heads(x, n_head)")
        expected = rearrange(x, "b t (h d) -> b h t d", h=H)
        got = as_tensor(name, got, f"split_heads's result for x of shape {(B, T, C)}",
                        shape=(B, H, T, C // H))
        if not torch.equal(got, expected):
            hint = "head h must hold channels h*D .. h*D + D - 1 of every token"
            if torch.equal(got, x.reshape(B, H, T, C // H)):
                hint = ("x.view(B, H, T, D) has the right shape but mixes tokens into heads: "
                        "split the channel axis first, (B, T, H, D), then swap T and H, "
                        "or use rearrange(x, 'b t (h d) -> b h t d', h=n_head)")
            expect_close(name, case, got, expected, atol=0, rtol=0, hint=hint)
        back = call(name, merge_heads, expected.clone(), what="merge_heads(y)")
        back = as_tensor(name, back, "merge_heads's result", shape=(B, T, C))
        if not torch.equal(back, x):
            hint = "merge_heads must put the heads side by side again: 'b h t d -> b t (h d)'"
            if torch.equal(back, expected.reshape(B, T, C)):
                hint = ("reshape without moving the head axis back next to D mixes tokens; "
                        "transpose(1, 2) first, or use rearrange(y, 'b h t d -> b t (h d)')")
            expect_close(name, f"merge_heads(split_heads(x)) for x of shape {(B, T, C)}", back, x,
                         atol=0, rtol=0, hint=hint)
    passed(name, "4 shapes split into heads and merged back exactly")


def check_positional_encoding(positional_encoding) -> None:
    """``positional_encoding(T, C)``: (T, C) with PE[p, 2i] = sin(p / 10000^(2i/C)), PE[p, 2i+1] = cos(...)."""
    name = "check_positional_encoding"
    require_callable(name, positional_encoding, "positional_encoding", n_args=2)
    for T, C in [(4, 6), (16, 8), (50, 32), (1, 2)]:
        got = call(name, positional_encoding, T, C, what=f"positional_encoding({T}, {C})")
        expected = sinusoidal_positions(T, C)
        got = as_tensor(name, got, f"positional_encoding({T}, {C})", shape=(T, C), dtype_float=True)
        if torch.allclose(got.double(), expected.double(), atol=1e-5):
            continue
        pos = torch.arange(T, dtype=torch.float64)[:, None]
        two_i = torch.arange(0, C, 2, dtype=torch.float64)
        wrongs = {
            "sin and cos are swapped: even channels 2i hold sin, odd channels 2i+1 hold cos":
                torch.stack([(pos / 10000 ** (two_i / C)).cos(), (pos / 10000 ** (two_i / C)).sin()], -1).reshape(T, C),
            "the exponent should be 2i / C where 2i is the even channel index (0, 2, 4, ...), not i / C":
                torch.stack([(pos / 10000 ** (two_i / 2 / C)).sin(), (pos / 10000 ** (two_i / 2 / C)).cos()], -1).reshape(T, C),
            "sin and cos should be interleaved (sin, cos, sin, cos, ...), not the C/2 sines then the C/2 cosines":
                torch.cat([(pos / 10000 ** (two_i / C)).sin(), (pos / 10000 ** (two_i / C)).cos()], -1),
            "positions are multiplied by 10000^(2i/C) instead of divided by it":
                torch.stack([(pos * 10000 ** (two_i / C)).sin(), (pos * 10000 ** (two_i / C)).cos()], -1).reshape(T, C),
        }
        hint = "PE[p, 2i] = sin(p / 10000^(2i / C)) and PE[p, 2i + 1] = cos(p / 10000^(2i / C))"
        for text, wrong in wrongs.items():
            if torch.allclose(got.double(), wrong, atol=1e-3):
                hint = text
                break
        expect_close(name, f"positional_encoding({T}, {C})", got, expected, atol=1e-5, hint=hint)
    passed(name, "matches Vaswani et al.'s sinusoids for 4 sizes")


def check_block(Block) -> None:
    """``Block(n_embd, n_head)``: an nn.Module mapping (B, T, C) -> (B, T, C), causal,
    with attention mixing positions and trainable parameters that all get gradients."""
    name = "check_block"
    require_callable(name, Block, "Block (the class itself)")
    torch.manual_seed(0)
    block = call(name, Block, 32, 4, what="Block(n_embd=32, n_head=4)")
    if not isinstance(block, torch.nn.Module):
        fail(name, "Block(32, 4) should build a torch.nn.Module", "an nn.Module",
             type(block).__name__, "write class Block(nn.Module) and call super().__init__()")
    block.eval()
    x = torch.randn(2, 9, 32, generator=torch.Generator().manual_seed(1))
    y = call(name, block, x.clone(), what="block(x)")
    y = as_tensor(name, y, "block(x) for x of shape (2, 9, 32)", shape=(2, 9, 32), dtype_float=True)
    if torch.isnan(y).any():
        fail(name, "block(x) for random x", "finite values", "NaN values",
             "a row of the mask with every score -inf gives NaN: keep the diagonal (j <= i)")
    # 1. causality: changing the last token never changes earlier outputs
    x2 = x.clone()
    x2[:, -1] = torch.randn(2, 32, generator=torch.Generator().manual_seed(2))
    y2 = call(name, block, x2, what="block(x)")
    if not torch.allclose(y[:, :-1], y2[:, :-1], atol=1e-5):
        fail(name, "changing only the last token of x", "outputs at earlier positions unchanged",
             f"they changed by up to {(y[:, :-1] - y2[:, :-1]).abs().max().item():.3g}",
             "use causal attention inside the block")
    # 2. tokens talk to each other: changing the first token changes later outputs
    x3 = x.clone()
    x3[:, 0] = torch.randn(2, 32, generator=torch.Generator().manual_seed(3))
    y3 = call(name, block, x3, what="block(x)")
    if torch.allclose(y[:, 1:], y3[:, 1:], atol=1e-7):
        fail(name, "changing only the first token of x", "later outputs to change (attention reads the past)",
             "later outputs did not change", "apply attention across positions, not only the MLP")
    # 3. residual connections: the block adds to x, so a zeroed block returns x itself
    with torch.no_grad():
        for p in block.parameters():
            p.zero_()
    y0 = call(name, block, x.clone(), what="block(x) with every weight set to 0")
    if not torch.allclose(torch.as_tensor(y0), x, atol=1e-5):
        fail(name, "block(x) with every parameter set to zero", "x unchanged (x + attn(...) + mlp(...))",
             f"outputs that differ from x by up to {(torch.as_tensor(y0) - x).abs().max().item():.3g}",
             "use residual connections with pre-LayerNorm: x = x + self.attn(self.ln1(x)), "
             "then x = x + self.mlp(self.ln2(x))")
    # 4. trainable: every parameter gets a gradient
    torch.manual_seed(0)
    block = Block(32, 4)
    n_params = sum(p.numel() for p in block.parameters())
    if n_params == 0:
        fail(name, "counting the block's parameters", "some trainable parameters", "none",
             "create the layers in __init__ as attributes (self.attn = ...)")
    block(x).pow(2).mean().backward()
    missing = [n for n, p in block.named_parameters() if p.grad is None or not p.grad.abs().sum() > 0]
    if missing:
        fail(name, "backpropagating through block(x)", "a gradient for every parameter",
             f"no gradient for {missing[:5]}", "every layer you create should be used in forward")
    passed(name, f"shape kept, causal, mixes positions, residual, {n_params:,} parameters all trained")
