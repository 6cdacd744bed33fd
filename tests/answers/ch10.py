"""Chapter 10's answer table: right answers written apart from the checks' references,
and the typical mistakes and dodges each check must refuse (see answers/__init__.py)."""
from __future__ import annotations

import math

import torch
import torch.nn.utils.parametrize  # noqa: F401 (the dodge below)
from torch import nn

import coursekit.models.lora as L
from answers import Case

# --- right answers (another coding than the checks' references) ---------------------------


class LoRALinear(nn.Module):
    def __init__(self, base, r, alpha):
        super().__init__()
        self.base = base.requires_grad_(False)
        self.scale = alpha / r
        self.A = nn.Parameter(torch.randn(r, base.in_features) / math.sqrt(base.in_features))
        self.B = nn.Parameter(torch.zeros(base.out_features, r))

    def forward(self, x):
        return self.base(x) + torch.einsum("...i,ri,or->...o", x, self.A, self.B) * self.scale


def merge_lora_layer(layer):
    base = layer.base
    out = nn.Linear(base.in_features, base.out_features, bias=base.bias is not None)
    delta = torch.einsum("or,ri->oi", layer.B, layer.A) * (layer.alpha / layer.r)
    out.weight = nn.Parameter((base.weight + delta).detach().clone())
    if base.bias is not None:
        out.bias = nn.Parameter(base.bias.detach().clone())
    return out


def freeze_all_but(model, keep):
    keep_params = set()
    for mname, module in model.named_modules():
        if mname in keep:
            keep_params.update(id(p) for p in module.parameters())
    for p in model.parameters():
        p.requires_grad = id(p) in keep_params
    return model


RIGHT = [
    Case("check_lora_linear", LoRALinear, why="einsum"),
    Case("check_lora_linear", LoRALinear, why="another seed", kwargs={"seed": 4}),
    Case("check_merge_lora_layer", merge_lora_layer, why="einsum, new parameters"),
    Case("check_merge_lora_layer", merge_lora_layer, why="another seed", kwargs={"seed": 6}),
    Case("check_freeze_all_but", freeze_all_but, why="module sets"),
    Case("check_freeze_all_but", freeze_all_but, why="another seed", kwargs={"seed": 2}),
]


# --- wrong answers --------------------------------------------------------------------------

def _lora(*, scale=lambda r, a: a / r, b_zero=True, a_zero=False, freeze=True, shapes="right", detach=False):
    """A configurable LoRALinear: each switch turned off is one typical mistake."""
    class Wrong(nn.Module):
        def __init__(self, base, r, alpha):
            super().__init__()
            self.base = base
            if freeze:
                base.requires_grad_(False)
            self.s = scale(r, alpha)
            a_shape = (r, base.in_features) if shapes == "right" else (base.in_features, r)
            self.A = nn.Parameter(torch.zeros(a_shape) if a_zero else 0.1 * torch.randn(a_shape))
            b_shape = (base.out_features, r)
            self.B = nn.Parameter(torch.zeros(b_shape) if b_zero else 0.1 * torch.randn(b_shape))

        def forward(self, x):
            A = self.A if shapes == "right" else self.A.T
            A = A.detach() if detach else A
            return self.base(x) + self.s * (x @ A.T @ self.B.T)
    return Wrong


class _SubclassDodge(L.LoRALinear):
    pass


class _WrapsCoursekit(nn.Module):
    def __init__(self, base, r, alpha):
        super().__init__()
        self.inner = L.LoRALinear(base, r, alpha)
        self.A, self.B = self.inner.A, self.inner.B

    def forward(self, x):
        return self.inner(x)


class _WeightCopyTrains(nn.Module):     # copies W into a new trainable parameter
    def __init__(self, base, r, alpha):
        super().__init__()
        self.W = nn.Parameter(base.weight.detach().clone())
        self.b = base.bias
        base.requires_grad_(False)
        self.A = nn.Parameter(0.1 * torch.randn(r, base.in_features))
        self.B = nn.Parameter(torch.zeros(base.out_features, r))
        self.s = alpha / r

    def forward(self, x):
        y = x @ (self.W + self.s * self.B @ self.A).T
        return y + self.b if self.b is not None else y


class _Parametrized(nn.Module):     # folds B A into the weight with a parametrisation
    class _Delta(nn.Module):
        def __init__(self, A, B, scale):
            super().__init__()
            self.A, self.B, self.scale = A, B, scale

        def forward(self, W):
            return W + self.scale * self.B @ self.A

    def __init__(self, base, r, alpha):
        super().__init__()
        base.requires_grad_(False)
        self.A = nn.Parameter(0.1 * torch.randn(r, base.in_features))
        self.B = nn.Parameter(torch.zeros(base.out_features, r))
        torch.nn.utils.parametrize.register_parametrization(base, "weight", self._Delta(self.A, self.B, alpha / r))
        self.base = base

    def forward(self, x):
        return self.base(x)


def _merge(*, scale=True, bias=True, in_place=False):
    def merge(layer):
        base = layer.base
        out = nn.Linear(base.in_features, base.out_features, bias=base.bias is not None)
        with torch.no_grad():
            delta = layer.B @ layer.A * (layer.alpha / layer.r if scale else 1.0)
            if in_place:
                base.weight += delta
                out.weight.copy_(base.weight)
            else:
                out.weight.copy_(base.weight + delta)
            if base.bias is not None:
                out.bias.copy_(base.bias if bias else torch.zeros_like(base.bias))
        return out
    return merge


def _returns_lora(layer):
    return layer


def _via_merged(layer):
    return layer.merged()


def _via_merge_lora(layer):
    return L.merge_lora(nn.Sequential(layer))[0]


_delta = L.LoRALinear.delta_weight


def _via_delta_alias(layer):
    out = nn.Linear(layer.base.in_features, layer.base.out_features, bias=layer.base.bias is not None)
    with torch.no_grad():
        out.weight.copy_(layer.base.weight + _delta(layer))
        if layer.base.bias is not None:
            out.bias.copy_(layer.base.bias)
    return out


def _freeze_prefix(model, keep):        # 'blocks.1' also matches 'blocks.10'
    for name, p in model.named_parameters():
        p.requires_grad = any(name.startswith(k) for k in keep)
    return model


def _freeze_only_others(model, keep):   # never sets True: an earlier freeze stays
    for name, p in model.named_parameters():
        if not any(name.startswith(k + ".") for k in keep):
            p.requires_grad = False
    return model


def _freeze_no_return(model, keep):
    freeze_all_but(model, keep)


def _freeze_everything_but_names(model, keep):   # compares the parameter's own name, not its module's
    for name, p in model.named_parameters():
        p.requires_grad = name.rsplit(".", 1)[-1] in keep
    return model


WRONG = [
    # LoRALinear
    Case("check_lora_linear", _lora(scale=lambda r, a: 1.0), "multiplied by alpha / r", "no scale"),
    Case("check_lora_linear", _lora(scale=lambda r, a: a), "not alpha", "scale alpha"),
    Case("check_lora_linear", _lora(scale=lambda r, a: r / a), "not r / alpha", "scale r / alpha"),
    Case("check_lora_linear", _lora(b_zero=False), "B starts at zero", "B random at init"),
    Case("check_lora_linear", _lora(a_zero=True), "nothing ever trains", "A and B zero"),
    Case("check_lora_linear", _lora(freeze=False), "frozen", "base not frozen"),
    Case("check_lora_linear", _lora(shapes="transposed"), "transposed", "A stored (in, r)"),
    Case("check_lora_linear", _lora(detach=True), "gradients after backward", "A detached"),
    Case("check_lora_linear", _WeightCopyTrains, "which parameters train", "a trainable copy of W"),
    Case("check_lora_linear", _SubclassDodge, "coursekit", "subclass of coursekit's"),
    Case("check_lora_linear", _WrapsCoursekit, "coursekit.models.lora.LoRALinear", "wraps coursekit's"),
    Case("check_lora_linear", _Parametrized, "register_parametrization", "a parametrisation of W"),
    # merge_lora_layer
    Case("check_merge_lora_layer", _merge(scale=False), "multiplied by alpha / r", "no scale"),
    Case("check_merge_lora_layer", _merge(bias=False), "bias", "bias dropped"),
    Case("check_merge_lora_layer", _merge(in_place=True), "unchanged", "writes into the base weight"),
    Case("check_merge_lora_layer", _returns_lora, "plain nn.Linear", "returns the LoRA layer"),
    Case("check_merge_lora_layer", _via_merged, "merged", "LoRALinear.merged"),
    Case("check_merge_lora_layer", _via_merge_lora, "coursekit.models.lora.merge_lora", "coursekit's merge_lora"),
    Case("check_merge_lora_layer", _via_delta_alias, "delta_weight", "alias of delta_weight"),
    # freeze_all_but
    Case("check_freeze_all_but", _freeze_prefix, "not a prefix", "startswith without a dot"),
    Case("check_freeze_all_but", _freeze_only_others, "frozen before", "never sets True"),
    Case("check_freeze_all_but", _freeze_no_return, "return model", "returns None"),
    Case("check_freeze_all_but", _freeze_everything_but_names, "named modules", "parameter names"),
    Case("check_freeze_all_but", lambda model, keep: L.freeze(model, tuple(k + "." for k in keep)),
         "coursekit.models.lora.freeze", "coursekit's freeze"),
    Case("check_freeze_all_but", lambda model, keep: getattr(L, "fre" + "eze")(model, tuple(k + "." for k in keep)),
         "coursekit.models.lora.freeze", "getattr freeze"),
]
