"""Seeding, device choice and the fast mode that the tests switch on."""
from __future__ import annotations

import os
import random

import numpy as np
import torch

FAST_ENV = "COURSEKIT_FAST"      # "1" shrinks every training budget (tests, CI)
DEVICE_ENV = "COURSEKIT_DEVICE"  # force a device, e.g. "cpu" on a machine with a GPU


def fast_mode() -> bool:
    """True when the environment variable ``COURSEKIT_FAST`` is set to a true value."""
    return os.environ.get(FAST_ENV, "").strip().lower() in {"1", "true", "yes", "on"}


def budget(default, fast):
    """Return ``default`` normally and ``fast`` in fast mode.

    Notebooks write every training length through this helper, e.g.
    ``n_steps = ck.budget(3000, fast=60)``, so the tests shrink training without
    changing the lesson's text.
    """
    return fast if fast_mode() else default


def seed_everything(seed: int = 0) -> None:
    """Seed Python's ``random``, NumPy and torch (CPU and every CUDA device)."""
    if not isinstance(seed, int) or isinstance(seed, bool):
        raise TypeError(f"seed must be an int, got {type(seed).__name__}: {seed!r}")
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)


def pick_device(prefer: str | None = None) -> torch.device:
    """Pick the fastest available device: CUDA, then Apple's MPS, then the CPU.

    Args:
        prefer: a device name to use instead ("cpu", "cuda", "mps"); the environment
            variable ``COURSEKIT_DEVICE`` does the same for a whole session.
    """
    wanted = prefer or os.environ.get(DEVICE_ENV)
    if wanted:
        device = torch.device(wanted)
        if device.type == "cuda" and not torch.cuda.is_available():
            raise RuntimeError(
                f"device {wanted!r} was asked for but CUDA is not available here; "
                "use 'cpu' or unset COURSEKIT_DEVICE")
        if device.type == "mps" and not _mps_available():
            raise RuntimeError(
                f"device {wanted!r} was asked for but Apple's MPS is not available here; "
                "use 'cpu' or unset COURSEKIT_DEVICE")
        return device
    if torch.cuda.is_available():
        return torch.device("cuda")
    if _mps_available():
        return torch.device("mps")
    return torch.device("cpu")


def _mps_available() -> bool:
    backend = getattr(torch.backends, "mps", None)
    return bool(backend is not None and backend.is_available())


def setup(seed: int = 0, device: str | None = None, quiet: bool = False,
          threads: int | None = None) -> torch.device:
    """The "run this first" call of every notebook: seed everything, pick the device.

    Args:
        seed: seed for Python, NumPy and torch.
        device: force a device name; by default the fastest available one.
        quiet: do not print the one-line summary.
        threads: CPU threads for torch. By default torch's own choice, except in fast
            mode, where the tests run several kernels side by side and one thread each
            avoids oversubscribing the cores (the course's small models lose little).
    Returns:
        The ``torch.device`` to put models and data on.
    """
    seed_everything(seed)
    if threads is None and fast_mode():
        threads = 1
    if threads is not None:
        torch.set_num_threads(int(threads))
    chosen = pick_device(device)
    from coursekit.checks import display   # a failing check shows its message, not coursekit's frames
    display.install()
    if not quiet:
        mode = "fast (tests)" if fast_mode() else "default"
        print(f"coursekit ready | torch {torch.__version__} | device: {chosen} | "
              f"seed: {seed} | mode: {mode}")
    return chosen
