"""Before and after fine-tuning: the base model's and a tuned model's continuations side by side.

    w = ck.widgets.finetune_samples(base_run, {"full": full_run, "lora": lora_run},
                                    prompts=["REPORT FROM", "Anna was a"])
    w                                         # in a notebook: the widget
    w.set(method="lora", prompt="Anna was a") # in code or tests
    w.base_text, w.tuned_text                 # what is shown now

Both models continue the same prompt with the same random draws (one seeded generator
each, the same seed), so the only difference between the two panels is the weights.
"""
from __future__ import annotations

import textwrap

import ipywidgets as W
import torch

from coursekit.widgets.base import PlotWidget


class FinetuneSamples(PlotWidget):
    """A PlotWidget with a method menu, a prompt menu, a temperature slider and a seed.

    Attributes (the state tests can read; all refer to the figure drawn last):
        method: the tuned model shown on the right.
        prompt: the text both models continue.
        base_text, tuned_text: the continuations (without the prompt).
    """

    def __init__(self, base_model, tuned: dict, tokenizer, prompts: list[str], n_new: int = 160):
        if not tuned:
            raise ValueError("pass at least one tuned model: {'method name': model or LMRun}")
        if not prompts:
            raise ValueError("pass at least one prompt")
        self.base_model = base_model
        self.tuned = {name: getattr(m, "model", m) for name, m in tuned.items()}
        self.tokenizer = tokenizer
        self.n_new = n_new
        for p in prompts:
            tokenizer.encode(p)                        # fails now if a character is unknown
        controls = {
            "method": W.Dropdown(options=list(self.tuned), description="tuned by"),
            "prompt": W.Dropdown(options=list(prompts), description="prompt"),
            "temperature": W.FloatSlider(value=0.8, min=0.0, max=1.5, step=0.1, description="temperature",
                                         continuous_update=False),
            "seed": W.IntSlider(value=0, min=0, max=20, description="seed", continuous_update=False),
        }
        super().__init__(controls, self._draw_samples, figsize=(10, 3.4),
                         title="Before and after fine-tuning: the same prompt, the same random draws")

    @torch.no_grad()
    def continuation(self, model, prompt: str, temperature: float, seed: int) -> str:
        """``n_new`` characters after ``prompt`` (greedy at temperature 0)."""
        from coursekit.sampling import generate
        device = next(model.parameters()).device
        idx = self.tokenizer.encode(prompt)[None].to(device)                         # (1, T0)
        out = generate(model, idx, self.n_new, temperature=temperature,
                       generator=torch.Generator(device=device).manual_seed(seed))   # (1, T0 + n_new)
        return self.tokenizer.decode(out[0, idx.shape[1]:].tolist())

    def _draw_samples(self, fig, values) -> None:
        method, prompt = values["method"], values["prompt"]
        temperature, seed = values["temperature"], values["seed"]
        self.method, self.prompt = method, prompt
        self.base_text = self.continuation(self.base_model, prompt, temperature, seed)
        self.tuned_text = self.continuation(self.tuned[method], prompt, temperature, seed)
        for i, (title, text) in enumerate((("base model (before)", self.base_text),
                                           (f"tuned: {method} (after)", self.tuned_text))):
            ax = fig.add_subplot(1, 2, i + 1)
            ax.set_axis_off()
            ax.set_title(title, fontsize=10)
            body = "\n".join(textwrap.wrap(prompt + "\u2502" + text.replace("\n", " / "), 52))
            ax.text(0.0, 1.0, body, va="top", ha="left", family="monospace", fontsize=8,
                    transform=ax.transAxes)
        fig.suptitle(f"prompt \u201c{prompt}\u201d (after the bar: generated), temperature {temperature}, "
                     f"seed {seed}", fontsize=9)


def finetune_samples(base, tuned: dict, prompts: list[str], *, tokenizer=None, n_new: int = 160) -> FinetuneSamples:
    """Compare a base language model with tuned copies of it on the same prompts.

    Args:
        base: the model before fine-tuning (an ``LMRun`` or a GPT with ``tokenizer=``).
        tuned: method name -> the tuned model (an ``LMRun`` or a GPT).
        prompts: the prompts offered in the menu.
        tokenizer: needed when ``base`` is a model rather than an ``LMRun``.
        n_new: characters generated per continuation.
    Returns:
        A FinetuneSamples widget (display it; ``.set(method=..., prompt=...)``).
    """
    model = getattr(base, "model", base)
    tokenizer = tokenizer or getattr(base, "tokenizer", None)
    if tokenizer is None or not hasattr(model, "config"):
        raise ValueError("pass an LMRun, or a GPT and tokenizer=")
    return FinetuneSamples(model, tuned, tokenizer, prompts, n_new)
