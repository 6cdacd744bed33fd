"""Interactive widgets of the lessons. Each is a ``PlotWidget``: controls that redraw a
matplotlib figure into an image, so the same object is testable in plain Python
(set a control's value, compare ``widget.png`` before and after) and in a browser.

Widget modules load on first use: ``ck.widgets.neuron_playground()``.
"""
from __future__ import annotations

import importlib

# public name -> module that defines it; filled in by each chapter's widget module
_WIDGETS = {
    "PlotWidget": "base",
    "neuron_playground": "neuron",
    "lr_explorer": "lr_explorer",
    "snapshot_scrubber": "snapshots",
    "latent_grid_explorer": "latent",
    "latent_sliders": "latent_sliders",
    "attention_viewer": "attention",
    "timestep_scrubber": "diffusion",
    "sampling_explorer": "sampling",
    "tokenizer_explorer": "tokenizer",
    "scaling_explorer": "scaling",
    "guidance_explorer": "guidance",
    "finetune_samples": "finetune",
    "rlhf_explorer": "rlhf",
    "applications_gallery": "applications",
    "tradeoff_explorer": "challenges",
    "ethics_explorer": "ethics",
}


def __getattr__(name: str):
    if name in _WIDGETS:
        module = importlib.import_module(f"coursekit.widgets.{_WIDGETS[name]}")
        value = getattr(module, name)
        globals()[name] = value
        return value
    raise AttributeError(f"module 'coursekit.widgets' has no attribute {name!r}")
