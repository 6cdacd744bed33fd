"""The applications gallery: samples of lesson 15's models, each marked valid or not.

    gallery = ck.widgets.applications_gallery({"code": code_run, "tunes": tune_run,
                                               "SMILES": smiles_run, "SELFIES": selfies_run})
    gallery                                     # in a notebook: the widget
    gallery.set(application="SMILES", temperature=1.2)
    gallery.samples, gallery.valid, gallery.validity

A dropdown picks the model, a slider the sampling temperature. Each sample is shown as text
with a mark: for code, whether its complete lines parse (``ast.parse``); for tunes, whether
the ABC reader reads it; for molecules, whether RDKit reads the SMILES (a SELFIES model's samples
are decoded to SMILES first). Samples are drawn from a fixed seed, so only the temperature and
the model change what is shown.
"""
from __future__ import annotations

import ipywidgets as W

from coursekit.widgets.base import PlotWidget

KINDS = {"code": "code", "tunes": "tunes", "smiles": "molecules", "selfies": "molecules"}
"""The names the gallery takes (case does not matter) and what each one's samples are."""


def _kind(name: str, run) -> str:
    if getattr(run, "tokenizer", None) is None:
        raise TypeError(f"{name!r} is not a language-model run: pass ck.zoo.load('code-gpt'), 'tune-gpt', "
                        "'smiles-gpt' or 'selfies-gpt'")
    kind = KINDS.get(str(name).lower())
    if kind is None:
        raise ValueError(f"name each model by what it writes: one of {list(KINDS)}, got {name!r}")
    return kind


class ApplicationsGallery(PlotWidget):
    """A PlotWidget: a dropdown over the models, a temperature slider, the samples as text.

    Attributes (of the figure drawn last): samples (the texts), valid (one bool each),
    validity (the share valid), kind ("code", "tunes" or "molecules").
    """

    def __init__(self, runs: dict, n: int, seed: int, length: int):
        if not isinstance(runs, dict) or not runs:
            raise ValueError("runs must be a non-empty dict {name: run}")
        if not isinstance(n, int) or not 1 <= n <= 24:
            raise ValueError(f"n must be an int from 1 to 24, got {n!r}")
        self.runs, self.n, self.seed, self.length = dict(runs), n, seed, length
        self.kinds = {name: _kind(name, run) for name, run in self.runs.items()}
        controls = {"application": W.Dropdown(options=list(self.runs), description="model"),
                    "temperature": W.FloatSlider(value=0.8, min=0.2, max=1.6, step=0.1, description="temperature",
                                                 continuous_update=False)}
        super().__init__(controls, self._draw_gallery, figsize=(9, 0.32 * n + 0.8),
                         title="Samples of lesson 15's models, each checked by its domain's reader")

    def draw_samples(self, name: str, temperature: float) -> tuple[list[str], list[bool]]:
        """The samples of model ``name`` at ``temperature`` and whether each is valid."""
        from coursekit.applications.code import complete_lines, parses, sample_code
        from coursekit.applications.molecules import canonical, sample_molecules
        from coursekit.applications.music import read_tune, sample_tunes

        run, kind = self.runs[name], self.kinds[name]
        if kind == "code":
            texts = sample_code(run, self.n, self.length, temperature, self.seed)
            return texts, [bool(complete_lines(t).strip()) and parses(complete_lines(t)) for t in texts]
        if kind == "tunes":
            texts = sample_tunes(run, self.n, self.length, temperature, self.seed)
            ok = []
            for t in texts:
                try:
                    read_tune(t)
                    ok.append(True)
                except ValueError:
                    ok.append(False)
            return texts, ok
        texts = sample_molecules(run, self.n, temperature, self.seed)
        return texts, [canonical(t) is not None for t in texts]

    def _draw_gallery(self, fig, values) -> None:
        name, temperature = values["application"], float(values["temperature"])
        self.kind = self.kinds[name]
        self.samples, self.valid = self.draw_samples(name, temperature)
        self.validity = sum(self.valid) / len(self.valid)
        ax = fig.add_subplot(111)
        ax.set_axis_off()
        for i, (text, ok) in enumerate(zip(self.samples, self.valid)):
            line = text.replace("\n", " \u23ce ")
            line = line if len(line) <= 110 else line[:107] + "..."
            ax.text(0.0, 1 - (i + 0.5) / self.n, ("\u2713 " if ok else "\u2717 ") + line, family="monospace",
                    fontsize=7, color="tab:green" if ok else "tab:red", va="center", transform=ax.transAxes)
        fig.suptitle(f"{name} at temperature {temperature:.1f}: {sum(self.valid)} of {self.n} valid", fontsize=9)


def applications_gallery(runs: dict, n: int = 12, seed: int = 0, length: int = 240) -> ApplicationsGallery:
    """A gallery of samples of lesson 15's models with a validity mark on each.

    Args:
        runs: {name: run} with names "code", "tunes", "SMILES", "SELFIES" (any of them) and the zoo's
            "code-gpt", "tune-gpt", "smiles-gpt", "selfies-gpt" runs.
        n: samples shown (1 to 24).
        seed: seed of the samples.
        length: characters sampled for code and tunes.
    Returns:
        An ApplicationsGallery (display it; ``.set(application=..., temperature=...)`` in code).
    """
    return ApplicationsGallery(runs, n, seed, length)
