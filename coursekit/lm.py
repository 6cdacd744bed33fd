"""The language-model toolkit of chapters 08-17: data, the training loop, loss, checkpoints.

Lesson 06 writes the loop out; this is the same loop, once, for every later chapter::

    from coursekit.lm import LMData, train_lm
    from coursekit.models.gpt import GPTConfig
    data = LMData.from_text(story_corpus(3000))               # character tokens by default
    cfg = GPTConfig.preset("story", vocab_size=data.tokenizer.vocab_size)
    run = train_lm(cfg, data, n_steps=800, seed=0)            # LMRun: model, history, config, tokenizer
    print(lm_loss(run.model, data.val))                       # nats per token, whole split
    save_lm(run, "story.pt"); run2 = load_lm("story.pt")

The recipe (``LMTrainConfig``): AdamW with weight decay on matrices, a linear warmup then
a linear decay to 0 at the last step, gradient clipping at 1. Measured in lesson 06: on a
2-core CPU more steps of a smaller model beat a larger one in the same minute.
"""
from __future__ import annotations

import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

import torch

from coursekit.data.text import CharTokenizer, Tokenizer, get_batch, tokenizer_from_state
from coursekit.models.gpt import GPT, GPTConfig
from coursekit.train import History, Run, train

CHECKPOINT_FORMAT = "coursekit-lm/1"


@dataclass
class LMData:
    """A tokenised corpus split in two: what ``train_lm`` trains and validates on."""

    tokenizer: Tokenizer   # turns text into ids and back
    train: torch.Tensor    # (N_train,) int64 token ids
    val: torch.Tensor      # (N_val,) int64 token ids: the last val_fraction of the text

    @classmethod
    def from_text(cls, text: str, tokenizer: Tokenizer | None = None,
                  val_fraction: float = 0.1) -> "LMData":
        """Tokenise ``text`` (with a ``CharTokenizer`` of it by default) and split it."""
        if not 0 < val_fraction < 1:
            raise ValueError(f"val_fraction must be between 0 and 1, got {val_fraction}")
        tokenizer = tokenizer or CharTokenizer(text)
        ids = tokenizer.encode(text)                                    # (N,)
        n = int(len(ids) * (1 - val_fraction))
        return cls(tokenizer, ids[:n], ids[n:])


@dataclass
class LMTrainConfig:
    """How ``train_lm`` optimises (lesson 06's recipe)."""

    batch_size: int = 16                      # sequences of block_size tokens per step
    lr: float = 6e-3                          # peak learning rate
    warmup: int = 30                          # steps of linear warmup from 0 to lr
    weight_decay: float = 0.1                 # AdamW decay on matrices (not biases, gains)
    betas: tuple[float, float] = (0.9, 0.95)  # AdamW's moment decays
    grad_clip: float = 1.0                    # largest gradient norm (0: no clipping)
    eval_every: int = 50                      # steps between validation losses (0: never)
    eval_batches: int = 4                     # random validation batches of 32 per estimate


@dataclass
class LMRun(Run):
    """``Run`` of a language model, with the tokenizer its ids belong to."""

    tokenizer: Tokenizer | None = None
    train_config: LMTrainConfig = field(default_factory=LMTrainConfig)

    def sample(self, prompt: str, max_new_tokens: int = 200, **decoding) -> str:
        """Text continuing ``prompt`` (decoding: temperature, top_k, top_p, generator...)."""
        device = next(self.model.parameters()).device
        idx = self.tokenizer.encode(prompt)[None].to(device)           # (1, T0)
        out = self.model.generate(idx, max_new_tokens, **decoding)      # (1, T0 + n)
        return self.tokenizer.decode(out[0].tolist())


def _lr_at(step: int, n_steps: int, tc: LMTrainConfig) -> float:
    """Linear warmup over ``tc.warmup`` steps, then linear decay to 0 at ``n_steps``."""
    return tc.lr * min(1.0, (step + 1) / max(tc.warmup, 1)) * (1 - step / max(n_steps, 1))


def train_lm(cfg: GPTConfig, data: LMData, n_steps: int, *, device=None, seed: int = 0,
             progress: bool = True, train_config: LMTrainConfig | None = None,
             model: GPT | None = None, desc: str = "language model") -> LMRun:
    """Train a GPT on next-token prediction.

    1. Build ``GPT(cfg)`` from ``seed`` (or continue training ``model``: fine-tuning).
    2. Each step: a batch of random windows of the training ids, the cross-entropy of
       every next token, an AdamW step at the scheduled learning rate.
    3. Every ``eval_every`` steps, the loss on fixed random validation windows.
    The global random state is left as it was: weights, batches and dropout draw from
    their own seeded streams.

    Args:
        cfg: the model's sizes; ``cfg.vocab_size`` must equal the tokenizer's.
        data: an ``LMData``.
        n_steps: optimisation steps (write it with ``coursekit.budget``).
        device: where to train (default CPU).
        seed: seeds the weights, the batches and dropout.
        progress: show a progress bar.
        train_config: the optimiser recipe (default ``LMTrainConfig()``).
        model: an existing GPT to keep training instead of a new one.
    Returns:
        An ``LMRun`` with the model in eval mode, the history ("loss", "lr", "val_loss"),
        the config, the tokenizer and the seconds the loop took.
    """
    tc = train_config or LMTrainConfig()
    if cfg.vocab_size != data.tokenizer.vocab_size:
        raise ValueError(f"cfg.vocab_size is {cfg.vocab_size} but the tokenizer has "
                         f"{data.tokenizer.vocab_size} tokens: build the config with "
                         "vocab_size=data.tokenizer.vocab_size")
    if len(data.train) <= cfg.block_size or len(data.val) <= cfg.block_size:
        raise ValueError(f"the splits have {len(data.train)} and {len(data.val)} tokens; both "
                         f"need more than block_size = {cfg.block_size}")
    device = torch.device(device or "cpu")
    with torch.random.fork_rng(devices=[device] if device.type == "cuda" else []):
        torch.manual_seed(seed)
        if model is None:
            model = GPT(cfg)
        model = model.to(device)
        model.train()
        optimizer = model.configure_optimizer(lr=tc.lr, weight_decay=tc.weight_decay, betas=tc.betas)
        batches = torch.Generator().manual_seed(seed)
        val_batches = [get_batch(data.val, cfg.block_size, 32,
                                 generator=torch.Generator().manual_seed(10_000 + seed + i), device=device)
                       for i in range(tc.eval_batches)]

        @torch.no_grad()
        def val_loss() -> float:
            model.eval()
            loss = sum(model(x, y)[1].item() for x, y in val_batches) / len(val_batches)
            model.train()
            return loss

        def step(i: int) -> dict[str, float]:
            lr = _lr_at(i, n_steps, tc)
            for group in optimizer.param_groups:
                group["lr"] = lr
            x, y = get_batch(data.train, cfg.block_size, tc.batch_size, generator=batches, device=device)
            _, loss = model(x, y)                                       # x, y: (B, T)
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            if tc.grad_clip:
                torch.nn.utils.clip_grad_norm_(model.parameters(), tc.grad_clip)
            optimizer.step()
            metrics = {"loss": loss.item(), "lr": lr}
            if tc.eval_every and (i % tc.eval_every == 0 or i == n_steps - 1):
                metrics["val_loss"] = val_loss()
            return metrics

        start = time.perf_counter()
        history = train(step, n_steps, desc=desc, show=progress)
        seconds = time.perf_counter() - start
    model.eval()
    return LMRun(model, history, cfg, seconds, tokenizer=data.tokenizer, train_config=tc)


@torch.no_grad()
def lm_loss(model: GPT, ids: torch.Tensor, block_size: int | None = None,
            batch_size: int = 64) -> float:
    """Mean next-token cross-entropy (nats per token) over a whole split.

    Every token after the first is predicted once, from non-overlapping windows of
    ``block_size`` tokens (so each prediction sees 0 to block_size - 1 tokens of context).

    Args:
        model: a GPT; ids: (N,) token ids; block_size: window (default the model's).
    Returns:
        The mean loss as a float.
    """
    block_size = block_size or model.config.block_size
    device = next(model.parameters()).device
    n_windows = (len(ids) - 1) // block_size
    if n_windows < 1:
        raise ValueError(f"{len(ids)} tokens are too few for one window of {block_size} + 1")
    x = ids[: n_windows * block_size].view(n_windows, block_size)             # (W, T)
    y = ids[1: n_windows * block_size + 1].view(n_windows, block_size)        # (W, T)
    was_training = model.training
    model.eval()
    total = 0.0
    for xb, yb in zip(x.split(batch_size), y.split(batch_size)):
        _, loss = model(xb.to(device), yb.to(device))
        total += loss.item() * xb.numel()
    model.train(was_training)
    return total / x.numel()


# --- checkpoints ---------------------------------------------------------------------------

def lm_state(run: LMRun) -> dict:
    """Everything needed to rebuild ``run`` as plain data and tensors (``weights_only`` safe)."""
    return {"format": CHECKPOINT_FORMAT, "config": asdict(run.config),
            "tokenizer": run.tokenizer.state(),
            "train_config": {k: (list(v) if isinstance(v, tuple) else v)
                             for k, v in asdict(run.train_config).items()},
            "state_dict": {k: v.detach().cpu() for k, v in run.model.state_dict().items()},
            "history": run.history.state(),
            "seconds": float(run.seconds)}


def lm_from_state(state: dict, device=None) -> LMRun:
    """The ``LMRun`` that ``lm_state`` described; raises ValueError if it is not one."""
    if not isinstance(state, dict) or state.get("format") != CHECKPOINT_FORMAT:
        raise ValueError(f"not a coursekit language-model checkpoint (format "
                         f"{state.get('format') if isinstance(state, dict) else type(state).__name__!r}, "
                         f"expected {CHECKPOINT_FORMAT!r})")
    cfg = GPTConfig(**state["config"])
    model = GPT(cfg)
    model.load_state_dict(state["state_dict"], strict=True)
    model.to(device or "cpu").eval()
    history = History.from_state(state["history"])
    tc = dict(state["train_config"])
    tc["betas"] = tuple(tc["betas"])
    return LMRun(model, history, cfg, state["seconds"], tokenizer=tokenizer_from_state(state["tokenizer"]),
                 train_config=LMTrainConfig(**tc))


def save_lm(run: LMRun, path: str | Path) -> Path:
    """Write ``run`` to ``path`` (a ``torch.save`` file of plain data and tensors)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    torch.save(lm_state(run), path)
    return path


def load_lm(path: str | Path, device=None) -> LMRun:
    """Read a checkpoint written by ``save_lm``, with ``weights_only=True`` (no code runs)."""
    return lm_from_state(torch.load(Path(path), map_location="cpu", weights_only=True), device)
