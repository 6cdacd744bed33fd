"""Chapter 06: the checks (pass on references, fail on stubs and typical mistakes), the
lesson's inline model against coursekit.models.gpt, the attention viewer, and the
structure of the chapter's notebooks."""
from __future__ import annotations

import re

import nbformat
import pytest
import torch
import torch.nn as nn

import coursekit as ck
from coursekit.checks import CheckFailure
from coursekit.checks import ch06
from coursekit.data import CharTokenizer
from coursekit.models.gpt import GPT, GPTConfig, scaled_dot_product_attention, sinusoidal_positions

from answers.ch06 import (make_block, no_scale, ref_attention, ref_causal_attention,
                          ref_merge_heads, ref_positional_encoding, ref_split_heads)
from nbtools import exec_tagged_cells, notebook


# The checks' right and wrong answers live in tests/answers/ch06.py and run in
# tests/test_check_contract.py; here only what is specific to this chapter.

def test_failure_message_has_expected_got_and_hint():
    with pytest.raises(CheckFailure) as err:
        ch06.check_attention(no_scale)
    text = str(err.value)
    for part in ("check_attention failed:", "expected:", "got:", "hint:"):
        assert part in text


def test_every_check_accepts_a_seed_and_varies_its_cases(capsys):
    """Hidden tests call the checks with ck.checks.hidden_seed(...): each seed must work."""
    for seed in (0, 1, 12345):
        ch06.check_attention(ref_attention, seed=seed)
        ch06.check_causal_attention(ref_causal_attention, seed=seed)
        ch06.check_split_heads(ref_split_heads, ref_merge_heads, seed=seed)
        ch06.check_positional_encoding(ref_positional_encoding, seed=seed)
        ch06.check_block(make_block(), seed=seed)
    assert capsys.readouterr().out.count("PASSED") == 15


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


# --- the GPT's positional and ablation switches ------------------------------------------

def test_sinusoidal_positions_are_added_to_embeddings_scaled_by_sqrt_C():
    torch.manual_seed(0)
    model = GPT(GPTConfig(vocab_size=11, block_size=16, n_layer=1, n_head=2, n_embd=32, pos_emb="sinusoidal"))
    idx = torch.randint(0, 11, (2, 9))
    expected = model.tok_emb(idx) * 32 ** 0.5 + sinusoidal_positions(16, 32)[:9]
    torch.testing.assert_close(model.embed(idx), expected)


@pytest.mark.parametrize("fused", [True, False])
def test_ablation_switches_change_what_they_name(fused):
    torch.manual_seed(0)
    base = dict(vocab_size=11, block_size=16, n_layer=1, n_head=2, n_embd=32, fused_attention=fused)
    idx = torch.randint(0, 11, (2, 9))
    none = GPT(GPTConfig(**base, pos_emb="none"))
    torch.testing.assert_close(none.embed(idx), none.tok_emb(idx))
    no_ln = GPT(GPTConfig(**base, layer_norm=False))
    assert not any(isinstance(m, nn.LayerNorm) for m in no_ln.modules())
    torch.manual_seed(1)
    scaled = GPT(GPTConfig(**base))
    torch.manual_seed(1)
    unscaled = GPT(GPTConfig(**base, attn_scale=False))
    unscaled.load_state_dict(scaled.state_dict())
    h = torch.randn(2, 9, 32)
    attn_s, attn_u = scaled.blocks[0].attn, unscaled.blocks[0].attn
    # without the scale, the layer equals the scaled one with queries multiplied by sqrt(D)
    with torch.no_grad():
        attn_s.qkv.weight[:32] *= 16 ** 0.5
        attn_s.qkv.bias[:32] *= 16 ** 0.5
    torch.testing.assert_close(attn_u(h), attn_s(h), atol=1e-5, rtol=1e-5)
