"""The timestep scrubber: slide along a sampling run, from pure noise to a finished image.

    scrubber = ck.widgets.timestep_scrubber(model, schedule)    # runs DDPM and DDIM once
    scrubber                                                     # in a notebook: the widget
    scrubber.set(sampler="DDIM (20 steps)", step=10)             # in code or tests
    scrubber.timestep, scrubber.shown.shape                      # what is drawn now
"""
from __future__ import annotations

from collections.abc import Mapping

import ipywidgets as W
import torch

from coursekit.widgets.base import PlotWidget


class TimestepScrubber(PlotWidget):
    """A PlotWidget with a sampler menu and a step slider over precomputed trajectories.

    Attributes (the state tests can read; all refer to the frame drawn last):
        trajectories: sampler name -> ``coursekit.models.diffusion.Trajectory``.
        sampler: the selected sampler's name.
        step: how many denoising steps have been taken (0 = pure noise).
        timestep: the timestep t of the frame (-1 for the finished sample).
        noise_std: sqrt(1 - abar_t), the share of noise in the frame (0 when finished).
        shown: (N, C, H, W) the images x_t drawn in the top row.
        shown_x0: (N, C, H, W) the model's guess of the clean images, drawn below.
    """

    def __init__(self, trajectories: Mapping, alphas_cumprod: torch.Tensor, n_images: int):
        if not trajectories:
            raise ValueError("timestep_scrubber needs at least one trajectory")
        self.trajectories = dict(trajectories)
        self.alphas_cumprod = alphas_cumprod.detach().float().cpu()
        self.n_images = n_images
        first = next(iter(self.trajectories.values()))
        controls = {
            "sampler": W.Dropdown(options=list(self.trajectories), description="sampler"),
            "step": W.IntSlider(value=0, min=0, max=len(first) - 1, description="step",
                                continuous_update=False, layout=W.Layout(width="420px")),
        }
        super().__init__(controls, self._draw_frame, figsize=(max(6.0, 0.8 * n_images + 3.5), 3.2),
                         title="Sampling, step by step: from pure noise (step 0) to an image")

    def noise_std_of(self, timestep: int) -> float:
        """sqrt(1 - abar_t) for a timestep; 0 for the finished sample (t = -1)."""
        return 0.0 if timestep < 0 else float((1 - self.alphas_cumprod[timestep]).sqrt())

    def _on_change(self, change) -> None:
        # A new sampler has its own number of steps: rescale the slider, keeping the
        # same fraction of the way from noise to image, then redraw once.
        if change.get("owner") is self.controls["sampler"]:
            slider = self.controls["step"]
            old = self.trajectories.get(change.get("old"))
            frac = slider.value / max(len(old) - 1, 1) if old is not None else 0.0
            n_frames = len(self.trajectories[change["new"]])
            holding, self._holding = self._holding, True
            slider.max = n_frames - 1
            slider.value = round(frac * (n_frames - 1))
            self._holding = holding
        super()._on_change(change)

    def _draw_frame(self, fig, values) -> None:
        from coursekit.plots import show_images

        traj = self.trajectories[values["sampler"]]
        k = min(int(values["step"]), len(traj) - 1)
        n = self.n_images
        self.sampler, self.step = values["sampler"], k
        self.timestep = int(traj.timesteps[k])
        self.noise_std = self.noise_std_of(self.timestep)
        self.shown = traj.xs[k, :n]                                        # (N, C, H, W)
        self.shown_x0 = traj.x0_preds[k, :n]                               # (N, C, H, W)

        grid = fig.add_gridspec(2, 2, width_ratios=[max(n, 2), 3.2], wspace=0.25, hspace=0.35)
        ax_xt, ax_x0 = fig.add_subplot(grid[0, 0]), fig.add_subplot(grid[1, 0])
        t_text = "finished sample" if self.timestep < 0 else f"t = {self.timestep}"
        show_images(self.shown, nrow=n, ax=ax_xt, vmin=-1, vmax=1,
                    title=f"x_t after {k} of {len(traj) - 1} steps ({t_text})")
        show_images(self.shown_x0, nrow=n, ax=ax_x0, vmin=-1, vmax=1,
                    title="predicted x0" if k > 0 else "predicted x0 (none before the first step)")
        ax = fig.add_subplot(grid[:, 1])
        stds = [self.noise_std_of(int(t)) for t in traj.timesteps]
        ax.plot(range(len(traj)), stds, color="tab:blue")
        ax.plot([k], [self.noise_std], "o", color="tab:red")
        ax.set_xlabel("sampling step")
        ax.set_ylabel(r"noise level $\sqrt{1-\bar\alpha_t}$")
        ax.set_ylim(-0.05, 1.05)
        ax.grid(alpha=0.3)


def timestep_scrubber(model=None, schedule=None, n_images: int = 8, ddim_steps: int = 20,
                      seed: int = 0, device=None, trajectories: Mapping | None = None) -> TimestepScrubber:
    """A slider over the steps of DDPM and DDIM sampling, from the same starting noise.

    Args:
        model: a trained noise predictor (``coursekit.models.unet.UNet``); not needed
            when ``trajectories`` are given.
        schedule: its ``NoiseSchedule`` (used for the noise-level curve).
        n_images: how many samples to show side by side.
        ddim_steps: number of DDIM steps (DDPM always takes all T).
        seed: seed of the starting noise (both samplers start from the same noise).
        device: where to run the model (default: the model's device).
        trajectories: precomputed name -> Trajectory, instead of running the model.
    Returns:
        A TimestepScrubber (display it in a notebook; ``.set(sampler=..., step=...)``).
    """
    from coursekit.models.diffusion import ddim_sample, ddpm_sample

    if schedule is None:
        raise ValueError("timestep_scrubber needs the NoiseSchedule the model was trained with")
    if trajectories is None:
        if model is None:
            raise ValueError("pass a trained model (or precomputed trajectories)")
        if not isinstance(n_images, int) or n_images < 1:
            raise ValueError(f"n_images must be a positive int, got {n_images!r}")
        cfg = model.config
        noise = torch.randn((n_images, cfg.in_channels, cfg.image_size, cfg.image_size),
                            generator=torch.Generator().manual_seed(seed))  # (N, C, H, W)
        gen = torch.Generator().manual_seed(seed + 1)
        _, ddpm = ddpm_sample(model, schedule, n_images, device=device, generator=gen, noise=noise,
                              return_trajectory=True)
        _, ddim = ddim_sample(model, schedule, n_images, n_steps=ddim_steps, device=device,
                              generator=gen, noise=noise, return_trajectory=True)
        trajectories = {f"DDPM ({len(ddpm) - 1} steps)": ddpm, f"DDIM ({len(ddim) - 1} steps)": ddim}
    shown = min(n_images, min(t.xs.shape[1] for t in trajectories.values()))
    return TimestepScrubber(trajectories, schedule.alphas_cumprod, shown)
