"""Scaling laws on a CPU: counting compute, sweeping model sizes, fitting power laws (lesson 09).

    from coursekit.scaling import non_embedding_params, training_flops, fit_power_law, sweep
    N = non_embedding_params(model)                  # Kaplan et al. (2020): embeddings left out
    C = training_flops(N, n_tokens)                  # about 6 N D: 2 N forward, 4 N backward
    law = fit_power_law(sizes, losses)               # L(N) = a N^-alpha + c
    law(4 * sizes[-1])                               # its prediction for a larger model
    curves = sweep(widths, data, n_steps)            # one training run per size, loss vs tokens

By default each run of ``sweep`` trains a small GPT at a constant learning rate after a
short warmup, so the validation loss recorded on the way (at log-spaced steps) is close to
what a run stopped there would reach: one run per size gives loss against compute for every
budget (an approximation of Hoffmann et al.'s first approach). ``schedule="cosine"`` decays
the learning rate to a tenth over the run, as real pre-training does: the final loss is then
lower, but only the last evaluation belongs to a finished run, so one run is needed per
(size, budget) pair (``benchmarks/scaling.py``, Hoffmann et al.'s second approach).
"""
from __future__ import annotations

import math
import time
from dataclasses import dataclass, field

import torch

from coursekit.data.text import get_batch
from coursekit.models.gpt import GPT, GPTConfig
from coursekit.train import progress as progress_bar


# --- counting ------------------------------------------------------------------------------------

def non_embedding_params(model: GPT) -> int:
    """Parameters of a GPT without its token and position embeddings (Kaplan et al.'s N).

    The output layer shares the token embedding's matrix (``tie_weights``), so it is left
    out with it; an untied output layer is an embedding of the vocabulary too and is
    left out as well.
    """
    skip = {id(model.tok_emb.weight), id(model.head.weight)}
    if hasattr(model, "pos_emb"):
        skip.add(id(model.pos_emb.weight))
    return sum(p.numel() for p in model.parameters() if id(p) not in skip)


def training_flops(n_params: int, n_tokens: int) -> float:
    """Training compute C = 6 N D floating-point operations (Kaplan et al., 2020, section 2.1).

    Each parameter costs a multiply and an add per token in the forward pass (2 N), and
    about twice that in the backward pass (4 N). The attention scores' own cost
    (2 n_layer T C per token forward) is left out, as in the paper: small when C >> T.
    """
    return 6.0 * n_params * n_tokens


# --- the power law --------------------------------------------------------------------------------

@dataclass
class PowerLaw:
    """L(N) = a N^-alpha + c: a power law with an irreducible loss c."""

    a: float
    alpha: float
    c: float

    def __call__(self, n) -> torch.Tensor | float:
        if isinstance(n, torch.Tensor):
            return self.a * n.double() ** -self.alpha + self.c
        return self.a * float(n) ** -self.alpha + self.c


def fit_power_law(sizes, losses, n_grid: int = 2000) -> PowerLaw:
    """Fit L(N) = a N^-alpha + c to measured (N, L) points.

    1. For each candidate c on a grid from 0 up to just below the smallest loss,
       log(L - c) = log a - alpha log N is a straight line: fit it by least squares.
    2. Keep the c whose curve has the smallest squared error in L itself.

    Args:
        sizes: model sizes N (at least 3, all positive).
        losses: the losses L measured at those sizes.
        n_grid: how many values of c to try.
    Returns:
        The fitted ``PowerLaw``.
    """
    n = torch.as_tensor(sizes, dtype=torch.float64)
    loss = torch.as_tensor(losses, dtype=torch.float64)
    if n.shape != loss.shape or n.numel() < 3:
        raise ValueError("need at least 3 sizes and one loss per size")
    x = n.log()                                                                 # (K,)
    X = torch.stack([torch.ones_like(x), x], 1)                                 # (K, 2)
    best = None
    for c in torch.linspace(0, float(loss.min()) * (1 - 1e-6), n_grid).tolist():
        coef = torch.linalg.lstsq(X, (loss - c).log()[:, None]).solution[:, 0]  # log a, -alpha
        law = PowerLaw(math.exp(coef[0]), -float(coef[1]), c)
        err = float(((law(n) - loss) ** 2).sum())
        if best is None or err < best[0]:
            best = (err, law)
    return best[1]


# --- the sweep ----------------------------------------------------------------------------------

def scaling_config(width: int, vocab_size: int, n_layer: int = 2, block_size: int = 64) -> GPTConfig:
    """The sweep's model of a given width: heads of 16 channels (at least one)."""
    return GPTConfig(vocab_size=vocab_size, block_size=block_size, n_layer=n_layer,
                     n_head=max(1, width // 16), n_embd=width)


@dataclass
class SizeRun:
    """One size of a sweep: its sizes, its loss against tokens, its speed."""

    width: int
    n_params: int                     # non-embedding parameters N
    tokens: list[int] = field(default_factory=list)    # tokens seen at each evaluation
    val_loss: list[float] = field(default_factory=list)  # validation loss there (nats per token)
    seconds: float = 0.0              # training time (evaluations excluded)

    @property
    def flops(self) -> list[float]:
        """Training compute 6 N D at each evaluation."""
        return [training_flops(self.n_params, d) for d in self.tokens]

    @property
    def flops_per_second(self) -> float:
        """Achieved training FLOP/s: 6 N D of the whole run over its measured time."""
        return training_flops(self.n_params, self.tokens[-1]) / max(self.seconds, 1e-9)

    def loss_at(self, flops: float) -> float:
        """Validation loss after ``flops`` of training (log-linear between evaluations);
        nan outside the evaluated range."""
        c = self.flops
        if not c[0] <= flops <= c[-1] * (1 + 1e-9):
            return float("nan")
        for i in range(1, len(c)):
            if flops <= c[i]:
                t = (math.log(flops) - math.log(c[i - 1])) / (math.log(c[i]) - math.log(c[i - 1]))
                return self.val_loss[i - 1] + t * (self.val_loss[i] - self.val_loss[i - 1])
        return self.val_loss[-1]


def learning_rate(step: int, n_steps: int, lr: float, warmup: int, schedule: str = "constant") -> float:
    """The learning rate at ``step`` (1 .. n_steps): linear warmup over ``warmup`` steps, then
    ``"constant"``, or ``"cosine"``: half a cosine from ``lr`` down to ``lr / 10`` at the last step."""
    if schedule not in ("constant", "cosine"):
        raise ValueError(f"schedule must be 'constant' or 'cosine', got {schedule!r}")
    rate = lr * min(1.0, step / max(warmup, 1))
    if schedule == "cosine" and step > warmup:
        done = (step - warmup) / max(n_steps - warmup, 1)                        # 0 -> 1
        rate = lr * (0.1 + 0.9 * 0.5 * (1 + math.cos(math.pi * done)))
    return rate


def train_size(cfg: GPTConfig, data, n_steps: int, *, batch_size: int = 16, lr: float = 3e-3,
               warmup: int = 20, schedule: str = "constant", n_evals: int = 12, seed: int = 0,
               val_tokens: int = 16_384, progress: bool = True) -> SizeRun:
    """Train one GPT of the sweep and record its validation loss at log-spaced steps.

    AdamW (weight decay 0.1 on matrices), linear warmup then a constant or cosine learning
    rate (``learning_rate``), gradient clipping at 1. The global random state is left as it was.

    Args:
        cfg: the model's sizes (``scaling_config``).
        data: an ``LMData``.
        n_steps: optimisation steps; tokens seen = n_steps x batch_size x block_size.
        batch_size, lr, warmup, schedule: the recipe.
        n_evals: how many evaluations, log-spaced from step 8 to the last step (1: the last only).
        seed: seeds weights and batches.
        val_tokens: how many validation tokens each evaluation reads (non-overlapping windows).
        progress: show a progress bar.
    Returns:
        A ``SizeRun``.
    """
    from coursekit.lm import lm_loss
    if n_steps < 1 or n_evals < 1:
        raise ValueError(f"n_steps and n_evals must be at least 1, got {n_steps} and {n_evals}")
    learning_rate(1, n_steps, lr, warmup, schedule)                             # a bad schedule fails here
    with torch.random.fork_rng():
        torch.manual_seed(seed)
        model = GPT(cfg).train()
        optimizer = model.configure_optimizer(lr=lr, weight_decay=0.1, betas=(0.9, 0.95))
        g = torch.Generator().manual_seed(seed)
        first = min(8, n_steps)
        evals = {n_steps} if n_evals == 1 else {round(math.exp(v)) for v in
                                                torch.linspace(math.log(first), math.log(n_steps), n_evals).tolist()}
        run = SizeRun(cfg.n_embd, non_embedding_params(model))
        val = data.val[:val_tokens + 1]
        seconds = 0.0
        bar = progress_bar(range(1, n_steps + 1), desc=f"width {cfg.n_embd}", disable=not progress)
        for step in bar:
            t0 = time.perf_counter()
            for group in optimizer.param_groups:
                group["lr"] = learning_rate(step, n_steps, lr, warmup, schedule)
            x, y = get_batch(data.train, cfg.block_size, batch_size, generator=g)   # (B, T)
            _, loss = model(x, y)
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
            optimizer.step()
            seconds += time.perf_counter() - t0
            if step in evals:
                run.tokens.append(step * batch_size * cfg.block_size)
                with torch.no_grad():
                    run.val_loss.append(lm_loss(model, val))
                model.train()
                bar.set_postfix(val=f"{run.val_loss[-1]:.3f}", refresh=False)
    run.seconds = seconds
    return run


def sweep(widths, data, n_steps, *, n_layer: int = 2, block_size: int = 64, seed: int = 0,
          progress: bool = True, **recipe) -> list[SizeRun]:
    """Train one model per width (``n_steps`` each, or one count per width) and return their runs."""
    steps = n_steps if isinstance(n_steps, (list, tuple)) else [n_steps] * len(widths)
    return [train_size(scaling_config(w, data.tokenizer.vocab_size, n_layer, block_size), data, s,
                       seed=seed, progress=progress, **recipe)
            for w, s in zip(widths, steps)]


def best_size(runs: list[SizeRun], flops: float) -> tuple[SizeRun, list[float]]:
    """At a compute budget, each size's loss and the size with the lowest (nan: budget out of range)."""
    losses = [r.loss_at(flops) for r in runs]
    finite = [(loss, i) for i, loss in enumerate(losses) if not math.isnan(loss)]
    if not finite:
        raise ValueError(f"no size of the sweep was evaluated at {flops:.3g} FLOPs")
    return runs[min(finite)[1]], losses
