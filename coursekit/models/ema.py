"""The exponential moving average of a model's weights, the one the course uses everywhere.

Sampling from the average of the last few hundred steps' weights cancels much of the
noise of training: DDPM samples from it ("Denoising Diffusion Probabilistic Models", Ho,
Jain and Abbeel, 2020), and GANs gain from it ("The Unusual Effectiveness of Averaging in
GAN Training", Yazici et al., 2019)::

    ema = EMA(model, decay=0.995)
    ...                    # after each optimiser step:
    ema.update(model)      # avg <- decay * avg + (1 - decay) * weights
    ema.model              # the averaged copy, in eval mode, to sample from
"""
from __future__ import annotations

import copy

import torch
from torch import nn


class EMA:
    """A frozen copy of ``model`` whose parameters follow the model's by a moving average.

    Parameters are averaged; buffers (running statistics, fixed scales) are copied from
    the model at every update.
    """

    def __init__(self, model: nn.Module, decay: float = 0.995):
        if not 0.0 <= decay < 1.0:
            raise ValueError(f"decay must be in [0, 1), got {decay}")
        self.decay = decay
        self.model = copy.deepcopy(model).eval().requires_grad_(False)

    @torch.no_grad()
    def update(self, model: nn.Module) -> None:
        """avg <- decay * avg + (1 - decay) * current for every parameter; buffers copied."""
        for avg, cur in zip(self.model.parameters(), model.parameters()):
            avg.lerp_(cur, 1.0 - self.decay)
        for avg, cur in zip(self.model.buffers(), model.buffers()):
            avg.copy_(cur)
