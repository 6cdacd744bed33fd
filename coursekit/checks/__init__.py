"""Autograded checks, one module per chapter: ``coursekit.checks.ch03`` mirrors
``exercises/03_*.ipynb``. A check prints one pass line or raises ``CheckFailure``
(an ``AssertionError``) that says what was expected, what came back, and a hint.

Chapter modules load on first use: ``ck.checks.ch02.check_relu(relu)``.
"""
from __future__ import annotations

import importlib

from coursekit.checks.assertions import CheckFailure, hidden_seed
from coursekit.checks.display import full_tracebacks

__all__ = ["CheckFailure", "full_tracebacks", "hidden_seed"]


def __getattr__(name: str):
    if name.startswith("ch") and name[2:].isdigit():
        module = importlib.import_module(f"coursekit.checks.{name}")
        globals()[name] = module
        return module
    raise AttributeError(f"module 'coursekit.checks' has no attribute {name!r}")
