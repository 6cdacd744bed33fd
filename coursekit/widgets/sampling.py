"""The sampling explorer: a language model's next-token distribution under the decoding rules.

    explorer = ck.widgets.sampling_explorer(ck.zoo.load("story-gpt"), "In Millbrook there is a")
    explorer                                          # in a notebook: the widget
    explorer.set(temperature=0.7, top_p=0.9)          # in code or tests
    explorer.probs, explorer.kept, explorer.n_kept    # what is drawn now

The bars show the most likely next tokens. Grey outlines: the model's own probabilities
(temperature 1, no filter). Filled bars: the probabilities a draw would use after the
temperature and the top-k and top-p filters, renormalised; blue for kept tokens, none
for tokens a filter removed.
"""
from __future__ import annotations

import ipywidgets as W
import torch
import torch.nn.functional as F

from coursekit.widgets.base import PlotWidget


def _show(token: str) -> str:
    """A token as a bar label: spaces and newlines made visible."""
    return token.replace(" ", "\u2423").replace("\n", "\\n")


class SamplingExplorer(PlotWidget):
    """A PlotWidget with a context box and temperature, top-k and top-p sliders.

    Attributes (the state tests can read; all refer to the figure drawn last):
        context: the text whose next token is shown (cropped to the model's block).
        base_probs: (V,) the model's next-token probabilities at temperature 1.
        probs: (V,) the probabilities after temperature and filters (0 where removed).
        kept: (V,) bool, the tokens a draw could pick.
        n_kept: how many tokens are kept.
        entropy: entropy of ``probs`` in nats.
        top_tokens: the labels of the bars drawn, most likely first.
    """

    def __init__(self, model, tokenizer, context: str, n_shown: int = 15):
        if not hasattr(model, "config") or not hasattr(model.config, "block_size"):
            raise TypeError("sampling_explorer needs a GPT-like model with config.block_size")
        if not isinstance(n_shown, int) or n_shown < 1:
            raise ValueError(f"n_shown must be a positive int, got {n_shown!r}")
        self.model = model
        self.tokenizer = tokenizer
        self.n_shown = min(n_shown, tokenizer.vocab_size)
        controls = {
            "text": W.Text(value=context, description="context", continuous_update=False,
                           layout=W.Layout(width="420px")),
            "temperature": W.FloatSlider(value=1.0, min=0.05, max=2.0, step=0.05, description="temperature",
                                         continuous_update=False),
            "top_k": W.IntSlider(value=0, min=0, max=tokenizer.vocab_size, description="top-k (0: off)",
                                 continuous_update=False),
            "top_p": W.FloatSlider(value=1.0, min=0.05, max=1.0, step=0.01, description="top-p",
                                   continuous_update=False),
        }
        super().__init__(controls, self._draw_distribution, figsize=(8, 3.6),
                         title="The next token: how temperature, top-k and top-p reshape the draw")

    @torch.no_grad()
    def distribution(self, text: str, temperature: float, top_k: int, top_p: float):
        """(base probs, probs after the rules, kept mask) for the next token after ``text``."""
        from coursekit.sampling import apply_temperature, top_k_filter, top_p_filter

        if not text:
            raise ValueError("type at least one character of context")
        ids = self.tokenizer.encode(text)[-self.model.config.block_size:]          # (T,)
        device = next(self.model.parameters()).device
        logits = self.model(ids[None].to(device))[0][:, -1].float().cpu()         # (1, V)
        base = F.softmax(logits, dim=-1)[0]                                         # (V,)
        logits = apply_temperature(logits, temperature)
        if top_k:
            logits = top_k_filter(logits, top_k)
        if top_p < 1.0:
            logits = top_p_filter(logits, top_p)
        probs = F.softmax(logits, dim=-1)[0]                                        # (V,)
        return base, probs, probs > 0

    def _draw_distribution(self, fig, values) -> None:
        base, probs, kept = self.distribution(values["text"], values["temperature"],
                                              values["top_k"], values["top_p"])
        self.context = self.tokenizer.decode(self.tokenizer.encode(values["text"])
                                             [-self.model.config.block_size:].tolist())
        self.base_probs, self.probs, self.kept = base, probs, kept
        self.n_kept = int(kept.sum())
        p = probs[kept]
        self.entropy = float(-(p * p.log()).sum())
        order = base.argsort(descending=True)[: self.n_shown]                      # most likely first
        self.top_tokens = [_show(self.tokenizer.decode([int(i)])) for i in order]
        ax = fig.add_subplot(1, 1, 1)
        x = range(len(order))
        colours = ["tab:blue" if kept[i] else "white" for i in order]
        ax.bar(x, probs[order].numpy(), color=colours, edgecolor="tab:blue", label="after the rules")
        ax.bar(x, base[order].numpy(), fill=False, edgecolor="grey", linestyle="--",
               label="model (T = 1, no filter)")
        ax.set_xticks(list(x), self.top_tokens)
        ax.set_xlabel("next token (most likely first)")
        ax.set_ylabel("probability")
        ax.set_title(f"after \u201c{_show(self.context[-40:])}\u201d: {self.n_kept} of "
                     f"{len(base)} tokens kept, entropy {self.entropy:.2f} nats", fontsize=9)
        ax.legend(fontsize=8)
        ax.grid(axis="y", alpha=0.3)


def sampling_explorer(run=None, context: str = "Once upon a time", *, model=None, tokenizer=None,
                      n_shown: int = 15) -> SamplingExplorer:
    """Sliders for temperature, top-k and top-p over a language model's next-token distribution.

    Args:
        run: an ``LMRun`` (``ck.zoo.load("story-gpt")``), or None with ``model`` and ``tokenizer``.
        context: the starting text in the context box.
        model, tokenizer: a GPT-like model and its tokenizer, instead of ``run``.
        n_shown: how many of the most likely tokens get a bar.
    Returns:
        A SamplingExplorer (display it in a notebook; ``.set(temperature=..., top_p=...)``).
    """
    if run is not None:
        model, tokenizer = run.model, run.tokenizer
    if model is None or tokenizer is None:
        raise ValueError("pass an LMRun, or both model= and tokenizer=")
    return SamplingExplorer(model, tokenizer, context, n_shown)
