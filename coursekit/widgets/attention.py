"""Attention map viewer: which earlier characters each position reads, per layer and head."""
from __future__ import annotations

import ipywidgets as W
import torch

from coursekit.widgets.base import PlotWidget

MEAN = -1  # the "head" value that shows the average over all heads of a layer


def _label(ch: str) -> str:
    """A visible tick label for one token (spaces and newlines would vanish)."""
    return {" ": "\u2423", "\n": "\u21b5", "\t": "\u21e5"}.get(ch, ch)


class AttentionViewer(PlotWidget):
    """A ``PlotWidget`` showing the attention weights of a GPT on one text.

    Controls: ``layer`` (slider), ``head`` (dropdown: one head or the mean of all),
    ``text`` (the text to look at; its last ``block_size`` tokens are used).

    State tests can read, updated at every redraw:
        tokens: the token labels on the axes (list of str, length T).
        maps: (n_layer, n_head, T, T) attention weights for the current text.
        attention: the (T, T) matrix on screen (row i = query position, sums to 1).
        shown: (layer, head) on screen; head is -1 for the mean over heads.
    """

    def __init__(self, model, tokenizer, text: str, layer: int = 0, head: int = 0,
                 figsize: tuple[float, float] = (6.5, 6)):
        if not hasattr(model, "attention_maps"):
            raise TypeError("attention_viewer needs a coursekit GPT (a model with .attention_maps(idx))")
        self.model = model
        self.tokenizer = tokenizer
        n_layer, n_head = model.config.n_layer, model.config.n_head
        if not 0 <= layer < n_layer or not (0 <= head < n_head or head == MEAN):
            raise ValueError(f"layer must be in 0..{n_layer - 1} and head in 0..{n_head - 1} (or -1 for the mean)")
        self._text_key = None
        self.tokens: list[str] = []
        self.maps = torch.empty(0)
        self.attention = torch.empty(0)
        self.shown: tuple[int, int] = (layer, head)
        controls = {
            "layer": W.IntSlider(value=layer, min=0, max=n_layer - 1, description="layer"),
            "head": W.Dropdown(options=[(f"head {h}", h) for h in range(n_head)] + [("mean of heads", MEAN)],
                               value=head, description="head"),
            "text": W.Text(value=text, description="text", continuous_update=False,
                           layout=W.Layout(width="95%")),
        }
        super().__init__(controls, self._draw_attention, figsize=figsize,
                         title="Attention weights: row = position reading, column = position read")

    def _compute(self, text: str) -> None:
        """Run the model on ``text`` (cropped to its last block_size tokens) once per text."""
        if text == self._text_key:
            return
        if not text:
            raise ValueError("type at least one character")
        ids = self.tokenizer.encode(text)[-self.model.config.block_size:]          # (T,)
        device = next(self.model.parameters()).device
        maps = self.model.attention_maps(ids[None].to(device))                      # (L, 1, H, T, T)
        self.maps = maps[:, 0].detach().cpu()                                       # (L, H, T, T)
        self.tokens = [_label(self.tokenizer.decode([i])) for i in ids.tolist()]
        self._text_key = text

    def _draw_attention(self, fig, values: dict) -> None:
        self._compute(values["text"])
        layer, head = values["layer"], values["head"]
        att = self.maps[layer].mean(0) if head == MEAN else self.maps[layer, head]  # (T, T)
        self.attention, self.shown = att, (layer, head)
        T = len(self.tokens)
        ax = fig.add_subplot(1, 1, 1)
        im = ax.imshow(att.numpy(), cmap="viridis", vmin=0, vmax=max(float(att.max()), 1e-6))
        size = 9 if T <= 24 else 7 if T <= 40 else 5
        ax.set_xticks(range(T), self.tokens, fontsize=size, family="monospace")
        ax.set_yticks(range(T), self.tokens, fontsize=size, family="monospace")
        ax.set_xlabel("key: the position being read (earlier token)")
        ax.set_ylabel("query: the position reading (predicts the next token)")
        who = "mean of heads" if head == MEAN else f"head {head}"
        ax.set_title(f"layer {layer}, {who} ({T} tokens)")
        fig.colorbar(im, ax=ax, fraction=0.046, pad=0.04, label="attention weight")


def attention_viewer(model, tokenizer, text: str, layer: int = 0, head: int = 0,
                     figsize: tuple[float, float] = (6.5, 6)) -> AttentionViewer:
    """An interactive view of a GPT's attention weights on ``text``.

    Args:
        model: a ``coursekit.models.gpt.GPT`` (anything with ``config`` and ``attention_maps``).
        tokenizer: the tokenizer the model was trained with (``encode``/``decode``).
        text: the text to show; its last ``model.config.block_size`` tokens are used.
        layer, head: what to show first (head=-1: the mean over heads).
    Returns:
        An ``AttentionViewer`` (a PlotWidget): display it, or call ``.set(layer=1, head=2)``.
    """
    return AttentionViewer(model, tokenizer, text, layer=layer, head=head, figsize=figsize)
