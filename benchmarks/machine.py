"""The line every benchmark prints first: what machine, how many threads, how busy."""
from __future__ import annotations

import os
import platform

import torch


def describe(device) -> float:
    """Print the machine, torch, threads, device and load average; return the 1-minute load."""
    load = os.getloadavg()[0] if hasattr(os, "getloadavg") else float("nan")
    print(f"machine: {platform.machine()}, {os.cpu_count()} cores, torch {torch.__version__} "
          f"with {torch.get_num_threads()} threads, device {device}; "
          f"load average {load:.2f} (timings are noisy on a shared machine)")
    return load
