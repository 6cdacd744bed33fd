"""A masked language model (a small BERT): the same Transformer blocks, attention both ways.

BERT (Devlin, Chang, Lee and Toutanova, 2019) pre-trains an encoder by hiding some
tokens and asking for them back: about 15% of the positions are chosen; of those, 80%
become a ``[MASK]`` token, 10% a random token and 10% stay as they were; the loss is the
cross-entropy at the chosen positions only (the others carry the label -100, which
``F.cross_entropy`` ignores). Without a causal mask every position reads both sides.

    from coursekit.models.mlm import MLMConfig, MaskedLM, mask_tokens, train_mlm
    cfg = MLMConfig.preset("story", vocab_size=tok.vocab_size + 1)    # + 1: the mask token
    x, y = mask_tokens(ids, mask_id=tok.vocab_size, vocab_size=tok.vocab_size + 1)
    logits, loss = MaskedLM(cfg)(x, y)                                # (B, T, V), loss at masked positions

On characters, masking single characters teaches spelling (the neighbours give the
letter away); ``whole_words`` masks every character of a chosen word at once, so the
model must recover words from the rest of the text (as in BERT's whole-word masking).

Shapes: B = batch, T = time (tokens), C = channels (n_embd), H = heads, D = C / H.
"""
from __future__ import annotations

import time
from dataclasses import dataclass

import torch
import torch.nn as nn
import torch.nn.functional as F
from einops import rearrange

from coursekit.models.gpt import GPT, FeedForward
from coursekit.models.presets import Presets
from coursekit.train import Run, train

IGNORE = -100   # the label F.cross_entropy skips (its default ignore_index)


@dataclass
class MLMConfig(Presets):
    """Sizes of a masked language model. The last id of the vocabulary is the mask token."""

    vocab_size: int = 66          # tokens, the mask token included (V)
    block_size: int = 128         # longest input (T at most)
    n_layer: int = 3              # Transformer blocks
    n_head: int = 4               # attention heads per block (H); must divide n_embd
    n_embd: int = 96              # width of the residual stream (C)
    dropout: float = 0.0          # dropout on attention weights and residual branches
    bias: bool = True             # biases in the feed-forward layers
    mask_rate: float = 0.15       # share of positions (or of words) chosen for prediction
    whole_words: bool = True      # choose whole words (runs of letters), not single characters

    def __post_init__(self):
        if self.n_embd % self.n_head != 0:
            raise ValueError(f"n_embd ({self.n_embd}) must be divisible by n_head ({self.n_head})")
        if not 0 < self.mask_rate < 1:
            raise ValueError(f"mask_rate must be between 0 and 1, got {self.mask_rate}")

    @property
    def mask_id(self) -> int:
        """The id of the mask token: the last of the vocabulary."""
        return self.vocab_size - 1


PRESETS: dict[str, MLMConfig] = {
    "mlm-pico": MLMConfig(n_layer=2, n_head=2, n_embd=32, block_size=32),   # unit tests
    "story": MLMConfig(n_layer=3, n_head=4, n_embd=96, block_size=128),     # lesson 09: story-gpt's sizes
}


# --- masking: the data makes its own labels ----------------------------------------------------

def mask_tokens(ids: torch.Tensor, mask_id: int, vocab_size: int, rate: float = 0.15, *,
                generator: torch.Generator | None = None,
                letters: torch.Tensor | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    """BERT's masked-LM (input, target) pairs.

    1. Choose positions with probability ``rate`` (with ``letters``, choose whole words:
       each run of letter tokens is chosen with probability ``rate``, all of it at once).
    2. Of the chosen positions, 80% get ``mask_id``, 10% a random token (never the mask),
       10% keep their token.
    3. The target is the original token at chosen positions and -100 everywhere else.

    Args:
        ids: (B, T) int64 token ids (no mask token in them).
        mask_id: id of the mask token.
        vocab_size: size of the vocabulary, the mask token included (random tokens are
            drawn from the others).
        rate: probability a position (or a word) is chosen.
        generator: a torch.Generator for the draws.
        letters: optional (vocab_size,) bool, True for the ids of letters: whole-word mode.
    Returns:
        inputs (B, T) and targets (B, T), int64.
    """
    if ids.dim() != 2:
        raise ValueError(f"ids must be (B, T), got shape {tuple(ids.shape)}")
    B, T = ids.shape
    if letters is None:
        chosen = torch.rand(B, T, generator=generator) < rate                  # (B, T)
    else:
        is_letter = letters[ids]                                                # (B, T)
        starts = is_letter & ~F.pad(is_letter[:, :-1], (1, 0), value=False)    # first letter of a word
        word = starts.long().cumsum(-1)                                          # (B, T) word number
        pick = torch.rand(B, T + 1, generator=generator) < rate                 # one draw per word
        chosen = is_letter & pick.gather(1, word)                               # (B, T)
    kind = torch.rand(B, T, generator=generator)                                # 80 / 10 / 10
    random_ids = torch.randint(0, vocab_size - 1, (B, T), generator=generator)
    random_ids = random_ids + (random_ids >= mask_id).long()                    # skip the mask id
    inputs = torch.where(chosen & (kind < 0.8), torch.full_like(ids, mask_id), ids)
    inputs = torch.where(chosen & (kind >= 0.8) & (kind < 0.9), random_ids, inputs)
    targets = torch.where(chosen, ids, torch.full_like(ids, IGNORE))
    return inputs, targets


def letter_table(tokenizer, vocab_size: int) -> torch.Tensor:
    """(vocab_size,) bool: True for the ids whose token is a letter (for whole-word masking)."""
    table = torch.zeros(vocab_size, dtype=torch.bool)
    for i in range(tokenizer.vocab_size):
        table[i] = tokenizer.decode([i]).isalpha()
    return table


# --- the model ----------------------------------------------------------------------------------

class SelfAttention(nn.Module):
    """Multi-head self-attention without a causal mask: every position reads every other."""

    def __init__(self, config: MLMConfig):
        super().__init__()
        self.n_head = config.n_head
        self.dropout = config.dropout
        self.qkv = nn.Linear(config.n_embd, 3 * config.n_embd)
        self.proj = nn.Linear(config.n_embd, config.n_embd)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """x: (B, T, C) -> (B, T, C)."""
        q, k, v = self.qkv(x).chunk(3, dim=-1)                                  # 3 x (B, T, C)
        q, k, v = (rearrange(t, "b t (h d) -> b h t d", h=self.n_head) for t in (q, k, v))
        y = F.scaled_dot_product_attention(q, k, v, is_causal=False,            # (B, H, T, D)
                                           dropout_p=self.dropout if self.training else 0.0)
        return self.proj(rearrange(y, "b h t d -> b t (h d)"))                  # (B, T, C)


class EncoderBlock(nn.Module):
    """Pre-LayerNorm block, as in the GPT, with two-way attention."""

    def __init__(self, config: MLMConfig):
        super().__init__()
        self.ln1 = nn.LayerNorm(config.n_embd)
        self.attn = SelfAttention(config)
        self.ln2 = nn.LayerNorm(config.n_embd)
        self.mlp = FeedForward(config)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = x + self.attn(self.ln1(x))
        return x + self.mlp(self.ln2(x))


class MaskedLM(nn.Module):
    """A Transformer encoder that predicts the token at every position from both sides.

    ``forward(idx, targets=None) -> (logits, loss)``; ``features(idx)`` gives the (B, T, C)
    hidden states before the output layer (for probes).
    """

    def __init__(self, config: MLMConfig):
        super().__init__()
        self.config = config
        self.tok_emb = nn.Embedding(config.vocab_size, config.n_embd)
        self.pos_emb = nn.Embedding(config.block_size, config.n_embd)
        self.blocks = nn.ModuleList(EncoderBlock(config) for _ in range(config.n_layer))
        self.ln_f = nn.LayerNorm(config.n_embd)
        self.head = nn.Linear(config.n_embd, config.vocab_size, bias=False)
        self.head.weight = self.tok_emb.weight                                 # tied, as in the GPT
        self.apply(GPT._init_weights)                                           # the GPT's: N(0, 0.02), zero biases

    num_params = GPT.num_params                       # trained parameters, the tied matrix counted once
    configure_optimizer = GPT.configure_optimizer     # AdamW, weight decay on matrices only

    def features(self, idx: torch.Tensor) -> torch.Tensor:
        """Token ids (B, T) -> final hidden states (B, T, C), after the last LayerNorm."""
        T = idx.shape[1]
        if T > self.config.block_size:
            raise ValueError(f"{T} tokens are more than block_size {self.config.block_size}")
        x = self.tok_emb(idx) + self.pos_emb.weight[:T]                         # (B, T, C)
        for block in self.blocks:
            x = block(x)
        return self.ln_f(x)

    def forward(self, idx: torch.Tensor, targets: torch.Tensor | None = None):
        """Logits (B, T, V) for every position, and the loss over targets that are not -100."""
        logits = self.head(self.features(idx))                                   # (B, T, V)
        loss = None
        if targets is not None:
            loss = F.cross_entropy(rearrange(logits, "b t v -> (b t) v"),
                                   rearrange(targets, "b t -> (b t)"), ignore_index=IGNORE)
        return logits, loss

    @torch.no_grad()
    def fill(self, idx: torch.Tensor) -> torch.Tensor:
        """Replace every mask token in ``idx`` (B, T) by the model's most likely token, all at once."""
        logits, _ = self(idx)
        best = logits[..., : self.config.vocab_size - 1].argmax(-1)            # never the mask itself
        return torch.where(idx == self.config.mask_id, best, idx)


# --- training --------------------------------------------------------------------------------------

def train_mlm(cfg: MLMConfig, data, n_steps: int, *, device=None, seed: int = 0,
              progress: bool = True, batch_size: int = 16, lr: float = 6e-3,
              desc: str = "masked LM") -> Run:
    """Pre-train a ``MaskedLM`` on an ``LMData`` corpus with BERT's masking.

    1. Each step: a batch of random windows of ``data.train``, masked by ``mask_tokens``
       (whole words when ``cfg.whole_words``), the loss at the chosen positions.
    2. AdamW with weight decay on matrices, linear warmup (30 steps) and linear decay,
       gradient clipping at 1: the recipe of ``coursekit.lm.train_lm``.
    The global random state is left as it was.

    Args:
        cfg: sizes; ``cfg.vocab_size`` must be the tokenizer's plus one (the mask token).
        data: an ``LMData`` (its tokenizer and train/val ids).
        n_steps: optimisation steps.
        device, seed, progress: as in ``train_lm``.
    Returns:
        A Run (model in eval mode; history "loss" and "val_loss" every 50 steps).
    """
    from coursekit.data.text import get_batch
    if cfg.vocab_size != data.tokenizer.vocab_size + 1:
        raise ValueError(f"cfg.vocab_size is {cfg.vocab_size}; a masked model of this tokenizer needs "
                         f"{data.tokenizer.vocab_size + 1} (its tokens and the mask token)")
    device = torch.device(device or "cpu")
    letters = letter_table(data.tokenizer, cfg.vocab_size) if cfg.whole_words else None
    with torch.random.fork_rng(devices=[device] if device.type == "cuda" else []):
        torch.manual_seed(seed)
        model = MaskedLM(cfg).to(device).train()
        optimizer = model.configure_optimizer(lr=lr, weight_decay=0.1, betas=(0.9, 0.95))
        g = torch.Generator().manual_seed(seed)
        vg = torch.Generator().manual_seed(10_000 + seed)
        val = [mask_tokens(get_batch(data.val, cfg.block_size, 32, generator=vg)[0], cfg.mask_id,
                           cfg.vocab_size, cfg.mask_rate, generator=vg, letters=letters) for _ in range(4)]

        def step(i: int) -> dict:
            rate = lr * min(1.0, (i + 1) / 30) * (1 - i / max(n_steps, 1))
            for group in optimizer.param_groups:
                group["lr"] = rate
            x, _ = get_batch(data.train, cfg.block_size, batch_size, generator=g)      # (B, T)
            inputs, targets = mask_tokens(x, cfg.mask_id, cfg.vocab_size, cfg.mask_rate,
                                          generator=g, letters=letters)
            _, loss = model(inputs.to(device), targets.to(device))
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
            optimizer.step()
            out = {"loss": loss.item()}
            if i % 50 == 0 or i == n_steps - 1:
                model.eval()
                with torch.no_grad():
                    out["val_loss"] = sum(model(a.to(device), b.to(device))[1].item() for a, b in val) / len(val)
                model.train()
            return out

        start = time.perf_counter()
        history = train(step, n_steps, desc=desc, show=progress)
        seconds = time.perf_counter() - start
    return Run(model.eval(), history, cfg, seconds)
