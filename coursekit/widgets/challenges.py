"""The trade-off explorer: prune and quantise the story model, see size, speed and quality (lesson 16).

    explorer = ck.widgets.tradeoff_explorer(run, val_ids)
    explorer.set(share=0.5, bits=4)                 # in code or tests
    explorer.current                                # {"bytes": ..., "ms_per_token": ..., "val_loss": ...}

Two controls: the share of each block matrix's weights pruned by magnitude, and the bits
per stored weight (32: float, or 8 down to 2 with one scale per row). The figure compares
the original model with the compressed one on three bars: the bytes the block matrices
need (packed at ``bits`` per weight; with pruning, the smaller of dense storage and a
sparse list of the non-zero weights with a 16-bit column index each), the milliseconds per
generated token (one thread, float arithmetic: neither pruning nor packing speeds up
torch's dense kernels), and the validation loss in nats per character.
"""
from __future__ import annotations

import ipywidgets as W
import torch

from coursekit.widgets.base import PlotWidget


def _storage_bytes(model, bits: int) -> int:
    """Bytes of the block Linears' weights at ``bits`` per weight (dense or sparse, the smaller)."""
    from coursekit.compress import Int8Linear
    total = 0
    for lin in model.blocks.modules():
        if not isinstance(lin, (torch.nn.Linear, Int8Linear)):
            continue
        w = lin.q if isinstance(lin, Int8Linear) else lin.weight
        n, nnz = w.numel(), int((w != 0).sum())
        scales = 4 * w.shape[0] if bits < 32 else 0
        total += min(n * bits // 8, nnz * (bits + 16) // 8) + scales
    return total


class TradeoffExplorer(PlotWidget):
    """A PlotWidget with two controls, ``share`` (pruned) and ``bits`` (per stored weight).

    Attributes (refer to the figure drawn last):
        base: the original model's {"bytes", "ms_per_token", "val_loss"}.
        current: the same for the compressed copy.
        model: the compressed copy.
    """

    def __init__(self, run, val_ids: torch.Tensor, n_tokens: int = 16):
        from coursekit.compress import ms_per_token
        from coursekit.lm import lm_loss
        model = getattr(run, "model", run)
        if not hasattr(model, "blocks"):
            raise TypeError("tradeoff_explorer needs a coursekit GPT or its run (ck.zoo.load('story-gpt'))")
        if val_ids.dim() != 1 or len(val_ids) <= model.config.block_size:
            raise ValueError(f"val_ids must be 1-D token ids, more than block_size "
                             f"({model.config.block_size}) of them")
        self.original, self.val_ids, self.n_tokens = model.eval(), val_ids, n_tokens
        self.prompt = val_ids[:16][None]                                                   # (1, 16)
        self.base = {"bytes": _storage_bytes(model, 32),
                     "ms_per_token": ms_per_token(model, self.prompt, n_tokens, repeats=2),
                     "val_loss": lm_loss(model, val_ids)}
        controls = {
            "share": W.FloatSlider(value=0.0, min=0.0, max=0.9, step=0.1, description="pruned share",
                                   continuous_update=False),
            "bits": W.Dropdown(options=[32, 8, 6, 4, 3, 2], value=8, description="bits / weight"),
        }
        super().__init__(controls, self._draw_tradeoff, figsize=(10, 3.2),
                         title="Compression trade-offs: prune, quantise, and measure")

    def _draw_tradeoff(self, fig, values) -> None:
        from coursekit.compress import ms_per_token, prune_model, quantize_weights
        from coursekit.lm import lm_loss
        share, bits = float(values["share"]), int(values["bits"])
        model = prune_model(self.original, share)
        if bits < 32:
            model = quantize_weights(model, bits)
        self.model = model
        self.current = {"bytes": _storage_bytes(model, bits),
                        "ms_per_token": ms_per_token(model, self.prompt, self.n_tokens, repeats=2),
                        "val_loss": lm_loss(model, self.val_ids)}
        label = f"{share:.0%} pruned, {bits} bits"
        panels = [("bytes", "block weights (KB)", 1e-3), ("ms_per_token", "ms per token (1 thread)", 1.0),
                  ("val_loss", "validation loss (nats / char)", 1.0)]
        for i, (key, ylabel, unit) in enumerate(panels):
            ax = fig.add_subplot(1, 3, i + 1)
            vals = [self.base[key] * unit, self.current[key] * unit]
            ax.bar(["original", label], vals, color=["grey", "tab:blue"])
            for x, v in enumerate(vals):
                ax.text(x, v, f"{v:.3g}", ha="center", va="bottom", fontsize=8)
            ax.set_ylabel(ylabel)
            ax.tick_params(axis="x", labelsize=7)
        fig.tight_layout()


def tradeoff_explorer(run, val_ids: torch.Tensor, n_tokens: int = 16) -> TradeoffExplorer:
    """Sliders for the pruned share and the bits per weight of ``run``'s model (lesson 16)."""
    return TradeoffExplorer(run, val_ids, n_tokens)
