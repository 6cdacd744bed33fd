"""The watermark explorer: how the detector's z-scores move with the watermark's strength,
the length of text it reads and the share of tokens an attacker changes.

    explorer = ck.widgets.ethics_explorer({0.0: plain, 2.0: marked}, wm, prompt_len=8)
    explorer                                      # in a notebook: the widget
    explorer.set(delta=2.0, length=100, edits=0.1)
    explorer.detection, explorer.false_alarms     # what the figure shows now

``texts`` maps each strength delta to the (N, T) token ids generated with it (the same
prompts and key); delta 0 is the unwatermarked baseline and must be there. The edits are
drawn once per text from ``seed``, so moving a slider back gives the same figure.
"""
from __future__ import annotations

import ipywidgets as W
import torch

from coursekit.widgets.base import PlotWidget


class EthicsExplorer(PlotWidget):
    """A PlotWidget over the z-scores of watermarked and plain texts.

    Attributes (all refer to the figure drawn last):
        z_plain, z_marked: (N,) z-scores of the unwatermarked and the watermarked texts.
        detection: share of watermarked texts over the threshold.
        false_alarms: share of plain texts over the threshold.
    """

    def __init__(self, texts: dict, watermark, prompt_len: int, z_threshold: float, seed: int):
        if 0.0 not in texts:
            raise ValueError("texts needs the unwatermarked texts under delta 0.0 (the baseline)")
        shapes = {tuple(t.shape) for t in texts.values()}
        if len(shapes) != 1 or len(next(iter(shapes))) != 2:
            raise ValueError(f"every entry of texts must be (N, T) token ids of one shape, got {sorted(shapes)}")
        N, T = next(iter(shapes))
        if not 1 <= prompt_len < T - 10:
            raise ValueError(f"prompt_len must leave at least 10 generated tokens (T = {T}), got {prompt_len}")
        self.texts, self.wm, self.prompt_len, self.z_threshold = texts, watermark, prompt_len, z_threshold
        g = torch.Generator().manual_seed(seed)
        self._edit_order = [torch.randperm(T - prompt_len, generator=g) for _ in range(N)]
        self._edit_tokens = torch.randint(0, watermark.vocab_size, (N, T - prompt_len), generator=g)
        marked = sorted(d for d in texts if d > 0)
        if not marked:
            raise ValueError("texts needs at least one watermarked entry (delta > 0)")
        controls = {
            "delta": W.Dropdown(options=marked, value=marked[-1], description="delta"),
            "length": W.IntSlider(value=min(200, T - prompt_len), min=10, max=T - prompt_len, step=10,
                                  description="tokens read", continuous_update=False),
            "edits": W.FloatSlider(value=0.0, min=0.0, max=0.5, step=0.05, description="edited share",
                                   continuous_update=False),
        }
        super().__init__(controls, self._draw, figsize=(7, 3.4),
                         title="Watermark detection: z-scores of plain and watermarked texts")

    def _edited(self, ids: torch.Tensor, i: int, length: int, share: float) -> torch.Tensor:
        """Row ``i`` cut to ``length`` generated tokens with a share of them replaced."""
        out = ids[: self.prompt_len + length].clone()
        k = round(share * length)
        pos = self._edit_order[i][self._edit_order[i] < length][:k]
        out[self.prompt_len + pos] = self._edit_tokens[i, pos]
        return out

    def z_scores(self, delta: float, length: int, edits: float) -> torch.Tensor:
        """(N,) the detector's z for the texts of strength ``delta`` after the edits."""
        rows = self.texts[delta]
        return torch.tensor([self.wm.z_score(self._edited(r, i, length, edits), start=self.prompt_len)
                             for i, r in enumerate(rows)])

    def _draw(self, fig, values) -> None:
        delta, length, edits = float(values["delta"]), int(values["length"]), float(values["edits"])
        self.z_plain = self.z_scores(0.0, length, edits)
        self.z_marked = self.z_scores(delta, length, edits)
        self.detection = (self.z_marked > self.z_threshold).float().mean().item()
        self.false_alarms = (self.z_plain > self.z_threshold).float().mean().item()
        ax = fig.subplots()
        lo = min(self.z_plain.min().item(), self.z_marked.min().item(), -3.0)
        hi = max(self.z_plain.max().item(), self.z_marked.max().item(), self.z_threshold + 1)
        bins = torch.linspace(lo, hi, 30).numpy()
        ax.hist(self.z_plain.numpy(), bins=bins, alpha=0.6, color="tab:gray", label="no watermark")
        ax.hist(self.z_marked.numpy(), bins=bins, alpha=0.6, color="tab:green", label=f"watermark, delta {delta:g}")
        ax.axvline(self.z_threshold, color="tab:red", ls="--", label=f"threshold z = {self.z_threshold:.2f}")
        ax.set_xlabel("detector's z-score")
        ax.set_ylabel("texts")
        ax.legend(fontsize=8, loc="upper left")
        ax.set_title(f"{length} tokens, {edits:.0%} edited: {self.detection:.0%} of watermarked texts "
                     f"caught, {self.false_alarms:.0%} false alarms", fontsize=9)


def ethics_explorer(texts: dict, watermark, prompt_len: int, z_threshold: float | None = None,
                    seed: int = 0) -> EthicsExplorer:
    """Sliders for the watermark's strength, the tokens read and the edited share over
    histograms of the detector's z-scores.

    Args:
        texts: {delta: (N, T) token ids}, generated from the same prompts with the same key;
            delta 0.0 (no watermark) is required.
        watermark: the ``coursekit.watermark.Watermark`` that detects (its key and gamma).
        prompt_len: tokens of prompt at the start of each row (not scored).
        z_threshold: the detector's threshold (default: 1% false positives, 2.326).
        seed: seed of the random edits.
    """
    from coursekit.watermark import Z_1PCT

    return EthicsExplorer(texts, watermark, prompt_len, Z_1PCT if z_threshold is None else z_threshold, seed)
