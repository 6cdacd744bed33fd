"""Chapter 06: the checks (pass on references, fail on stubs and typical mistakes), the
lesson's inline model against coursekit.models.gpt, the attention viewer, and the
structure of the chapter's notebooks."""
from __future__ import annotations

import math
import re

import nbformat
import pytest
import torch
import torch.nn as nn
import torch.nn.functional as F
from einops import rearrange

import coursekit as ck
from coursekit.checks import CheckFailure
from coursekit.checks import ch06
from coursekit.data import CharTokenizer
from coursekit.models.gpt import GPT, GPTConfig, scaled_dot_product_attention, sinusoidal_positions

from nbtools import exec_tagged_cells, notebook


# --- reference answers, written independently of the check module ----------------------

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
               widen=False):
    """A reference Block class, or one with a typical mistake switched on."""

    class Block(nn.Module):
        def __init__(self, n_embd, n_head):
            super().__init__()
            self.n_head = n_head
            self.ln1, self.ln2 = nn.LayerNorm(n_embd), nn.LayerNorm(n_embd)
            self.qkv = nn.Linear(n_embd, 3 * n_embd)
            self.proj = nn.Linear(n_embd, n_embd)
            self.fc = nn.Linear(n_embd, 4 * n_embd)
            self.out = nn.Linear(4 * n_embd, n_embd)
            if unused_layer:
                self.extra = nn.Linear(n_embd, n_embd)

        def attn(self, x):
            q, k, v = (rearrange(t, "b t (h d) -> b h t d", h=self.n_head) for t in self.qkv(x).chunk(3, -1))
            y = (ref_causal_attention if causal else ref_attention)(q, k, v)
            return self.proj(rearrange(y, "b h t d -> b t (h d)"))

        def forward(self, x):
            if widen:
                return self.fc(x)
            if not pre_ln:  # post-LN: normalise after the residual sum
                x = self.ln1(x + self.attn(x))
                return self.ln2(x + self.out(F.gelu(self.fc(x))))
            a = self.attn(self.ln1(x)) if use_attention else 0
            x = x + a if residual else a
            return x + self.out(F.gelu(self.fc(self.ln2(x))))

    return Block


def stub(*args, **kwargs):
    raise NotImplementedError()


class StubBlock(nn.Module):
    def __init__(self, n_embd, n_head):
        super().__init__()
        raise NotImplementedError()


# --- each check passes on its reference -----------------------------------------------

@pytest.mark.parametrize("check,args", [
    ("check_attention", (ref_attention,)),
    ("check_causal_attention", (ref_causal_attention,)),
    ("check_split_heads", (ref_split_heads, ref_merge_heads)),
    ("check_positional_encoding", (ref_positional_encoding,)),
    ("check_block", (make_block(),)),
])
def test_check_passes_on_reference(check, args, capsys):
    getattr(ch06, check)(*args)
    assert capsys.readouterr().out.startswith(f"PASSED {check}")


# --- ... fails on the stub ------------------------------------------------------------

@pytest.mark.parametrize("check,args", [
    ("check_attention", (stub,)),
    ("check_causal_attention", (stub,)),
    ("check_split_heads", (stub, ref_merge_heads)),
    ("check_split_heads", (ref_split_heads, stub)),
    ("check_positional_encoding", (stub,)),
    ("check_block", (StubBlock,)),
])
def test_check_fails_on_stub(check, args):
    with pytest.raises(CheckFailure, match="not written yet"):
        getattr(ch06, check)(*args)


# --- ... and on typical mistakes, with a message that names the mistake ----------------

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


@pytest.mark.parametrize("wrong,message", [
    (no_scale, "not divided by sqrt"),
    (scale_by_d, "divided by d_k instead of sqrt"),
    (softmax_over_queries, "over the queries"),
    (no_softmax, "no softmax"),
    (returns_weights, "wrong shape"),
    (in_place, "changed its inputs in place"),
    (returns_numpy, "should be a torch.Tensor"),
    (ref_causal_attention, "largest difference"),          # masks when it should not
    (ref_attention(torch.ones(1, 2), torch.ones(1, 2), torch.ones(1, 2)), "should be a function"),
])
def test_check_attention_catches(wrong, message):
    with pytest.raises(CheckFailure, match=message):
        ch06.check_attention(wrong)


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


@pytest.mark.parametrize("kind,message", [
    ("triu", "hides the past"),
    ("zero", "instead of -inf"),
    ("diagonal", "NaN"),
    ("after_softmax", "largest difference"),
    ("no_mask", "no causal mask"),
])
def test_check_causal_attention_catches(kind, message):
    with pytest.raises(CheckFailure, match=message):
        ch06.check_causal_attention(_causal_variant(kind))


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


@pytest.mark.parametrize("split,merge,message", [
    (split_by_reshape, ref_merge_heads, "mixes tokens into heads"),
    (split_without_transpose, ref_merge_heads, "wrong shape"),
    (split_heads_wrong_order, ref_merge_heads, "head h must hold channels"),
    (ref_split_heads, merge_by_reshape, "transpose"),
    (ref_split_heads, lambda y: y, "wrong shape"),
])
def test_check_split_heads_catches(split, merge, message):
    with pytest.raises(CheckFailure, match=message):
        ch06.check_split_heads(split, merge)


def _pe_variant(kind):
    def f(T, C):
        pos = torch.arange(T, dtype=torch.float32)[:, None]
        two_i = torch.arange(0, C, 2, dtype=torch.float32)
        if kind == "i_over_C":
            ang = pos / 10000 ** (two_i / 2 / C)
        elif kind == "multiply":
            ang = pos * 10000 ** (two_i / C)
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


@pytest.mark.parametrize("kind,message", [
    ("swapped", "swapped"),
    ("concatenated", "interleaved"),
    ("i_over_C", "not i / C"),
    ("multiply", "multiplied"),
    ("transposed", "wrong shape"),
    ("list", "should be a torch.Tensor"),
])
def test_check_positional_encoding_catches(kind, message):
    with pytest.raises(CheckFailure, match=message):
        ch06.check_positional_encoding(_pe_variant(kind))


def test_positional_encoding_variant_default_is_correct():
    ch06.check_positional_encoding(_pe_variant("correct"))   # the harness itself is right


@pytest.mark.parametrize("block,message", [
    (make_block(causal=False), "future is leaking|use causal attention"),
    (make_block(use_attention=False), "attention reads the past"),
    (make_block(pre_ln=False), "pre-LayerNorm"),
    (make_block(residual=False), "pre-LayerNorm|residual"),
    (make_block(unused_layer=True), "no gradient for"),
    (make_block(widen=True), "wrong shape"),
    (lambda n_embd, n_head: (lambda x: x), "nn.Module"),
])
def test_check_block_catches(block, message):
    with pytest.raises(CheckFailure, match=message):
        ch06.check_block(block)


def test_failure_message_has_expected_got_and_hint():
    with pytest.raises(CheckFailure) as err:
        ch06.check_attention(no_scale)
    text = str(err.value)
    for part in ("check_attention failed:", "expected:", "got:", "hint:"):
        assert part in text


# --- the lesson's inline model equals coursekit.models.gpt ------------------------------

@pytest.fixture(scope="module")
def lesson():
    return exec_tagged_cells(notebook("notebooks", "06"))


def test_inline_attention_and_positions_match_package(lesson):
    g = torch.Generator().manual_seed(0)
    q, k, v = (torch.randn(2, 3, 7, 8, generator=g) for _ in range(3))
    y, w = lesson["causal_attention"](q, k, v)
    y_ref, w_ref = scaled_dot_product_attention(q, k, v, causal=True)
    torch.testing.assert_close(y, y_ref, atol=1e-6, rtol=1e-6)
    torch.testing.assert_close(w, w_ref, atol=1e-6, rtol=1e-6)
    torch.testing.assert_close(lesson["positional_encoding"](50, 16), sinusoidal_positions(50, 16))


@pytest.mark.parametrize("fused", [True, False])
@pytest.mark.parametrize("sizes", [dict(n_layer=2, n_head=4, n_embd=64), dict(n_layer=3, n_head=2, n_embd=32)])
def test_inline_gpt_matches_package_under_same_seed(lesson, fused, sizes):
    vocab, block = 13, 24
    torch.manual_seed(7)
    inline = lesson["TinyGPT"](vocab, block, sizes["n_layer"], sizes["n_head"], sizes["n_embd"])
    torch.manual_seed(7)
    package = GPT(GPTConfig(vocab_size=vocab, block_size=block, fused_attention=fused, **sizes))
    a, b = inline.state_dict(), package.state_dict()
    assert list(a) == list(b), "inline and package parameter names differ"
    for name in a:
        assert torch.equal(a[name], b[name]), f"{name} differs at initialisation"
    x = torch.randint(0, vocab, (3, block), generator=torch.Generator().manual_seed(1))
    y = torch.randint(0, vocab, (3, block), generator=torch.Generator().manual_seed(2))
    la, loss_a = inline(x, y)
    lb, loss_b = package(x, y)
    torch.testing.assert_close(la, lb, atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(loss_a, loss_b, atol=1e-6, rtol=1e-6)
    # the same samples from the same random stream (inline generate vs GPT.generate)
    prompt = x[:2, :3]
    out_a = lesson["generate"](inline, prompt, 30, temperature=0.9, top_k=5,
                               generator=torch.Generator().manual_seed(3))
    out_b = package.generate(prompt, 30, temperature=0.9, top_k=5, generator=torch.Generator().manual_seed(3))
    assert torch.equal(out_a, out_b)


def test_inline_block_is_causal(lesson):
    torch.manual_seed(0)
    block = lesson["Block"](32, 4)
    ch06.check_block(lesson["Block"])   # the lesson's own block passes the exercise's check
    x = torch.randn(1, 6, 32)
    x2 = x.clone()
    x2[:, 4:] += 1
    torch.testing.assert_close(block(x)[:, :4], block(x2)[:, :4])


# --- the attention viewer ---------------------------------------------------------------

@pytest.fixture()
def viewer_parts():
    text = "the cat sat on the mat, and the dog sat too.\n"
    tok = CharTokenizer(text)
    torch.manual_seed(0)
    model = GPT(GPTConfig(vocab_size=tok.vocab_size, block_size=20, n_layer=2, n_head=3, n_embd=24))
    with torch.no_grad():  # sharpen the random attention so that heads look different
        for block in model.blocks:
            block.attn.qkv.weight.mul_(30)
    return model, tok


def test_viewer_draws_and_exposes_state(viewer_parts):
    model, tok = viewer_parts
    w = ck.widgets.attention_viewer(model, tok, "the cat sat")
    assert w.error == "" and w.n_draws == 1 and w.png.startswith(b"\x89PNG")
    assert w.tokens == ["t", "h", "e", "\u2423", "c", "a", "t", "\u2423", "s", "a", "t"]
    assert w.maps.shape == (2, 3, 11, 11) and w.shown == (0, 0)
    oracle = model.attention_maps(tok.encode("the cat sat")[None])[:, 0]
    torch.testing.assert_close(w.attention, oracle[0, 0])


@pytest.mark.parametrize("layer,head", [(1, 0), (0, 2), (1, -1)])
def test_viewer_redraws_on_layer_and_head(viewer_parts, layer, head):
    model, tok = viewer_parts
    w = ck.widgets.attention_viewer(model, tok, "the dog sat on a mat")
    assert w.error == ""
    before, draws = w.png, w.n_draws
    w.set(layer=layer, head=head)
    assert w.n_draws == draws + 1 and w.png != before and w.shown == (layer, head)
    oracle = model.attention_maps(tok.encode("the dog sat on a mat")[None])[layer, 0]
    expected = oracle.mean(0) if head == -1 else oracle[head]
    torch.testing.assert_close(w.attention, expected)
    torch.testing.assert_close(w.attention.sum(-1), torch.ones(len(w.tokens)))


def test_viewer_text_box_recomputes_and_crops(viewer_parts):
    model, tok = viewer_parts
    w = ck.widgets.attention_viewer(model, tok, "the cat")
    w.controls["text"].value = "the cat sat on the mat, and the dog."     # 38 chars > block 20
    assert len(w.tokens) == 20 and w.maps.shape == (2, 3, 20, 20)
    assert "".join(w.tokens).replace("\u2423", " ") == "the cat sat on the mat, and the dog."[-20:]


def test_viewer_reports_bad_text_and_keeps_image(viewer_parts):
    model, tok = viewer_parts
    w = ck.widgets.attention_viewer(model, tok, "the cat")
    png = w.png
    w.set(text="XYZ")
    assert "not in the vocabulary" in w.error and w.png == png
    w.set(text="the mat")
    assert w.error == "" and len(w.tokens) == 7


@pytest.mark.parametrize("kwargs", [dict(layer=2), dict(head=3), dict(head=-2)])
def test_viewer_rejects_bad_arguments(viewer_parts, kwargs):
    model, tok = viewer_parts
    with pytest.raises(ValueError):
        ck.widgets.attention_viewer(model, tok, "the cat", **kwargs)


def test_viewer_needs_a_gpt(viewer_parts):
    _, tok = viewer_parts
    with pytest.raises(TypeError, match="attention_maps"):
        ck.widgets.attention_viewer(nn.Linear(2, 2), tok, "the cat")


# --- notebook structure -----------------------------------------------------------------

def _cells(folder):
    return nbformat.read(notebook(folder, "06"), as_version=4).cells


@pytest.mark.parametrize("folder", ["notebooks", "solutions"])
def test_notebook_conventions(folder):
    cells = _cells(folder)
    assert cells[0].cell_type == "markdown"
    first_code = next(c for c in cells if c.cell_type == "code")
    assert first_code.source == "import coursekit as ck\ndevice = ck.setup(seed=0)"
    for c in cells:
        if c.cell_type == "code":
            assert not c.outputs and c.execution_count is None, "commit notebooks with outputs cleared"
    nb = nbformat.read(notebook(folder, "06"), as_version=4)
    assert nb.metadata.kernelspec.name == "python3"
    assert "widgets" not in nb.metadata


def test_lesson_has_objectives_inline_cells_recap_and_reading():
    cells = _cells("notebooks")
    assert "Learning objectives" in cells[0].source
    assert sum("inline" in c.metadata.get("tags", []) for c in cells) >= 3
    text = "\n".join(c.source for c in cells if c.cell_type == "markdown")
    assert "## Recap" in text and "## Further reading" in text
    assert "Attention Is All You Need" in text and "Vaswani" in text
    code = "\n".join(c.source for c in cells if c.cell_type == "code")
    assert "ck.budget(" in code and "attention_viewer" in code and "ck.train(" in code


def test_solution_check_cells_match_the_check_module():
    cells = _cells("solutions")
    checks = [c for c in cells if "check" in c.metadata.get("tags", [])]
    called = []
    for c in checks:
        meta = c.metadata["nbgrader"]
        name = re.search(r"ck\.checks\.ch06\.(check_\w+)\(", c.source).group(1)
        assert meta["grade_id"] == name and meta["grade"] and meta["locked"] and meta["points"] > 0
        called.append(name)
    public = sorted(n for n in dir(ch06) if n.startswith("check_"))
    assert sorted(called) == public and len(public) >= 4
    answers = [c for c in cells if c.metadata.get("nbgrader", {}).get("solution")]
    assert len(answers) >= len(checks)
    for c in answers:
        assert "### BEGIN SOLUTION" in c.source and "### END SOLUTION" in c.source


def test_check_causal_attention_explains_a_returned_weights_pair():
    def with_weights(q, k, v):                        # the lesson's version returns (out, weights)
        T = q.shape[-2]
        scores = q @ k.transpose(-2, -1) / math.sqrt(q.shape[-1])
        scores = scores.masked_fill(torch.ones(T, T, dtype=torch.bool).triu(1), float("-inf"))
        weights = scores.softmax(-1)
        return weights @ v, weights

    with pytest.raises(ck.checks.CheckFailure, match="return only the output"):
        ck.checks.ch06.check_causal_attention(with_weights)
    ck.checks.ch06.check_causal_attention(lambda q, k, v: with_weights(q, k, v)[0])   # the output alone passes
