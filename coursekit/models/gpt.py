"""A decoder-only Transformer (GPT), small enough to read top to bottom.

The model follows "Attention Is All You Need" (Vaswani et al., 2017) for the attention
itself and GPT-2 (Radford et al., 2019) for the layout: token and position embeddings,
then ``n_layer`` blocks of pre-LayerNorm causal self-attention and an MLP, each added
to a residual stream, then a final LayerNorm and a linear map back to the vocabulary.

    from coursekit.models.gpt import GPT, GPTConfig
    config = GPTConfig.preset("gpt-micro", vocab_size=tok.vocab_size)
    model = GPT(config)
    logits, loss = model(idx, targets)           # idx, targets: (B, T) token ids
    out = model.generate(idx, max_new_tokens=200, temperature=0.8, top_p=0.9)  # KV-cached
    maps = model.attention_maps(idx)             # (n_layer, B, n_head, T, T)

Shapes use B = batch, T = time (tokens), C = channels (n_embd), H = heads,
D = channels per head (C / H), V = vocabulary size.
"""
from __future__ import annotations

import math
from dataclasses import asdict, dataclass

import torch
import torch.nn as nn
import torch.nn.functional as F
from einops import rearrange

from coursekit.models.embeddings import sinusoidal_embedding
from coursekit.models.presets import Presets


@dataclass
class GPTConfig(Presets):
    """Sizes and switches of a GPT. ``GPTConfig.preset(name, vocab_size=...)`` gives a named size."""

    vocab_size: int = 65          # number of distinct tokens (V)
    block_size: int = 64          # longest context the model can see (T at most)
    n_layer: int = 4              # number of Transformer blocks stacked
    n_head: int = 4               # attention heads per block (H); must divide n_embd
    n_embd: int = 128             # width of the residual stream (C)
    dropout: float = 0.0          # dropout on attention weights and residual branches
    bias: bool = True             # biases in Linear layers and LayerNorms
    pos_emb: str = "learned"      # "learned" (GPT), "sinusoidal" (Vaswani et al., fixed) or "none"
    attn_scale: bool = True       # divide attention scores by sqrt(D); False only for ablations
    layer_norm: bool = True       # the LayerNorms of the blocks and the final one; False for ablations
    tie_weights: bool = True      # the output layer reuses the token embedding matrix
    fused_attention: bool = True  # use torch's fused scaled_dot_product_attention when possible

    def __post_init__(self):
        if self.n_embd % self.n_head != 0:
            raise ValueError(f"n_embd ({self.n_embd}) must be divisible by n_head ({self.n_head})")
        if self.pos_emb not in ("learned", "sinusoidal", "none"):
            raise ValueError(f"pos_emb must be 'learned', 'sinusoidal' or 'none', got {self.pos_emb!r}")
        if self.vocab_size < 1 or self.block_size < 1:
            raise ValueError("vocab_size and block_size must be positive")


# Tiny named sizes (parameter counts for a 65-token vocabulary, weights tied).
PRESETS: dict[str, GPTConfig] = {
    "gpt-pico": GPTConfig(n_layer=2, n_head=2, n_embd=32, block_size=32),     # ~27 K: unit tests
    "gpt-nano": GPTConfig(n_layer=3, n_head=4, n_embd=64, block_size=64),     # ~0.16 M: seconds
    "gpt-micro": GPTConfig(n_layer=4, n_head=4, n_embd=128, block_size=64),   # ~0.8 M: minutes on CPU
    "gpt-mini": GPTConfig(n_layer=6, n_head=6, n_embd=192, block_size=128),   # ~2.7 M: a GPU helps
    # lesson 06's model, the course's story model (ck.zoo "story-gpt"): ~0.35 M, a minute on CPU
    "story": GPTConfig(n_layer=3, n_head=4, n_embd=96, block_size=128),
}


# --- positional encoding -------------------------------------------------------------

def sinusoidal_positions(block_size: int, n_embd: int) -> torch.Tensor:
    """The fixed positional encoding of Vaswani et al. (2017), section 3.5.

    PE[pos, 2i] = sin(pos / 10000^(2i / C)) and PE[pos, 2i + 1] = cos(pos / 10000^(2i / C))
    (``coursekit.models.embeddings.sinusoidal_embedding``, interleaved).

    Args:
        block_size: number of positions T.
        n_embd: width C (even).
    Returns:
        (T, C) float tensor.
    """
    if n_embd % 2:
        raise ValueError(f"sinusoidal positions need an even width, got {n_embd}")
    return sinusoidal_embedding(torch.arange(block_size), n_embd)            # (T, C): sin, cos, sin, ...


# --- attention -----------------------------------------------------------------------

def causal_mask(T: int, device=None) -> torch.Tensor:
    """(T, T) bool tensor, True where query i may attend to key j (j <= i)."""
    return torch.tril(torch.ones(T, T, dtype=torch.bool, device=device))


def scaled_dot_product_attention(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor,
                                 causal: bool = True, dropout: float = 0.0,
                                 training: bool = False, scale: bool = True
                                 ) -> tuple[torch.Tensor, torch.Tensor]:
    """Attention(Q, K, V) = softmax(Q K^T / sqrt(d_k)) V (Vaswani et al., 2017, eq. 1).

    Args:
        q, k, v: (..., T, D) queries, keys and values (any leading axes, e.g. B, H).
        causal: hide the future: query i only sees keys 0..i.
        dropout: probability of dropping an attention weight (only when ``training``).
        scale: divide the scores by sqrt(d_k) (False only to show what the scale is for).
    Returns:
        y (..., T, D) the weighted sums of values, and att (..., T, T) the weights
        (each row sums to 1).
    """
    T, d_k = q.shape[-2], q.shape[-1]
    # 1. scores: how well each query matches each key, scaled so they do not grow with d_k
    scores = q @ k.transpose(-2, -1) / (math.sqrt(d_k) if scale else 1.0)   # (..., T, T)
    # 2. the causal mask: a score of -inf becomes a weight of exactly 0 after the softmax
    if causal:
        scores = scores.masked_fill(~causal_mask(T, q.device), float("-inf"))
    # 3. softmax over the keys turns scores into weights that sum to 1
    att = F.softmax(scores, dim=-1)                                          # (..., T, T)
    if dropout > 0 and training:
        att = F.dropout(att, p=dropout)
    # 4. each output is the weighted average of the values
    return att @ v, att                                                      # (..., T, D)


class CausalSelfAttention(nn.Module):
    """Multi-head causal self-attention: H heads of width D = C / H side by side."""

    def __init__(self, config: GPTConfig):
        super().__init__()
        self.n_head = config.n_head
        self.dropout = config.dropout
        self.fused = config.fused_attention
        self.scale = config.attn_scale
        self.qkv = nn.Linear(config.n_embd, 3 * config.n_embd, bias=config.bias)  # W_Q, W_K, W_V at once
        self.proj = nn.Linear(config.n_embd, config.n_embd, bias=config.bias)     # W_O
        self.resid_drop = nn.Dropout(config.dropout)

    def forward(self, x: torch.Tensor, return_attention: bool = False,
                cache: "KVCache | None" = None, layer: int = 0):
        """x: (B, T, C) -> (B, T, C); with ``return_attention`` also the weights (B, H, T, T).

        With a ``cache`` the keys and values of ``x`` are appended to those of the earlier
        tokens (stored for this ``layer``), and the T new queries attend to all of them.
        """
        q, k, v = self.qkv(x).chunk(3, dim=-1)                               # 3 x (B, T, C)
        # split the channels into heads: each head attends on its own D = C / H channels
        q = rearrange(q, "b t (h d) -> b h t d", h=self.n_head)              # (B, H, T, D)
        k = rearrange(k, "b t (h d) -> b h t d", h=self.n_head)              # (B, H, T, D)
        v = rearrange(v, "b t (h d) -> b h t d", h=self.n_head)              # (B, H, T, D)
        att = None
        if cache is not None:
            k, v = cache.extend(layer, k, v)                                 # (B, H, S, D): S = past + T
        if k.shape[2] != q.shape[2]:
            # new queries after S - T cached tokens: query i sees keys 0 .. S - T + i
            S, T = k.shape[2], q.shape[2]
            mask = torch.ones(T, S, dtype=torch.bool, device=q.device).tril(diagonal=S - T)
            scores = q @ k.transpose(-2, -1) / (math.sqrt(q.shape[-1]) if self.scale else 1.0)
            att = F.softmax(scores.masked_fill(~mask, float("-inf")), dim=-1)  # (B, H, T, S)
            y = att @ v                                                      # (B, H, T, D)
        elif self.fused and not return_attention:
            # the same computation as below in one fused kernel (faster, less memory)
            y = F.scaled_dot_product_attention(q, k, v, is_causal=True,
                                               dropout_p=self.dropout if self.training else 0.0,
                                               scale=None if self.scale else 1.0)
        else:
            y, att = scaled_dot_product_attention(q, k, v, causal=True, dropout=self.dropout,
                                                  training=self.training, scale=self.scale)
        y = rearrange(y, "b h t d -> b t (h d)")                             # (B, T, C): heads side by side
        y = self.resid_drop(self.proj(y))
        return (y, att) if return_attention else y


class FeedForward(nn.Module):
    """The block's position-wise feed-forward network (its "MLP"): C -> 4C -> GELU -> C."""

    def __init__(self, config: GPTConfig):
        super().__init__()
        self.fc = nn.Linear(config.n_embd, 4 * config.n_embd, bias=config.bias)
        self.proj = nn.Linear(4 * config.n_embd, config.n_embd, bias=config.bias)
        self.drop = nn.Dropout(config.dropout)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """x: (B, T, C) -> (B, T, C)."""
        return self.drop(self.proj(F.gelu(self.fc(x))))


def _layer_norm(config: GPTConfig) -> nn.Module:
    """A LayerNorm of width C, or nothing when ``config.layer_norm`` is off (an ablation)."""
    return nn.LayerNorm(config.n_embd, bias=config.bias) if config.layer_norm else nn.Identity()


class Block(nn.Module):
    """One Transformer block, pre-LayerNorm: x + attn(ln(x)), then x + mlp(ln(x))."""

    def __init__(self, config: GPTConfig):
        super().__init__()
        self.ln1 = _layer_norm(config)
        self.attn = CausalSelfAttention(config)
        self.ln2 = _layer_norm(config)
        self.mlp = FeedForward(config)

    def forward(self, x: torch.Tensor, return_attention: bool = False,
                cache: "KVCache | None" = None, layer: int = 0):
        """x: (B, T, C) -> (B, T, C); with ``return_attention`` also (B, H, T, T)."""
        if return_attention:
            a, att = self.attn(self.ln1(x), return_attention=True, cache=cache, layer=layer)
        else:
            a, att = self.attn(self.ln1(x), cache=cache, layer=layer), None
        x = x + a                       # tokens exchange information
        x = x + self.mlp(self.ln2(x))   # each token thinks on its own
        return (x, att) if return_attention else x


# --- the key-value cache ----------------------------------------------------------------

class KVCache:
    """The keys and values of the tokens a model has already read, one pair per layer.

    Generating token t + 1 needs the keys and values of tokens 0..t; they do not change
    when a token is added (the mask is causal), so they are kept instead of recomputed.
    Memory: 2 x n_layer x B x C numbers per token.
    """

    def __init__(self, n_layer: int):
        self.layers: list[tuple[torch.Tensor, torch.Tensor] | None] = [None] * n_layer

    @property
    def length(self) -> int:
        """Number of tokens held (the position of the next token)."""
        first = self.layers[0]
        return 0 if first is None else first[0].shape[2]

    def extend(self, layer: int, k: torch.Tensor, v: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Append (B, H, T, D) keys and values to ``layer``'s; return the whole (B, H, S, D) pair."""
        past = self.layers[layer]
        if past is not None:
            k = torch.cat([past[0], k], dim=2)                               # (B, H, S, D)
            v = torch.cat([past[1], v], dim=2)
        self.layers[layer] = (k, v)
        return k, v


# --- the model -----------------------------------------------------------------------

class GPT(nn.Module):
    """A decoder-only Transformer language model.

    ``forward(idx, targets=None) -> (logits, loss)``; ``generate`` samples a continuation;
    ``attention_maps`` returns every layer's attention weights for a viewer.
    """

    def __init__(self, config: GPTConfig):
        super().__init__()
        self.config = config
        self.tok_emb = nn.Embedding(config.vocab_size, config.n_embd)
        if config.pos_emb == "learned":
            self.pos_emb = nn.Embedding(config.block_size, config.n_embd)
        elif config.pos_emb == "sinusoidal":  # fixed, not trained: a buffer moves with .to(device)
            self.register_buffer("pos_table", sinusoidal_positions(config.block_size, config.n_embd))
        self.drop = nn.Dropout(config.dropout)
        self.blocks = nn.ModuleList(Block(config) for _ in range(config.n_layer))
        self.ln_f = _layer_norm(config)
        self.head = nn.Linear(config.n_embd, config.vocab_size, bias=False)
        if config.tie_weights:  # Press & Wolf (2017): one matrix to read and write tokens
            self.head.weight = self.tok_emb.weight
        self.apply(self._init_weights)
        # GPT-2's scaled init: residual projections shrink with depth so the stream stays O(1)
        for name, p in self.named_parameters():
            if name.endswith("proj.weight"):
                nn.init.normal_(p, mean=0.0, std=0.02 / math.sqrt(2 * config.n_layer))

    @staticmethod
    def _init_weights(module: nn.Module) -> None:
        if isinstance(module, (nn.Linear, nn.Embedding)):
            nn.init.normal_(module.weight, mean=0.0, std=0.02)
        if isinstance(module, nn.Linear) and module.bias is not None:
            nn.init.zeros_(module.bias)

    def num_params(self) -> int:
        """Number of trained parameters (a tied matrix counts once)."""
        return sum(p.numel() for p in self.parameters())

    def new_cache(self) -> KVCache:
        """An empty key-value cache for ``forward(idx, cache=...)`` (see ``coursekit.sampling``)."""
        return KVCache(self.config.n_layer)

    @property
    def supports_cache(self) -> bool:
        """False when a block was swapped for one that knows no cache (a learner's own)."""
        return all(isinstance(block, Block) for block in self.blocks)

    def embed(self, idx: torch.Tensor, start: int = 0) -> torch.Tensor:
        """Token ids (B, T) at positions start .. start + T - 1 -> embeddings (B, T, C).

        With sinusoidal positions the token embeddings are multiplied by sqrt(C), as in
        Vaswani et al. (2017, section 3.4): the table's entries have amplitude 1 (root mean
        square 1/sqrt(2)), while the embeddings start with std 0.02, so without the factor
        the positions would drown the tokens.
        """
        T = idx.shape[1]
        end = start + T
        if end > self.config.block_size:
            raise ValueError(f"positions up to {end} go past block_size {self.config.block_size}; "
                             "crop the text to its last block_size tokens (or start a new cache)")
        tok = self.tok_emb(idx)                                              # (B, T, C)
        if self.config.pos_emb == "learned":
            return self.drop(tok + self.pos_emb.weight[start:end])           # (B, T, C)
        if self.config.pos_emb == "sinusoidal":
            return self.drop(tok * math.sqrt(self.config.n_embd) + self.pos_table[start:end])
        return self.drop(tok)                                                # no positions at all

    def forward(self, idx: torch.Tensor, targets: torch.Tensor | None = None,
                cache: KVCache | None = None) -> tuple[torch.Tensor, torch.Tensor | None]:
        """Next-token logits for every position, and the cross-entropy when targets are given.

        Args:
            idx: (B, T) int64 token ids, T <= block_size.
            targets: (B, T) the next token at every position, or None.
            cache: a ``KVCache`` holding the earlier tokens (``new_cache()``); idx then
                continues them, at positions cache.length onwards, and is added to it.
        Returns:
            logits (B, T, V) and loss (a 0-d tensor: mean negative log-likelihood in
            nats per token) or None.
        """
        x = self.embed(idx, start=cache.length if cache is not None else 0)  # (B, T, C)
        for i, block in enumerate(self.blocks):
            x = block(x) if cache is None else block(x, cache=cache, layer=i)  # (B, T, C)
        logits = self.head(self.ln_f(x))                                     # (B, T, V)
        loss = None
        if targets is not None:
            loss = F.cross_entropy(rearrange(logits, "b t v -> (b t) v"),
                                   rearrange(targets, "b t -> (b t)"))
        return logits, loss

    @torch.no_grad()
    def attention_maps(self, idx: torch.Tensor) -> torch.Tensor:
        """Every layer's attention weights for ``idx`` (B, T).

        Returns:
            (n_layer, B, n_head, T, T): entry [l, b, h, i, j] is how much position i
            reads from position j in head h of layer l (zero for j > i).
        """
        was_training = self.training
        self.eval()
        x = self.embed(idx)
        maps = []
        for block in self.blocks:
            x, att = block(x, return_attention=True)
            maps.append(att)
        self.train(was_training)
        return torch.stack(maps)

    def generate(self, idx: torch.Tensor, max_new_tokens: int, temperature: float = 1.0,
                 top_k: int | None = None, generator: torch.Generator | None = None,
                 top_p: float | None = None, repetition_penalty: float | None = None,
                 use_cache: bool = True) -> torch.Tensor:
        """Continue each sequence by sampling one token at a time (``coursekit.sampling.generate``).

        Args:
            idx: (B, T0) token ids to start from (at least one token each).
            max_new_tokens: how many tokens to add.
            temperature: divide the logits by this; below 1 sharper, above 1 flatter;
                0 means greedy (always the most likely token).
            top_k: sample only among the k most likely tokens (None: all of them).
            generator: a torch.Generator for reproducible samples.
            top_p: sample only from the nucleus of probability p (None: no filter).
            repetition_penalty: > 1 makes tokens already in the text less likely.
            use_cache: keep the keys and values of earlier tokens (faster, same tokens).
        Returns:
            (B, T0 + max_new_tokens) token ids: the prompt followed by the samples.
        """
        from coursekit.sampling import generate
        return generate(self, idx, max_new_tokens, temperature=temperature, top_k=top_k,
                        top_p=top_p, repetition_penalty=repetition_penalty,
                        generator=generator, use_cache=use_cache)

    def configure_optimizer(self, lr: float = 1e-3, weight_decay: float = 0.1,
                            betas: tuple[float, float] = (0.9, 0.99)) -> torch.optim.AdamW:
        """AdamW (Loshchilov & Hutter, 2019) with weight decay on matrices only.

        Matrices (linear weights, embeddings) are decayed; biases and LayerNorm gains are not.
        """
        decay = [p for p in self.parameters() if p.dim() >= 2]
        no_decay = [p for p in self.parameters() if p.dim() < 2]
        groups = [{"params": decay, "weight_decay": weight_decay},
                  {"params": no_decay, "weight_decay": 0.0}]
        return torch.optim.AdamW(groups, lr=lr, betas=betas)

    def extra_repr(self) -> str:
        return ", ".join(f"{k}={v}" for k, v in asdict(self.config).items())
