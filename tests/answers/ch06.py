"""Chapter 06's answer table: right answers written apart from the checks' references,
and the typical mistakes and dodges each check must refuse (see answers/__init__.py)."""
from __future__ import annotations

import math

import torch
import torch.nn as nn
import torch.nn.functional as F
from einops import rearrange

from answers import Case
from coursekit.models import gpt

# --- right answers -------------------------------------------------------------------


def ref_attention(q, k, v):
    w = torch.einsum("...id,...jd->...ij", q, k) / q.shape[-1] ** 0.5
    return torch.einsum("...ij,...jd->...id", w.softmax(-1), v)


def ref_causal_attention(q, k, v):
    T = q.shape[-2]
    w = torch.einsum("...id,...jd->...ij", q, k) / q.shape[-1] ** 0.5
    future = torch.arange(T)[None, :] > torch.arange(T)[:, None]
    return torch.einsum("...ij,...jd->...id", w.masked_fill(future, -math.inf).softmax(-1), v)


def ref_split_heads(x, n_head):
    B, T, C = x.shape
    return x.reshape(B, T, n_head, C // n_head).permute(0, 2, 1, 3)


def ref_merge_heads(y):
    B, H, T, D = y.shape
    return y.permute(0, 2, 1, 3).reshape(B, T, H * D)


def ref_positional_encoding(T, C):
    pe = torch.empty(T, C)
    for p in range(T):
        for c in range(0, C, 2):
            pe[p, c] = math.sin(p / 10000 ** (c / C))
            pe[p, c + 1] = math.cos(p / 10000 ** (c / C))
    return pe


def make_block(causal=True, use_attention=True, pre_ln=True, residual=True, unused_layer=False,
               widen=False, heads=True, scale="d", proj=True, relu=False, attention=None):
    """A Block class written apart from the check, or one with a typical mistake switched on."""

    class Block(nn.Module):
        def __init__(self, n_embd, n_head):
            super().__init__()
            self.n_head = n_head if heads else 1
            self.ln1, self.ln2 = nn.LayerNorm(n_embd), nn.LayerNorm(n_embd)
            self.qkv = nn.Linear(n_embd, 3 * n_embd)
            self.proj = nn.Linear(n_embd, n_embd)
            self.fc = nn.Linear(n_embd, 4 * n_embd)
            self.out = nn.Linear(4 * n_embd, n_embd)
            if unused_layer:
                self.extra = nn.Linear(n_embd, 2 * n_embd)

        def attn(self, x):
            q, k, v = (rearrange(t, "b t (h d) -> b h t d", h=self.n_head) for t in self.qkv(x).chunk(3, -1))
            if attention is not None:
                y = attention(q, k, v)
            elif scale == "d":
                y = (ref_causal_attention if causal else ref_attention)(q, k, v)
            else:
                s = q @ k.transpose(-2, -1) / (1.0 if scale == "none" else math.sqrt(x.shape[-1]))
                T = x.shape[1]
                s = s.masked_fill(torch.ones(T, T, dtype=torch.bool).triu(1), -math.inf)
                y = s.softmax(-1) @ v
            y = rearrange(y, "b h t d -> b t (h d)")
            return self.proj(y) if proj else y

        def forward(self, x):
            if widen:
                return self.fc(x)
            if not pre_ln:  # post-LN: normalise after the residual sum
                x = self.ln1(x + self.attn(x))
                return self.ln2(x + self.out(F.gelu(self.fc(x))))
            a = self.attn(self.ln1(x)) if use_attention else 0
            x = x + a if residual else a
            act = F.relu if relu else F.gelu
            return x + self.out(act(self.fc(self.ln2(x))))

    return Block


class ModuleListBlock(nn.Module):
    """Another right block: nn.Sequential MLP, tanh-GELU, no biases, einsum attention."""

    def __init__(self, n_embd, n_head):
        super().__init__()
        self.h = n_head
        self.norms = nn.ModuleList([nn.LayerNorm(n_embd), nn.LayerNorm(n_embd)])
        self.to_qkv = nn.Linear(n_embd, 3 * n_embd, bias=False)
        self.w_o = nn.Linear(n_embd, n_embd, bias=False)
        self.ff = nn.Sequential(nn.Linear(n_embd, 4 * n_embd), nn.GELU(approximate="tanh"),
                                nn.Linear(4 * n_embd, n_embd))

    def forward(self, x):
        B, T, C = x.shape
        q, k, v = self.to_qkv(self.norms[0](x)).view(B, T, 3, self.h, C // self.h).permute(2, 0, 3, 1, 4)
        y = ref_causal_attention(q, k, v).transpose(1, 2).reshape(B, T, C)
        x = x + self.w_o(y)
        return x + self.ff(self.norms[1](x))


RIGHT = [
    Case("check_attention", ref_attention, why="einsum"),
    Case("check_attention", ref_attention, why="another seed", kwargs={"seed": 7}),
    Case("check_causal_attention", ref_causal_attention, why="einsum with a future mask"),
    Case("check_causal_attention", ref_causal_attention, why="another seed", kwargs={"seed": 3}),
    Case("check_split_heads", (ref_split_heads, ref_merge_heads), why="reshape and permute"),
    Case("check_split_heads", (ref_split_heads, ref_merge_heads), why="another seed", kwargs={"seed": 5}),
    Case("check_positional_encoding", ref_positional_encoding, why="loops"),
    Case("check_positional_encoding", ref_positional_encoding, why="another seed", kwargs={"seed": 9}),
    Case("check_block", make_block(), why="named layers"),
    Case("check_block", ModuleListBlock, why="sequential mlp, no biases", kwargs={"seed": 4}),
]

# --- wrong answers: attention ------------------------------------------------------------


def no_scale(q, k, v):
    return torch.softmax(q @ k.transpose(-2, -1), -1) @ v


def scale_by_d(q, k, v):
    return torch.softmax(q @ k.transpose(-2, -1) / q.shape[-1], -1) @ v


def softmax_over_queries(q, k, v):
    return torch.softmax(q @ k.transpose(-2, -1) / math.sqrt(q.shape[-1]), -2) @ v


def no_softmax(q, k, v):
    return (q @ k.transpose(-2, -1) / math.sqrt(q.shape[-1])) @ v


def returns_weights(q, k, v):
    return torch.softmax(q @ k.transpose(-2, -1) / math.sqrt(q.shape[-1]), -1)


def in_place(q, k, v):
    q /= math.sqrt(q.shape[-1])
    return torch.softmax(q @ k.transpose(-2, -1), -1) @ v


def returns_numpy(q, k, v):
    return ref_attention(q, k, v).numpy()


def torch_sdpa(q, k, v):
    return F.scaled_dot_product_attention(q, k, v)


_sdpa = F.scaled_dot_product_attention


def sdpa_alias(q, k, v):
    return _sdpa(q, k, v)


def sdpa_getattr(q, k, v):
    return getattr(F, "scaled_dot_product_" + "attention")(q, k, v)


def sdpa_causal_getattr(q, k, v):
    return getattr(F, "scaled_dot_product_" + "attention")(q, k, v, is_causal=True)


def mha(q, k, v):
    layer = nn.MultiheadAttention(q.shape[-1], 1)
    return layer(q, k, v)[0]


def coursekit_attention(q, k, v):
    return gpt.scaled_dot_product_attention(q, k, v, causal=False)[0]


def coursekit_causal(q, k, v):
    return gpt.scaled_dot_product_attention(q, k, v)[0]


def coursekit_mask(q, k, v):
    s = q @ k.transpose(-2, -1) / math.sqrt(q.shape[-1])
    return s.masked_fill(~gpt.causal_mask(q.shape[-2]), -math.inf).softmax(-1) @ v


def with_weights(q, k, v):                   # the lesson's version returns (out, weights)
    T = q.shape[-2]
    scores = q @ k.transpose(-2, -1) / math.sqrt(q.shape[-1])
    scores = scores.masked_fill(torch.ones(T, T, dtype=torch.bool).triu(1), float("-inf"))
    weights = scores.softmax(-1)
    return weights @ v, weights


class Lying(torch.Tensor):
    """A tensor subclass whose allclose always says yes."""

    @classmethod
    def __torch_function__(cls, func, types, args=(), kwargs=None):
        if func in (torch.allclose, torch.equal):
            return True
        return super().__torch_function__(func, types, args, kwargs or {})


def subclass_trick(q, k, v):
    return torch.zeros(*q.shape[:-1], v.shape[-1]).as_subclass(Lying)


def _causal_variant(kind):
    def f(q, k, v):
        T = q.shape[-2]
        s = q @ k.transpose(-2, -1) / math.sqrt(q.shape[-1])
        tril = torch.tril(torch.ones(T, T, dtype=torch.bool))
        if kind == "triu":
            return s.masked_fill(~tril.T, -math.inf).softmax(-1) @ v
        if kind == "zero":
            return s.masked_fill(~tril, 0.0).softmax(-1) @ v
        if kind == "diagonal":
            return s.masked_fill(~torch.tril(tril, -1), -math.inf).softmax(-1) @ v
        if kind == "after_softmax":
            return s.softmax(-1).masked_fill(~tril, 0.0) @ v
        if kind == "no_mask":
            return s.softmax(-1) @ v
        raise ValueError(kind)
    return f


# --- wrong answers: heads ----------------------------------------------------------------

def split_by_reshape(x, n_head):
    B, T, C = x.shape
    return x.reshape(B, n_head, T, C // n_head)


def split_without_transpose(x, n_head):
    B, T, C = x.shape
    return x.reshape(B, T, n_head, C // n_head)


def merge_by_reshape(y):
    B, H, T, D = y.shape
    return y.reshape(B, T, H * D)


def split_heads_wrong_order(x, n_head):  # channels interleaved across heads: (d h) instead of (h d)
    return rearrange(x, "b t (d h) -> b h t d", h=n_head)


def split_four_heads(x, n_head):          # n_head ignored
    return rearrange(x, "b t (h d) -> b h t d", h=4 if x.shape[-1] % 4 == 0 else 1)


# --- wrong answers: positions ------------------------------------------------------------

def _pe_variant(kind):
    def f(T, C):
        pos = torch.arange(T, dtype=torch.float32)[:, None]
        two_i = torch.arange(0, C, 2, dtype=torch.float32)
        if kind == "i_over_C":
            ang = pos / 10000 ** (two_i / 2 / C)
        elif kind == "multiply":
            ang = pos * 10000 ** (two_i / C)
        elif kind == "C_fixed":
            ang = pos / 10000 ** (two_i / 32)
        else:
            ang = pos / 10000 ** (two_i / C)
        if kind == "swapped":
            return torch.stack([ang.cos(), ang.sin()], -1).reshape(T, C)
        if kind == "concatenated":
            return torch.cat([ang.sin(), ang.cos()], -1)
        if kind == "transposed":
            return torch.stack([ang.sin(), ang.cos()], -1).reshape(T, C).T
        if kind == "list":
            return torch.stack([ang.sin(), ang.cos()], -1).reshape(T, C).tolist()
        return torch.stack([ang.sin(), ang.cos()], -1).reshape(T, C)
    return f


def pe_from_coursekit(T, C):
    return gpt.sinusoidal_positions(T, C)


_table = gpt.sinusoidal_positions


def pe_alias(T, C):
    return _table(T, C)


def pe_from_gpt(T, C):
    return gpt.GPT(gpt.GPTConfig(block_size=T, n_embd=C, n_head=1, pos_emb="sinusoidal")).pos_table


# --- wrong answers: blocks ---------------------------------------------------------------

class CoursekitBlock(nn.Module):
    def __init__(self, n_embd, n_head):
        super().__init__()
        self.inner = gpt.Block(gpt.GPTConfig(n_embd=n_embd, n_head=n_head))

    def forward(self, x):
        return self.inner(x)


class TorchLayerBlock(nn.Module):
    def __init__(self, n_embd, n_head):
        super().__init__()
        self.layer = nn.TransformerEncoderLayer(n_embd, n_head, 4 * n_embd, dropout=0.0,
                                                activation="gelu", batch_first=True, norm_first=True)

    def forward(self, x):
        T = x.shape[1]
        return self.layer(x, src_mask=nn.Transformer.generate_square_subsequent_mask(T), is_causal=True)


class MHABlock(nn.Module):
    def __init__(self, n_embd, n_head):
        super().__init__()
        self.ln1, self.ln2 = nn.LayerNorm(n_embd), nn.LayerNorm(n_embd)
        self.attn = nn.MultiheadAttention(n_embd, n_head, batch_first=True)
        self.mlp = nn.Sequential(nn.Linear(n_embd, 4 * n_embd), nn.GELU(), nn.Linear(4 * n_embd, n_embd))

    def forward(self, x):
        T = x.shape[1]
        h = self.ln1(x)
        x = x + self.attn(h, h, h, attn_mask=torch.ones(T, T, dtype=torch.bool).triu(1))[0]
        return x + self.mlp(self.ln2(x))


class CoursekitAttentionBlock(nn.Module):
    def __init__(self, n_embd, n_head):
        super().__init__()
        cfg = gpt.GPTConfig(n_embd=n_embd, n_head=n_head, fused_attention=False)
        self.ln1, self.ln2 = nn.LayerNorm(n_embd), nn.LayerNorm(n_embd)
        self.attn = gpt.CausalSelfAttention(cfg)
        self.mlp = nn.Sequential(nn.Linear(n_embd, 4 * n_embd), nn.GELU(), nn.Linear(4 * n_embd, n_embd))

    def forward(self, x):
        x = x + self.attn(self.ln1(x))
        return x + self.mlp(self.ln2(x))


def _fused_causal(q, k, v):
    return F.scaled_dot_product_attention(q, k, v, is_causal=True)


WRONG = [
    # attention
    Case("check_attention", no_scale, "not divided by sqrt", "no scale"),
    Case("check_attention", scale_by_d, "divided by d_k instead of sqrt", "scale by d"),
    Case("check_attention", softmax_over_queries, "over the queries", "softmax over queries"),
    Case("check_attention", no_softmax, "no softmax", "no softmax"),
    Case("check_attention", returns_weights, "wrong shape", "returns the weights"),
    Case("check_attention", in_place, "changed its inputs in place", "in place"),
    Case("check_attention", returns_numpy, "should be a torch.Tensor", "numpy"),
    Case("check_attention", ref_causal_attention, "largest difference", "masks without being asked"),
    Case("check_attention", ref_attention(torch.ones(1, 2), torch.ones(1, 2), torch.ones(1, 2)),
         "should be a function", "passes a result"),
    Case("check_attention", torch_sdpa, "scaled_dot_product_attention", "torch sdpa"),
    Case("check_attention", sdpa_alias, "scaled_dot_product_attention", "sdpa alias"),
    Case("check_attention", sdpa_getattr, "fused kernel", "sdpa by getattr"),
    Case("check_attention", mha, "MultiheadAttention", "nn.MultiheadAttention"),
    Case("check_attention", coursekit_attention, "coursekit's own attention", "coursekit attention"),
    Case("check_attention", subclass_trick, "largest difference", "tensor subclass that lies"),
    # causal attention
    Case("check_causal_attention", _causal_variant("triu"), "hides the past", "triu"),
    Case("check_causal_attention", _causal_variant("zero"), "instead of -inf", "mask with zero"),
    Case("check_causal_attention", _causal_variant("diagonal"), "NaN", "diagonal masked"),
    Case("check_causal_attention", _causal_variant("after_softmax"), "largest difference", "mask after softmax"),
    Case("check_causal_attention", _causal_variant("no_mask"), "no causal mask", "no mask"),
    Case("check_causal_attention", with_weights, "return only the output", "returns (out, weights)"),
    Case("check_causal_attention", no_scale, "largest difference", "no scale no mask"),
    Case("check_causal_attention", sdpa_causal_getattr, "scaled_dot_product", "sdpa by getattr"),
    Case("check_causal_attention", _fused_causal, "scaled_dot_product_attention", "fused sdpa"),
    Case("check_causal_attention", mha, "MultiheadAttention", "nn.MultiheadAttention"),
    Case("check_causal_attention", coursekit_causal, "coursekit.models.gpt", "coursekit attention"),
    Case("check_causal_attention", coursekit_mask, "causal_mask", "coursekit's mask"),
    # heads
    Case("check_split_heads", (split_by_reshape, ref_merge_heads), "mixes tokens into heads", "one reshape"),
    Case("check_split_heads", (split_without_transpose, ref_merge_heads), "wrong shape", "no transpose"),
    Case("check_split_heads", (split_heads_wrong_order, ref_merge_heads), "head h must hold channels",
         "interleaved channels"),
    Case("check_split_heads", (ref_split_heads, merge_by_reshape), "time axis in front", "merge by reshape"),
    Case("check_split_heads", (ref_split_heads, lambda y: y), "wrong shape", "merge does nothing"),
    Case("check_split_heads", (split_four_heads, ref_merge_heads), "wrong shape", "n_head ignored"),
    # positions
    Case("check_positional_encoding", _pe_variant("swapped"), "swapped", "sin cos swapped"),
    Case("check_positional_encoding", _pe_variant("concatenated"), "interleaved", "concatenated"),
    Case("check_positional_encoding", _pe_variant("i_over_C"), "not i / C", "i over C"),
    Case("check_positional_encoding", _pe_variant("multiply"), "multiplied", "multiplied"),
    Case("check_positional_encoding", _pe_variant("transposed"), "wrong shape", "transposed"),
    Case("check_positional_encoding", _pe_variant("list"), "should be a torch.Tensor", "list"),
    Case("check_positional_encoding", _pe_variant("C_fixed"), "largest difference", "C hard-coded"),
    Case("check_positional_encoding", pe_from_coursekit, "sinusoidal_positions", "coursekit's function"),
    Case("check_positional_encoding", pe_alias, "sinusoidal_positions", "alias"),
    Case("check_positional_encoding", pe_from_gpt, "gpt.GPT", "GPT's table"),
    # blocks
    Case("check_block", make_block(causal=False), "no causal mask", "not causal"),
    Case("check_block", make_block(use_attention=False), "attention sub-layer is missing",
         "no attention"),
    Case("check_block", make_block(pre_ln=False), "pre-LayerNorm", "post-LN"),
    Case("check_block", make_block(residual=False), "residual", "no residual"),
    Case("check_block", make_block(unused_layer=True), "no gradient for", "unused layer"),
    Case("check_block", make_block(widen=True), "wrong shape", "wrong shape"),
    Case("check_block", make_block(heads=False), "one head", "n_head ignored"),
    Case("check_block", make_block(scale="none"), "not scaled", "no 1/sqrt(D)"),
    Case("check_block", make_block(scale="C"), "divided by sqrt(C)", "scale by sqrt(C)"),
    Case("check_block", make_block(proj=False), "output projection", "no W_O"),
    Case("check_block", make_block(relu=True), "ReLU", "relu"),
    Case("check_block", lambda n_embd, n_head: (lambda x: x), "nn.Module", "not a module"),
    Case("check_block", CoursekitBlock, "coursekit.models.gpt.Block", "coursekit's block"),
    Case("check_block", CoursekitAttentionBlock, "coursekit.models.gpt", "coursekit's attention"),
    Case("check_block", TorchLayerBlock, "TransformerEncoderLayer", "torch's layer"),
    Case("check_block", MHABlock, "MultiheadAttention", "nn.MultiheadAttention"),
    Case("check_block", make_block(attention=_fused_causal), "scaled_dot_product_attention", "fused sdpa"),
]
