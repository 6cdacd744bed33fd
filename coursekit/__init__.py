"""coursekit: the reusable code behind the course "How generative AI works".

Importing coursekit is light: torch is imported, but matplotlib, ipywidgets and the
chapter modules load only when first used::

    import coursekit as ck
    device = ck.setup(seed=0)          # seeds everything, picks cuda / mps / cpu
    n_steps = ck.budget(2000, fast=50) # training length: default vs fast (CI) mode
"""
from __future__ import annotations

import importlib

from coursekit.runtime import budget, fast_mode, pick_device, seed_everything, setup
from coursekit.train import History, Run, progress, train

__version__ = "0.1.0"

__all__ = [
    "setup", "seed_everything", "pick_device", "fast_mode", "budget",
    "train", "History", "Run", "progress",
    "checks", "data", "models", "plots", "widgets", "autograd", "optim", "lm", "sampling", "zoo",
]

# Sub-packages loaded on first attribute access (PEP 562), so that
# `import coursekit` does not pay for matplotlib or ipywidgets.
_LAZY = {"checks", "data", "models", "plots", "widgets", "autograd", "optim", "doctor", "lm",
         "sampling", "zoo"}


def __getattr__(name: str):
    if name in _LAZY:
        module = importlib.import_module(f"coursekit.{name}")
        globals()[name] = module
        return module
    raise AttributeError(f"module 'coursekit' has no attribute {name!r}")
