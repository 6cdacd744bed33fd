"""Fine-tuning a trained GPT: freezing layers and low-rank adapters (LoRA), chapter 10.

LoRA (Hu, Shen, Wallis, Allen-Zhu, Li, Wang, Wang and Chen, 2021, "LoRA: Low-Rank
Adaptation of Large Language Models") keeps a trained weight W (out x in) frozen and
learns a low-rank change beside it::

    h = W x + b + (alpha / r) * B A x        A: (r x in), B: (out x r), r << in, out

B starts at zero, so the adapted model starts as the trained one; only A and B are
trained: r * (in + out) numbers instead of in * out. After training, B A can be added to W
(``merge_lora``), and the merged model is an ordinary GPT that computes the same outputs
at no extra cost.

    model = copy.deepcopy(ck.zoo.load("story-gpt").model)
    add_lora(model, LoRAConfig.preset("attn-mlp"))       # every chosen nn.Linear -> LoRALinear
    count_parameters(model)                              # {"trainable": ..., "total": ...}
    run = finetune(base_run, news_data, n_steps=150, method="lora")
    merged = merge_lora(run.model)                       # plain nn.Linear layers again
"""
from __future__ import annotations

import copy
import math
from dataclasses import dataclass, replace

import torch
from torch import nn

from coursekit.models.presets import Presets


@dataclass
class LoRAConfig(Presets):
    """Where the adapters go and how large they are."""

    r: int = 4                         # rank of the update B A
    alpha: float = 8.0                 # the update is scaled by alpha / r
    targets: tuple[str, ...] = ("attn.qkv", "attn.proj", "mlp.fc", "mlp.proj")   # name endings of the nn.Linear to adapt

    def __post_init__(self):
        if not isinstance(self.r, int) or self.r < 1:
            raise ValueError(f"r must be a positive int, got {self.r!r}")
        self.targets = tuple(self.targets)


PRESETS: dict[str, LoRAConfig] = {
    # every linear of every block, rank 4: ~5% of the story model's parameters
    "attn-mlp": LoRAConfig(r=4, alpha=8.0),
    # attention only, as in the LoRA paper's main experiments (W_Q, W_K, W_V and W_O)
    "attn": LoRAConfig(r=8, alpha=16.0, targets=("attn.qkv", "attn.proj")),
    # the smallest: rank 1 on the attention's input projection
    "qkv-r1": LoRAConfig(r=1, alpha=2.0, targets=("attn.qkv",)),
}


class LoRALinear(nn.Module):
    """An ``nn.Linear`` with a frozen weight and a trainable low-rank update beside it.

    Args:
        base: the trained layer (its weight and bias are frozen, not copied).
        r: rank of the update.
        alpha: the update is multiplied by ``alpha / r`` (so changing r keeps its size).
    """

    def __init__(self, base: nn.Linear, r: int = 4, alpha: float = 8.0):
        super().__init__()
        if not isinstance(base, nn.Linear):
            raise TypeError(f"LoRALinear wraps an nn.Linear, got {type(base).__name__}")
        if not isinstance(r, int) or not 1 <= r <= min(base.in_features, base.out_features):
            raise ValueError(f"r must be an int from 1 to {min(base.in_features, base.out_features)}, got {r!r}")
        self.base = base
        for p in self.base.parameters():
            p.requires_grad_(False)
        self.r, self.alpha, self.scale = r, alpha, alpha / r
        w = base.weight
        # A like nn.Linear's own initialisation (Kaiming uniform), B zero: B A = 0 at the start
        self.A = nn.Parameter(torch.empty(r, base.in_features, device=w.device, dtype=w.dtype))   # (r, in)
        self.B = nn.Parameter(torch.zeros(base.out_features, r, device=w.device, dtype=w.dtype))  # (out, r)
        nn.init.kaiming_uniform_(self.A, a=math.sqrt(5))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """x: (..., in) -> (..., out): the frozen layer plus the scaled low-rank path."""
        down = x @ self.A.T                       # (..., r): the rank-r bottleneck
        return self.base(x) + self.scale * (down @ self.B.T)   # (..., out)

    def delta_weight(self) -> torch.Tensor:
        """The update the adapter adds to the weight: (alpha / r) B A, shape (out, in)."""
        return self.scale * (self.B @ self.A)

    def merged(self) -> nn.Linear:
        """A plain ``nn.Linear`` with weight W + (alpha / r) B A and the same bias."""
        base = self.base
        out = nn.Linear(base.in_features, base.out_features, bias=base.bias is not None,
                        device=base.weight.device, dtype=base.weight.dtype)
        with torch.no_grad():
            out.weight.copy_(base.weight + self.delta_weight())
            if base.bias is not None:
                out.bias.copy_(base.bias)
        return out

    def extra_repr(self) -> str:
        return f"r={self.r}, alpha={self.alpha}"


def _set_child(model: nn.Module, name: str, child: nn.Module) -> None:
    parent, _, attr = name.rpartition(".")
    setattr(model.get_submodule(parent) if parent else model, attr, child)


def freeze(model: nn.Module, keep: tuple[str, ...] = ()) -> nn.Module:
    """Set ``requires_grad`` False on every parameter whose name does not start with one of ``keep``.

    ``freeze(model, keep=("blocks.2.", "ln_f."))`` trains only the last block of a 3-block
    GPT and the final LayerNorm. Returns the model (changed in place).
    """
    for name, p in model.named_parameters():
        p.requires_grad_(any(name.startswith(k) for k in keep))
    return model


def add_lora(model: nn.Module, config: LoRAConfig | None = None, *, seed: int = 0) -> nn.Module:
    """Freeze ``model`` and wrap each ``nn.Linear`` whose name ends with a target in a ``LoRALinear``.

    Args:
        model: a GPT (or any module); changed in place.
        config: rank, alpha and targets (default ``LoRAConfig()``).
        seed: seeds the A matrices (the global random state is left as it was).
    Returns:
        The model, with only the adapters' A and B trainable.
    """
    config = config or LoRAConfig()
    freeze(model)
    names = [n for n, m in model.named_modules()
             if isinstance(m, nn.Linear) and any(n == t or n.endswith("." + t) for t in config.targets)]
    if not names:
        raise ValueError(f"no nn.Linear in the model has a name ending with one of {config.targets}")
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        for name in names:
            _set_child(model, name, LoRALinear(model.get_submodule(name), config.r, config.alpha))
    return model


def count_parameters(model: nn.Module) -> dict[str, int]:
    """``{"trainable": n, "total": N}``: numbers in parameters that require a gradient, and all.

    A parameter shared by two layers (tied embeddings) counts once, as ``model.parameters()``
    yields it once.
    """
    params = list(model.parameters())
    return {"trainable": sum(p.numel() for p in params if p.requires_grad),
            "total": sum(p.numel() for p in params)}


def merge_lora(model: nn.Module) -> nn.Module:
    """A copy of ``model`` with every ``LoRALinear`` replaced by its merged ``nn.Linear``.

    The copy computes the same outputs (up to float rounding) with the original layers'
    cost; ``model`` itself is left as it is.
    """
    merged = copy.deepcopy(model)
    for name, module in list(merged.named_modules()):
        if isinstance(module, LoRALinear):
            _set_child(merged, name, module.merged())
    return merged


# --- fine-tuning a language model -------------------------------------------------------

METHODS = ("scratch", "full", "last-block", "lora")


def prepare(base_model: nn.Module, method: str, *, lora: LoRAConfig | None = None, seed: int = 0) -> nn.Module:
    """A copy of ``base_model`` ready to fine-tune with ``method``.

    Methods: "scratch" (a new GPT of the same size, all trainable), "full" (every weight
    trainable), "last-block" (only the last block and the final LayerNorm), "lora"
    (``add_lora`` with ``lora``).
    """
    if method not in METHODS:
        raise ValueError(f"method must be one of {METHODS}, got {method!r}")
    if method == "scratch":
        from coursekit.models.gpt import GPT
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(seed)
            return GPT(base_model.config).to(next(base_model.parameters()).device)
    model = copy.deepcopy(base_model)
    if method == "full":
        return freeze(model, keep=("",))
    if method == "last-block":
        return freeze(model, keep=(f"blocks.{len(model.blocks) - 1}.", "ln_f."))
    return add_lora(model, lora, seed=seed)


# Peak learning rates: a trained model needs a gentler step than a new one, an adapter a larger
# one (it starts at zero). LoRA's 2e-2 was the best of 5e-3, 1e-2, 2e-2 and 5e-2 for the
# "attn-mlp" preset on lesson 10's news domain (300 steps, new-domain loss); the others were
# not tuned.
LEARNING_RATES = {"scratch": 6e-3, "full": 1e-3, "last-block": 2e-3, "lora": 2e-2}


def finetune(base_run, data, n_steps: int, *, method: str = "lora", lora: LoRAConfig | None = None,
             lr: float | None = None, context: int | None = None, batch_size: int = 16, device=None,
             seed: int = 0, progress: bool = True):
    """Fine-tune a trained language model (an ``LMRun``, e.g. ``ck.zoo.load("story-gpt")``).

    1. ``prepare`` a copy of the model for ``method`` (the base run is not changed).
    2. Train it on ``data`` (an ``LMData`` with the base run's tokenizer) with
       ``coursekit.lm.train_lm``: only parameters with ``requires_grad`` change.

    Args:
        base_run: the trained run to start from.
        data: the new domain's ``LMData``.
        n_steps: optimisation steps (write it with ``coursekit.budget``).
        method: "scratch", "full", "last-block" or "lora".
        lora: the adapters' config for "lora" (default ``LoRAConfig.preset("attn-mlp")``).
        lr: peak learning rate (default ``LEARNING_RATES[method]``).
        context: train on windows of this many tokens (default the model's block size; a
            shorter window makes each step cheaper when the new texts are short).
        batch_size: windows per step.
        device, seed, progress: as for ``train_lm``.
    Returns:
        An ``LMRun`` whose model is the fine-tuned copy.
    """
    from coursekit.lm import LMTrainConfig, train_lm
    model = prepare(base_run.model, method, lora=lora or PRESETS["attn-mlp"], seed=seed)
    tc = LMTrainConfig(lr=lr if lr is not None else LEARNING_RATES[method], warmup=10, eval_every=0,
                       batch_size=batch_size)
    cfg = replace(base_run.config, block_size=context or base_run.config.block_size)   # windows of the batches
    run = train_lm(cfg, data, n_steps, device=device, seed=seed, progress=progress,
                   train_config=tc, model=model, desc=f"fine-tune: {method}")
    run.config = base_run.config                                  # the model's own sizes
    return run
