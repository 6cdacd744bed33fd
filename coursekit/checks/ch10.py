"""Checks for chapter 10, Fine-tuning and transfer learning (``exercises/10_finetuning.ipynb``).

Each check compares the learner's answer with a reference written out below, on fixed
small cases and on random cases drawn from ``seed``, and says what to fix when they differ.
Exercise signatures:

* ``LoRALinear(base, r, alpha)``: an ``nn.Module`` wrapping a trained ``nn.Linear``: the
  base weight and bias frozen, a trainable ``A`` (r x in) and ``B`` (out x r, zero at the
  start), ``forward(x) = base(x) + (alpha / r) * x A^T B^T`` (Hu et al., 2021)
* ``merge_lora_layer(layer) -> nn.Linear``: one plain layer computing what a coursekit
  ``LoRALinear`` computes, the update folded into the weight; the layer itself unchanged
* ``freeze_all_but(model, keep) -> model``: only the parameters of the modules named in
  ``keep`` (and of their sub-modules) train; every other parameter is frozen
"""
from __future__ import annotations

import copy

import torch
from torch import nn

from coursekit.checks.assertions import (as_tensor, call, expect_close, fail, guarded, passed,
                                         require_callable, scan_answer, seeded)
from coursekit.checks.forbidden import ban

# ---------------------------------------------------------------------------------------
# What an answer may not use: coursekit's own adapters, merging and freezing
# ---------------------------------------------------------------------------------------
_L = "coursekit.models.lora."
BANS = {
    "check_lora_linear": [
        ban(_L + "LoRALinear", _L + "LoRALinear.forward", _L + "add_lora",
            reason="coursekit's LoRALinear is the lesson's answer; write the low-rank path yourself"),
        ban("torch.nn.utils.parametrize.register_parametrization",
            reason="a parametrisation changes the weight itself; the exercise keeps W frozen and adds "
            "a separate path")],
    "check_merge_lora_layer": [
        ban(_L + "merge_lora", _L + "LoRALinear.merged", _L + "LoRALinear.delta_weight",
            reason="coursekit's merge is the answer; build the new weight from W, A, B and the scale yourself")],
    "check_freeze_all_but": [
        ban(_L + "freeze", _L + "prepare", _L + "add_lora",
            reason="coursekit's freeze is the answer; set requires_grad on each parameter yourself")],
}


_gen = seeded


# ---------------------------------------------------------------------------------------
# 1. LoRALinear
# ---------------------------------------------------------------------------------------
def _lora_reference(x, W, b, A, B, scale):
    """W x + b + scale * B A x, written as one matrix product of the summed weight."""
    y = x.double() @ (W.double() + scale * (B.double() @ A.double())).T
    return y + b.double() if b is not None else y


def _param(layer: nn.Module, name: str, check: str, shape: tuple[int, int], case: str) -> torch.Tensor:
    p = getattr(layer, name, None)
    if not isinstance(p, nn.Parameter):
        fail(check, f"{case}: the attribute {name}", f"an nn.Parameter of shape {shape}",
             type(p).__name__ if p is not None else "no such attribute",
             "store the adapter's matrices as self.A and self.B, each an nn.Parameter, so that the "
             "optimiser finds them")
    if tuple(p.shape) != shape:
        hint = ("A maps the input down to r numbers and B maps them up to the output: A is (r, in) "
                "and B is (out, r), like nn.Linear's (out, in) weight")
        if tuple(p.shape) == shape[::-1]:
            hint = "transposed: " + hint
        fail(check, f"{case}: the shape of {name}", shape, tuple(p.shape), hint)
    return p


def check_lora_linear(LoRALinear, seed: int = 0) -> None:
    """``LoRALinear(base, r, alpha)``: frozen base, trainable A (r, in) and B (out, r), scale alpha / r."""
    with torch.random.fork_rng(devices=[]):      # the layers' own initialisation draws from the global state
        torch.manual_seed(seed)
        _check_lora_linear(LoRALinear, seed)


def _check_lora_linear(LoRALinear, seed: int) -> None:
    name = "check_lora_linear"
    require_callable(name, LoRALinear, "LoRALinear")
    from coursekit.models import lora as ck_lora
    if isinstance(LoRALinear, type) and issubclass(LoRALinear, ck_lora.LoRALinear):
        fail(name, "LoRALinear is a subclass of coursekit's LoRALinear",
             "a class of your own (a subclass of nn.Module)", "a subclass of coursekit.models.lora.LoRALinear",
             BANS[name][0].reason)
    scan_answer(name, LoRALinear, BANS[name], what="LoRALinear")
    g = _gen(seed)
    cases = [("in 6, out 4, r = 2, alpha = 4, with bias", 6, 4, 2, 4.0, True),
             ("in 8, out 8, r = 1, alpha = 1, with bias", 8, 8, 1, 1.0, True),
             ("in 5, out 12, r = 3, alpha = 12, no bias", 5, 12, 3, 12.0, False),
             ("in 16, out 7, r = 4, alpha = 2 (scale 0.5), with bias", 16, 7, 4, 2.0, True),
             ("random sizes", int(torch.randint(6, 20, (), generator=g)), int(torch.randint(3, 15, (), generator=g)),
              int(torch.randint(1, 4, (), generator=g)), float(torch.randint(1, 9, (), generator=g)), True)]
    for case, n_in, n_out, r, alpha, bias in cases:
        base = nn.Linear(n_in, n_out, bias=bias)
        with torch.no_grad():
            base.weight.copy_(torch.randn(n_out, n_in, generator=g))
            if bias:
                base.bias.copy_(torch.randn(n_out, generator=g))
        W0 = base.weight.detach().clone()
        b0 = base.bias.detach().clone() if bias else None
        layer = call(name, LoRALinear, base, r, alpha, what=f"LoRALinear(base, r={r}, alpha={alpha})",
                     bans=BANS[name])
        if not isinstance(layer, nn.Module):
            fail(name, case, "an nn.Module", type(layer).__name__, "LoRALinear is a class deriving from nn.Module")
        A = _param(layer, "A", name, (r, n_in), case)
        B = _param(layer, "B", name, (n_out, r), case)
        # 1. the base is frozen, the adapter trains
        frozen = [n for n, p in layer.named_parameters() if p.requires_grad and p is not A and p is not B]
        if base.weight.requires_grad or (bias and base.bias.requires_grad) or frozen:
            fail(name, f"{case}: which parameters train", "only A and B (requires_grad True)",
                 f"also {frozen or ['the base weight']}",
                 "the trained layer is frozen: call requires_grad_(False) on base's weight and bias")
        if not (A.requires_grad and B.requires_grad):
            fail(name, f"{case}: A and B require a gradient", "True, True", f"{A.requires_grad}, {B.requires_grad}",
                 "A and B are the only parameters that train")
        n_train = sum(p.numel() for p in layer.parameters() if p.requires_grad)
        if n_train != r * (n_in + n_out):
            fail(name, f"{case}: trainable numbers", r * (n_in + n_out), n_train,
                 "the adapter holds r * (in + out) numbers, no more")
        # 2. at the start B = 0, so the layer is the base layer
        if not torch.equal(B.detach(), torch.zeros_like(B)):
            fail(name, f"{case}: B at initialisation", "all zeros", B.detach(),
                 "B starts at zero so that the adapted model starts exactly as the trained one")
        if torch.equal(A.detach(), torch.zeros_like(A)):
            fail(name, f"{case}: A at initialisation", "random values (not all zero)", A.detach(),
                 "with A and B both zero, the gradient of each is zero too and nothing ever trains; "
                 "draw A at random (nn.Linear's own initialisation, or a small normal)")
        x = torch.randn(3, 2, n_in, generator=g)                              # (3, 2, in): extra batch axes
        with guarded(name, BANS[name], "LoRALinear.forward"):
            y0 = layer(x)
        y0 = as_tensor(name, y0, "LoRALinear(x)", shape=(3, 2, n_out), dtype_float=True)
        expect_close(name, f"{case}: output at initialisation (B = 0)", y0,
                     _lora_reference(x, W0, b0, A.detach(), B.detach(), alpha / r).float(), atol=1e-4,
                     hint="at the start the output must be base(x): the low-rank path adds B A x = 0",
                     what="LoRALinear(x)")
        # 3. with A and B set, the low-rank path with the scale alpha / r
        with torch.no_grad():
            A.copy_(torch.randn(r, n_in, generator=g))
            B.copy_(torch.randn(n_out, r, generator=g))
        with guarded(name, BANS[name], "LoRALinear.forward"):
            y = layer(x)
        y = as_tensor(name, y, "LoRALinear(x)", shape=(3, 2, n_out), dtype_float=True)
        ref = _lora_reference(x, W0, b0, A.detach(), B.detach(), alpha / r).float()
        if not torch.allclose(y, ref, atol=1e-3, rtol=1e-4):
            hint = "the output is base(x) + (alpha / r) * (x A^T) B^T"
            for scale, why in ((1.0, "the low-rank path is multiplied by alpha / r"),
                               (alpha, "the scale is alpha / r, not alpha"),
                               (r / alpha, "the scale is alpha / r, not r / alpha")):
                if scale != alpha / r and torch.allclose(y, _lora_reference(x, W0, b0, A.detach(), B.detach(),
                                                                             scale).float(), atol=1e-3, rtol=1e-4):
                    hint = why
            expect_close(name, f"{case}: output with random A and B", y, ref, atol=1e-3, hint=hint,
                         what="LoRALinear(x)")
        # 4. gradients reach A and B, never the base
        with guarded(name, BANS[name], "LoRALinear.forward"):
            layer(x).square().sum().backward()
        if base.weight.grad is not None or A.grad is None or B.grad is None:
            fail(name, f"{case}: gradients after backward", "A.grad and B.grad set, base.weight.grad None",
                 f"A.grad {'set' if A.grad is not None else 'None'}, B.grad "
                 f"{'set' if B.grad is not None else 'None'}, base.weight.grad "
                 f"{'set' if base.weight.grad is not None else 'None'}",
                 "use the base layer's frozen parameters as they are and A, B as parameters (no .detach() "
                 "on A or B, no copy of W that trains)")
        if not torch.equal(base.weight.detach(), W0):
            fail(name, f"{case}: the base weight", "unchanged", "changed",
                 "the adapter adds a separate path; it never writes into W")
    passed(name, "frozen base, A (r, in) random, B (out, r) zero, scale alpha / r, gradients on A and B only, "
                 "on 5 layers")


# ---------------------------------------------------------------------------------------
# 2. merging
# ---------------------------------------------------------------------------------------
def _make_lora_layer(g: torch.Generator, n_in: int, n_out: int, r: int, alpha: float, bias: bool):
    from coursekit.models.lora import LoRALinear
    base = nn.Linear(n_in, n_out, bias=bias)
    with torch.no_grad():
        base.weight.copy_(torch.randn(n_out, n_in, generator=g))
        if bias:
            base.bias.copy_(torch.randn(n_out, generator=g))
    layer = LoRALinear(base, r, alpha)
    with torch.no_grad():
        layer.A.copy_(torch.randn(r, n_in, generator=g))
        layer.B.copy_(torch.randn(n_out, r, generator=g))
    return layer


def check_merge_lora_layer(merge_lora_layer, seed: int = 0) -> None:
    """``merge_lora_layer(layer)``: an ``nn.Linear`` with W + (alpha / r) B A and the same bias."""
    with torch.random.fork_rng(devices=[]):      # new nn.Linear layers draw from the global state
        torch.manual_seed(seed)
        _check_merge_lora_layer(merge_lora_layer, seed)


def _check_merge_lora_layer(merge_lora_layer, seed: int) -> None:
    name = "check_merge_lora_layer"
    require_callable(name, merge_lora_layer, "merge_lora_layer", n_args=1)
    g = _gen(seed)
    cases = [("in 6, out 4, r = 2, alpha = 4, with bias", 6, 4, 2, 4.0, True),
             ("in 5, out 9, r = 3, alpha = 1, no bias", 5, 9, 3, 1.0, False),
             ("in 8, out 8, r = 1, alpha = 8, with bias", 8, 8, 1, 8.0, True),
             ("random sizes", int(torch.randint(4, 24, (), generator=g)), int(torch.randint(3, 24, (), generator=g)),
              int(torch.randint(1, 4, (), generator=g)), float(torch.randint(1, 17, (), generator=g)), True)]
    for case, n_in, n_out, r, alpha, bias in cases:
        layer = _make_lora_layer(g, n_in, n_out, r, alpha, bias)
        before = {k: v.detach().clone() for k, v in layer.state_dict().items()}
        x = torch.randn(4, 3, n_in, generator=g)                              # (4, 3, in)
        with torch.no_grad():
            expected = _lora_reference(x, layer.base.weight, layer.base.bias if bias else None,
                                       layer.A, layer.B, alpha / r).float()
        merged = call(name, merge_lora_layer, layer, what="merge_lora_layer(layer)", bans=BANS[name])
        if type(merged) is not nn.Linear:
            fail(name, case, "a plain nn.Linear", type(merged).__name__,
                 "the point of merging is an ordinary layer: build an nn.Linear of the same sizes")
        if (merged.bias is None) != (not bias) or tuple(merged.weight.shape) != (n_out, n_in):
            fail(name, f"{case}: the merged layer's sizes", f"weight {(n_out, n_in)}, bias {bias}",
                 f"weight {tuple(merged.weight.shape)}, bias {merged.bias is not None}",
                 "the merged layer has the base layer's in and out sizes, and a bias if and only if it had one")
        changed = [k for k, v in layer.state_dict().items() if not torch.equal(v, before[k])]
        if changed:
            fail(name, f"{case}: the LoRA layer after merging", "unchanged", f"{changed} changed",
                 "build the new weight in a new tensor; the adapted layer must still work as it did")
        with torch.no_grad():
            got = merged(x)
        if not torch.allclose(got, expected, atol=1e-4, rtol=1e-4):
            W, A, B = layer.base.weight.detach(), layer.A.detach(), layer.B.detach()
            hint = "the merged weight is W + (alpha / r) B A, and the bias is the base layer's"
            if torch.allclose(merged.weight.detach(), W + B @ A, atol=1e-4):
                hint = "the update B A is multiplied by alpha / r, as in the forward pass"
            elif torch.allclose(merged.weight.detach(), W, atol=1e-4):
                hint = "the weight is the base weight alone: add the adapter's update (alpha / r) B A"
            elif bias and torch.allclose(got, expected - layer.base.bias.detach(), atol=1e-4):
                hint = "copy the base layer's bias into the merged layer"
            expect_close(name, f"{case}: merged(x) against layer(x)", got, expected, atol=1e-4, hint=hint,
                         what="merged(x)")
    passed(name, "merged layers compute what the adapted ones do, which stay unchanged, on 4 layers")


# ---------------------------------------------------------------------------------------
# 3. freezing
# ---------------------------------------------------------------------------------------
def _tiny_gpt(n_layer: int, g: torch.Generator, tie: bool = True):
    from coursekit.models.gpt import GPT, GPTConfig
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(int(torch.randint(0, 2**31, (), generator=g)))
        return GPT(GPTConfig(vocab_size=11, block_size=8, n_layer=n_layer, n_head=2, n_embd=8, tie_weights=tie))


def _expected_trainable(model: nn.Module, keep: list[str]) -> dict[str, bool]:
    out = {}
    for pname, _ in model.named_parameters(remove_duplicate=False):
        owner = pname.rsplit(".", 1)[0] if "." in pname else ""
        out[pname] = any(owner == k or owner.startswith(k + ".") for k in keep)
    # a shared (tied) tensor is one parameter: it trains if any of its names is kept
    by_id: dict[int, bool] = {}
    for pname, p in model.named_parameters(remove_duplicate=False):
        by_id[id(p)] = by_id.get(id(p), False) or out[pname]
    return {pname: by_id[id(p)] for pname, p in model.named_parameters()}


def check_freeze_all_but(freeze_all_but, seed: int = 0) -> None:
    """``freeze_all_but(model, keep)``: only the modules named in ``keep`` (and their children) train."""
    name = "check_freeze_all_but"
    require_callable(name, freeze_all_but, "freeze_all_but", n_args=2)
    g = _gen(seed)
    last = int(torch.randint(2, 4, (), generator=g))
    cases = [("a 3-block GPT, keep ['blocks.2', 'ln_f']", 3, ["blocks.2", "ln_f"], False),
             ("a 12-block GPT, keep ['blocks.1']: blocks.10 and blocks.11 are other modules", 12, ["blocks.1"], False),
             ("a 2-block GPT, keep ['blocks.0.attn', 'blocks.1.mlp.fc']", 2, ["blocks.0.attn", "blocks.1.mlp.fc"],
              False),
             ("a 3-block GPT some of whose parameters were frozen before, keep ['blocks.1', 'ln_f']", 3,
              ["blocks.1", "ln_f"], True),
             ("a 2-block GPT, keep [] (everything frozen)", 2, [], False),
             (f"a {last + 1}-block GPT, keep ['blocks.{last}.mlp', 'pos_emb']", last + 1,
              [f"blocks.{last}.mlp", "pos_emb"], True)]
    for case, n_layer, keep, prefrozen in cases:
        model = _tiny_gpt(n_layer, g)
        if prefrozen:                       # an earlier freeze: the kept modules must train again
            for pname, p in model.named_parameters():
                p.requires_grad_(bool(torch.rand((), generator=g) < 0.5))
        state = copy.deepcopy(model.state_dict())
        got = call(name, freeze_all_but, model, list(keep), what=f"freeze_all_but(model, {keep})", bans=BANS[name])
        if got is not model:
            fail(name, case, "the same model (changed in place and returned)",
                 type(got).__name__ if got is not None else "None",
                 "set requires_grad on the model's own parameters and end with return model")
        if any(not torch.equal(v, state[k]) for k, v in model.state_dict().items()):
            fail(name, case, "the weights unchanged", "changed weights",
                 "freezing changes only which parameters train, not their values")
        expected = _expected_trainable(model, keep)
        actual = {pname: p.requires_grad for pname, p in model.named_parameters()}
        if actual != expected:
            wrong_on = sorted(k for k in expected if expected[k] != actual[k])
            too_many = [k for k in wrong_on if actual[k]]
            hint = "a parameter trains if and only if it belongs to one of the named modules (or a module inside one)"
            if any(k.startswith(tuple(p + "0" for p in keep) + tuple(p + "1" for p in keep)) for k in too_many):
                hint = ("'blocks.1' is not a prefix of 'blocks.10': match a module's name exactly, or "
                        "followed by a '.'")
            elif prefrozen and not too_many:
                hint = ("the kept parameters must have requires_grad True even if they were frozen before: "
                        "set it on every parameter, True or False")
            fail(name, f"{case}: requires_grad of {wrong_on[:4]}", {k: expected[k] for k in wrong_on[:4]},
                 {k: actual[k] for k in wrong_on[:4]}, hint)
    passed(name, "the named modules and their children train, nothing else, on 6 models")
