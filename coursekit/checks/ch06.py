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

from torch import nn
from torch.nn import functional as F

from coursekit.checks.assertions import (as_tensor, call, expect_close, fail, guarded, passed,
                                         require_callable, scan_answer)
from coursekit.checks.forbidden import ban
from coursekit.models.gpt import sinusoidal_positions


# --- what an answer may not use ------------------------------------------------------

_SDPA = ban("torch.nn.functional.scaled_dot_product_attention",
            ops=["aten::scaled_dot_product_attention", "aten::_scaled_dot_product_flash_attention_for_cpu",
                 "aten::_scaled_dot_product_attention_math", "aten::_scaled_dot_product_flash_attention",
                 "aten::_scaled_dot_product_efficient_attention"],
            reason="the exercise asks you to write attention from its formula; torch's fused "
                   "kernel would do the whole job")
_MHA = ban("torch.nn.MultiheadAttention", "torch.nn.functional.multi_head_attention_forward",
           ops=["aten::_native_multi_head_attention"],
           reason="nn.MultiheadAttention is the layer this chapter builds by hand")
_GPT_ATTENTION = ban("coursekit.models.gpt.scaled_dot_product_attention",
                     "coursekit.models.gpt.CausalSelfAttention",
                     reason="coursekit's own attention is the lesson's answer; write yours")
_GPT_MASK = ban("coursekit.models.gpt.causal_mask",
                reason="building the causal mask is part of the exercise")
_GPT_POSITIONS = ban("coursekit.models.gpt.sinusoidal_positions", "coursekit.models.gpt.GPT",
                     reason="coursekit's sinusoidal_positions (and the GPT that stores its table) "
                            "is the function this exercise asks you to write")
_GPT_BLOCK = ban("coursekit.models.gpt.Block", "coursekit.models.gpt.FeedForward", "coursekit.models.gpt.GPT",
                 reason="coursekit's GPT block is the answer to this exercise; build yours from layers")
_TORCH_LAYERS = ban("torch.nn.TransformerEncoderLayer", "torch.nn.TransformerDecoderLayer",
                    "torch.nn.Transformer",
                    reason="torch's Transformer layers are whole blocks; the exercise builds one")

BANS = {
    "check_attention": [_SDPA, _MHA, _GPT_ATTENTION],
    "check_causal_attention": [_SDPA, _MHA, _GPT_ATTENTION, _GPT_MASK],
    # splitting heads re-implements no library function: einops, or reshape then transpose,
    # is the exercise itself
    "check_split_heads": [],
    "check_positional_encoding": [_GPT_POSITIONS],
    "check_block": [_SDPA, _MHA, _GPT_ATTENTION, _GPT_BLOCK, _TORCH_LAYERS],
}


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
    return ("compare your steps with the formula softmax(q k^T / sqrt(d_k)) v, printing the "
            "shapes on the way")


def _check_attention_fn(name, fn, causal, seed):
    require_callable(name, fn, "your attention function", n_args=3)
    g = torch.Generator().manual_seed(seed)
    rand_shape = (int(torch.randint(1, 4, (), generator=g)), int(torch.randint(2, 9, (), generator=g)),
                  int(torch.randint(2, 12, (), generator=g)))
    cases = [((4, 8), 0), ((2, 5, 16), 1), ((2, 3, 6, 4), 2), ((1, 1, 3), 3), (rand_shape, seed + 100)]
    for shape, case_seed in cases:
        q, k, v = _qkv(shape, case_seed)
        if len(shape) == 3:
            v = v[..., : max(1, shape[-1] // 2)]          # values may be narrower than q and k
        if case_seed == 2:
            q = 3 * q                                     # large scores: the scale matters
        q_in, k_in, v_in = q.clone(), k.clone(), v.clone()
        got = call(name, fn, q_in, k_in, v_in, what=f"{fn.__name__}(q, k, v)", bans=BANS[name])
        expected = _attention_ref(q, k, v, causal=causal)
        case = f"{fn.__name__}(q, k, v) with q, k of shape {tuple(q.shape)} and v of shape {tuple(v.shape)}"
        if isinstance(got, (tuple, list)):
            fail(name, case, "one tensor: the attention output", f"a {type(got).__name__} of {len(got)} items",
                 "return only the output; the lesson's version also returned the weights, "
                 "the exercise does not")
        got = as_tensor(name, got, "the result", shape=tuple(expected.shape), dtype_float=True)
        if not (torch.equal(q_in, q) and torch.equal(k_in, k) and torch.equal(v_in, v)):
            fail(name, case, "q, k and v unchanged", "your function changed its inputs in place",
                 "use out-of-place operations (a new tensor for the scores, not an in-place division)")
        got = got.detach().to(torch.float64)
        if not torch.allclose(got, expected.double(), atol=1e-5, rtol=1e-4):
            worst = (got - expected.double()).abs().max().item()
            fail(name, case + f" (largest difference {worst:.3g}, tolerance 1e-05)", expected,
                 got, _diagnose_attention(q.double(), k.double(), v.double(), got, causal))


# --- checks --------------------------------------------------------------------------

def check_attention(attention, seed: int = 0) -> None:
    """``attention(q, k, v)`` = softmax(q k^T / sqrt(d_k)) v over the last two axes, no mask."""
    _check_attention_fn("check_attention", attention, causal=False, seed=seed)
    passed("check_attention", "matches softmax(QK^T/sqrt(d_k))V on 5 shapes, up to 4-D")


def check_causal_attention(causal_attention, seed: int = 0) -> None:
    """``causal_attention(q, k, v)``: like ``attention`` but position i sees only j <= i."""
    name = "check_causal_attention"
    _check_attention_fn(name, causal_attention, causal=True, seed=seed)
    # causality, measured: changing the last query/key/value never changes earlier outputs
    q, k, v = _qkv((2, 7, 8), 10 + seed)
    base = call(name, causal_attention, q, k, v, what="causal_attention(q, k, v)", bans=BANS[name])
    q2, k2, v2 = q.clone(), k.clone(), v.clone()
    for t in (q2, k2, v2):
        t[:, -1] += 5.0
    moved = call(name, causal_attention, q2, k2, v2, what="causal_attention(q, k, v)", bans=BANS[name])
    if not torch.allclose(base[:, :-1], moved[:, :-1], atol=1e-6):
        fail(name, "changing only the last position of q, k and v",
             "outputs at positions 0..T-2 unchanged", "earlier outputs changed",
             "the future is leaking in: mask the scores where key j > query i")
    passed(name, "matches the reference, and the future never leaks into the past")


def check_split_heads(split_heads, merge_heads, seed: int = 0) -> None:
    """``split_heads(x, n_head)``: (B, T, C) -> (B, H, T, C/H); ``merge_heads`` undoes it."""
    name = "check_split_heads"
    require_callable(name, split_heads, "split_heads", n_args=2)
    require_callable(name, merge_heads, "merge_heads", n_args=1)
    g = torch.Generator().manual_seed(seed)
    H_r, D_r = int(torch.randint(2, 6, (), generator=g)), int(torch.randint(1, 5, (), generator=g))
    shapes = [(2, 5, 12, 3), (1, 4, 8, 2), (3, 2, 16, 4), (2, 3, 6, 1), (2, 3, 12, 6),
              (int(torch.randint(1, 4, (), generator=g)), int(torch.randint(2, 7, (), generator=g)),
               H_r * D_r, H_r)]
    for i, (B, T, C, H) in enumerate(shapes):
        x = torch.randn(B, T, C, generator=torch.Generator().manual_seed(seed * 31 + i))
        case = f"split_heads(x, n_head={H}) with x of shape {(B, T, C)}"
        got = call(name, split_heads, x.clone(), H, what="split_heads(x, n_head)", bans=BANS[name])
        expected = rearrange(x, "b t (h d) -> b h t d", h=H)
        got = as_tensor(name, got, f"split_heads's result for x of shape {(B, T, C)}",
                        shape=(B, H, T, C // H))
        if not torch.equal(got, expected):
            hint = "head h must hold channels h*D .. h*D + D - 1 of every token"
            if torch.equal(got, x.reshape(B, H, T, C // H)):
                hint = ("one reshape to (B, H, T, D) has the right shape but mixes tokens into heads: "
                        "split the channel axis into (H, D) first, then move the head axis in "
                        "front of the time axis")
            expect_close(name, case, got, expected, atol=0, rtol=0, hint=hint)
        back = call(name, merge_heads, expected.clone(), what="merge_heads(y)", bans=BANS[name])
        back = as_tensor(name, back, "merge_heads's result", shape=(B, T, C))
        if not torch.equal(back, x):
            hint = ("merge_heads must put the heads side by side again, head 0's D channels "
                    "first, for every token")
            if torch.equal(back, expected.reshape(B, T, C)):
                hint = ("a reshape without moving the head axis back next to D mixes tokens; "
                        "bring the time axis in front of the head axis first")
            expect_close(name, f"merge_heads(split_heads(x)) for x of shape {(B, T, C)}", back, x,
                         atol=0, rtol=0, hint=hint)
    passed(name, f"{len(shapes)} shapes split into heads and merged back exactly")


def check_positional_encoding(positional_encoding, seed: int = 0) -> None:
    """``positional_encoding(T, C)``: (T, C) with PE[p, 2i] = sin(p / 10000^(2i/C)), PE[p, 2i+1] = cos(...)."""
    name = "check_positional_encoding"
    require_callable(name, positional_encoding, "positional_encoding", n_args=2)
    g = torch.Generator().manual_seed(seed)
    sizes = [(4, 6), (16, 8), (50, 32), (1, 2), (7, 64),
             (int(torch.randint(2, 80, (), generator=g)), 2 * int(torch.randint(1, 40, (), generator=g)))]
    for T, C in sizes:
        got = call(name, positional_encoding, T, C, what=f"positional_encoding({T}, {C})", bans=BANS[name])
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
    passed(name, f"matches Vaswani et al.'s sinusoids for {len(sizes)} sizes")


# --- the block: its parts, found by type and shape, and a reference forward built from them

def _block_parts(name, block, C):
    """The layers the exercise names, found in the learner's block by type and shape."""
    lns = [m for m in block.modules() if isinstance(m, nn.LayerNorm)]
    lins = [m for m in block.modules() if isinstance(m, nn.Linear)]

    def one(i, o, role):
        found = [m for m in lins if m.in_features == i and m.out_features == o]
        if len(found) != 1:
            fail(name, f"looking for {role} in Block({C}, n_head)",
                 f"exactly one nn.Linear({i}, {o})", f"{len(found)} of them",
                 f"the exercise's block has one nn.Linear(C, 3C) for the queries, keys and values, "
                 f"one nn.Linear(C, C) output projection W_O, and an MLP nn.Linear(C, 4C), "
                 f"GELU, nn.Linear(4C, C): build {role} as it says")
        return found[0]

    if len(lns) != 2 or any(tuple(m.normalized_shape) != (C,) for m in lns):
        fail(name, f"looking for the LayerNorms of Block({C}, n_head)",
             f"two nn.LayerNorm({C}): one before attention, one before the MLP",
             f"{len(lns)} LayerNorm(s)" + (f" of shapes {[tuple(m.normalized_shape) for m in lns]}" if lns else ""),
             "pre-LayerNorm normalises the input of each sub-layer with its own LayerNorm")
    return dict(ln1=lns[0], ln2=lns[1], qkv=one(C, 3 * C, "the q, k, v layer"),
                proj=one(C, C, "the output projection"), fc=one(C, 4 * C, "the MLP's first layer"),
                out=one(4 * C, C, "the MLP's second layer"))


def _ln(m, x):
    return F.layer_norm(x, m.normalized_shape, m.weight, m.bias, m.eps)


def _block_ref(x, p, H, *, ln_order=(0, 1), heads=True, scale="d", proj=True, ln=True, pre=True,
               residual=(True, True), causal=True, act="gelu", qkv_order="qkv", split="hd",
               use_attn=True):
    """The pre-LN block of the exercise from the learner's own layers, or a named variant."""
    B, T, C = x.shape
    ln1, ln2 = (p["ln1"], p["ln2"]) if ln_order == (0, 1) else (p["ln2"], p["ln1"])
    norm1 = (lambda z: _ln(ln1, z)) if ln else (lambda z: z)
    norm2 = (lambda z: _ln(ln2, z)) if ln else (lambda z: z)
    h = H if heads else 1

    def attn(z):
        q, k, v = F.linear(z, p["qkv"].weight, p["qkv"].bias).chunk(3, -1)
        if qkv_order == "kqv":
            q, k = k, q
        pattern = "b t (h d) -> b h t d" if split == "hd" else "b t (d h) -> b h t d"
        q, k, v = (rearrange(t, pattern, h=h) for t in (q, k, v))
        D = q.shape[-1]
        s = q @ k.transpose(-2, -1)
        s = s / {"d": math.sqrt(D), "C": math.sqrt(C), "none": 1.0}[scale]
        if causal:
            s = s.masked_fill(~torch.tril(torch.ones(T, T, dtype=torch.bool)), float("-inf"))
        y = rearrange(s.softmax(-1) @ v, "b h t d -> b t (h d)")
        return F.linear(y, p["proj"].weight, p["proj"].bias) if proj else y

    acts = {"gelu": F.gelu, "tanh": lambda z: F.gelu(z, approximate="tanh"), "relu": F.relu}

    def mlp(z):
        return F.linear(acts[act](F.linear(z, p["fc"].weight, p["fc"].bias)), p["out"].weight, p["out"].bias)

    if not pre:
        x = _ln(ln1, x + attn(x))
        return _ln(ln2, x + mlp(x))
    a = attn(norm1(x)) if use_attn else 0
    x = x + a if residual[0] else a
    m = mlp(norm2(x))
    return x + m if residual[1] else m


_BLOCK_MISTAKES = {
    "one head: the attention ignores n_head (split q, k and v into n_head heads of C / n_head channels)":
        dict(heads=False),
    "the scores are not scaled: divide q k^T by sqrt(D), D = C / n_head the width of one head":
        dict(scale="none"),
    "the scores are divided by sqrt(C); each head's scale is sqrt(D) with D = C / n_head":
        dict(scale="C"),
    "the output projection W_O (the nn.Linear(C, C) after merging the heads) is not applied":
        dict(proj=False),
    "no LayerNorm is applied: normalise the input of each sub-layer (pre-LN)": dict(ln=False),
    "this is post-LayerNorm (normalise after adding); the exercise asks for pre-LayerNorm, "
    "x plus the sub-layer of the normalised x": dict(pre=False),
    "the residual connections are missing: each sub-layer's output is added to x":
        dict(residual=(False, False)),
    "the attention's residual connection is missing: add its output to x, do not replace x":
        dict(residual=(False, True)),
    "the MLP's residual connection is missing: add its output to x, do not replace x":
        dict(residual=(True, False)),
    "the attention sub-layer is missing from forward: tokens never read each other":
        dict(use_attn=False),
    "there is no causal mask: a token may only read itself and the past": dict(causal=False),
    "the MLP uses ReLU; the exercise's MLP uses GELU": dict(act="relu"),
    "queries and keys are swapped: the 3C outputs are q, then k, then v": dict(qkv_order="kqv"),
    "the heads take interleaved channels; head h holds channels h*D .. h*D + D - 1": dict(split="dh"),
}


def check_block(Block, seed: int = 0) -> None:
    """``Block(n_embd, n_head)``: the pre-LN GPT block of the exercise, as an nn.Module.

    The check finds the layers the exercise names (two LayerNorms, the (C, 3C) q/k/v layer,
    the (C, C) output projection, the MLP), gives them random weights, and compares the
    block's output with the same block computed here from those weights: so the heads, the
    1/sqrt(D) scale, the LayerNorms, the projection, the mask and the residuals all count.
    """
    name = "check_block"
    bans = BANS[name]
    require_callable(name, Block, "Block (the class itself)")
    scan_answer(name, Block, bans, what="Block")
    g = torch.Generator().manual_seed(seed)
    H_r = int(torch.randint(2, 5, (), generator=g))
    sizes = [(32, 4), (24, 2), (48, 6), (H_r * int(torch.randint(3, 9, (), generator=g)), H_r)]
    for C, H in sizes:
        with torch.random.fork_rng():
            torch.manual_seed(seed + C + H)
            block = call(name, Block, C, H, what=f"Block(n_embd={C}, n_head={H})", bans=bans)
        if not isinstance(block, torch.nn.Module):
            fail(name, f"Block({C}, {H}) should build a torch.nn.Module", "an nn.Module",
                 type(block).__name__, "write class Block(nn.Module) and call super().__init__()")
        block.eval()
        x = torch.randn(2, 9, C, generator=g)
        y = call(name, block, x.clone(), what="block(x)", bans=bans)
        y = as_tensor(name, y, f"block(x) for x of shape (2, 9, {C})", shape=(2, 9, C), dtype_float=True)
        if torch.isnan(y).any():
            fail(name, "block(x) for random x", "finite values", "NaN values",
                 "a row of the mask with every score -inf gives NaN: keep the diagonal (j <= i)")
        parts = _block_parts(name, block, C)
        with torch.no_grad():                       # random gains and biases, so every layer counts
            for m in (parts["ln1"], parts["ln2"]):
                if m.weight is not None:
                    m.weight.copy_(1 + 0.5 * torch.randn(m.weight.shape, generator=g))
                if m.bias is not None:
                    m.bias.copy_(0.3 * torch.randn(m.bias.shape, generator=g))
            for key in ("qkv", "proj", "fc", "out"):
                lin = parts[key]
                lin.weight.copy_(torch.randn(lin.weight.shape, generator=g) / math.sqrt(lin.in_features))
                if lin.bias is not None:
                    lin.bias.copy_(0.1 * torch.randn(lin.bias.shape, generator=g))
            x = 2 * torch.randn(2, 9, C, generator=g)
            y = as_tensor(name, call(name, block, x.clone(), what="block(x)", bans=bans),
                          "block(x)", shape=(2, 9, C), dtype_float=True).double()
            refs = [_block_ref(x.double(), _double(parts), H, ln_order=o, act=a)
                    for o in ((0, 1), (1, 0)) for a in ("gelu", "tanh")]
            if not any(torch.allclose(y, r, atol=1e-4, rtol=1e-4) for r in refs):
                hint = ("follow the exercise's two steps: x + attn(ln1(x)) with causal multi-head "
                        "attention and W_O, then x + mlp(ln2(x)); print the shapes on the way")
                for text, kw in _BLOCK_MISTAKES.items():
                    if torch.allclose(y, _block_ref(x.double(), _double(parts), H, **kw), atol=1e-4, rtol=1e-4):
                        hint = text
                        break
                else:
                    x2 = x.clone()
                    x2[:, -1] += 1.0
                    y2 = call(name, block, x2, what="block(x)", bans=bans)
                    if not torch.allclose(y[:, :-1].float(), y2[:, :-1], atol=1e-5):
                        hint = "changing the last token moved earlier outputs: use causal attention inside the block"
                worst = (y - refs[0]).abs().max().item()
                fail(name, f"Block({C}, n_head={H}) with random weights, x of shape (2, 9, {C}) "
                     f"(largest difference {worst:.3g})",
                     "the pre-LN block computed from your own layers' weights", y.float(), hint)
        # every parameter trains
        with torch.random.fork_rng():
            torch.manual_seed(seed)
            block = call(name, Block, C, H, what=f"Block(n_embd={C}, n_head={H})", bans=bans)
        with guarded(name, bans, "block(x)"):
            block(torch.randn(2, 9, C, generator=g)).pow(2).mean().backward()
        missing = [n for n, p in block.named_parameters() if p.grad is None or not p.grad.abs().sum() > 0]
        if missing:
            fail(name, "backpropagating through block(x)", "a gradient for every parameter",
                 f"no gradient for {missing[:5]}", "every layer you create should be used in forward")
    passed(name, f"{len(sizes)} sizes: heads, 1/sqrt(D) scale, pre-LN, W_O, causal mask, residuals, "
                 f"all parameters trained")


def _double(parts):
    """The parts as float64 copies (the reference is computed in double precision)."""
    import copy
    return {k: copy.deepcopy(m).double() for k, m in parts.items()}
