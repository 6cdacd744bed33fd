"""Chapter 07: the checks pass on the reference answers and fail, with the right hint, on
the stub and on typical wrong answers; the checks' references agree with
coursekit.models.diffusion; the lesson's inline code gives the same numbers as the
package under the same seed; the released stubs fail (answer key: test_check_contract.py)."""
from __future__ import annotations

import pytest
import torch
from nbtools import exec_answer_cells, exec_tagged_cells, notebook
from torch.nn import functional as F

from coursekit.checks import ch07
from coursekit.checks.assertions import CheckFailure
from coursekit.models import diffusion as D
from coursekit.models.unet import UNET_PRESETS, UNet, timestep_embedding


# ---------------------------------------------------------------------------------------
# Reference answers (as in solutions/07_diffusion.ipynb)
# ---------------------------------------------------------------------------------------
def alphas_cumprod(betas):
    return torch.cumprod(1 - betas, dim=0)


def q_sample(x0, t, alphas_cumprod, eps):
    abar = alphas_cumprod[t].view(-1, 1, 1, 1)
    return abar.sqrt() * x0 + (1 - abar).sqrt() * eps


def diffusion_loss(model, x0, t, eps, alphas_cumprod):
    return F.mse_loss(model(q_sample(x0, t, alphas_cumprod, eps), t), eps)


def ddpm_step(eps, t, xt, betas, z):
    alphas = 1 - betas
    abar = torch.cumprod(alphas, dim=0)
    mean = (xt - betas[t] / (1 - abar[t]).sqrt() * eps) / alphas[t].sqrt()
    if t == 0:
        return mean
    var = (1 - abar[t - 1]) / (1 - abar[t]) * betas[t]
    return mean + var.sqrt() * z


def ddim_step(eps, t, t_prev, xt, alphas_cumprod):
    abar_t = alphas_cumprod[t]
    abar_prev = alphas_cumprod[t_prev] if t_prev >= 0 else torch.tensor(1.0)
    x0 = (xt - (1 - abar_t).sqrt() * eps) / abar_t.sqrt()
    return abar_prev.sqrt() * x0 + (1 - abar_prev).sqrt() * eps


# The checks' right and wrong answers live in tests/answers/ch07.py and run in
# tests/test_check_contract.py; here only what is specific to this chapter.
REFERENCE = {"alphas_cumprod": alphas_cumprod, "q_sample": q_sample, "diffusion_loss": diffusion_loss,
             "ddpm_step": ddpm_step, "ddim_step": ddim_step}


def _check(name):
    return getattr(ch07, f"check_{name}")


@pytest.mark.parametrize("name", list(REFERENCE))
@pytest.mark.parametrize("seed", [0, 1, 2, 12345])
def test_check_passes_on_the_reference_for_any_seed(name, seed, capsys):
    _check(name)(REFERENCE[name], seed=seed)
    assert capsys.readouterr().out.startswith(f"PASSED check_{name}")


@pytest.mark.parametrize("name", list(REFERENCE))
def test_check_fails_when_given_a_result_instead_of_a_function(name):
    with pytest.raises(CheckFailure, match="pass the function itself"):
        _check(name)(torch.zeros(3))


def test_check_references_agree_with_the_package():
    """The checks' references and coursekit.models.diffusion are two independent codings."""
    betas = D.cosine_betas(100).float()
    s = D.NoiseSchedule(betas)
    assert torch.allclose(ch07._alphas_cumprod(betas).float(), s.alphas_cumprod, atol=1e-6)
    assert torch.allclose(ch07._betas(100), s.betas, atol=1e-7)
    x0, eps, z = torch.rand(3, 2, 1, 8, 8).unbind(0)
    t = torch.tensor([3, 50])
    assert torch.allclose(ch07._q_sample(x0, t, s.alphas_cumprod, eps).float(),
                          D.q_sample(x0, t, s.alphas_cumprod, eps), atol=1e-6)
    for step in (0, 1, 60):
        assert torch.allclose(ch07._ddpm_step(eps, step, x0, betas, z).float(),
                              D.ddpm_step(eps, step, x0, s, z, clip_x0=False), atol=1e-4)
    for step, prev in ((60, 20), (5, -1)):
        assert torch.allclose(ch07._ddim_step(eps, step, prev, x0, s.alphas_cumprod).float(),
                              D.ddim_step(eps, step, prev, x0, s.alphas_cumprod, clip_x0=False), atol=1e-4)


# ---------------------------------------------------------------------------------------
# The notebooks: inline code equals the package; released stubs fail
# ---------------------------------------------------------------------------------------

EXERCISES = ["alphas_cumprod", "q_sample", "diffusion_loss", "ddpm_step", "ddim_step"]


@pytest.fixture(scope="module")
def lesson():
    before = torch.get_num_threads()
    ns = exec_tagged_cells(notebook("notebooks", "07"))
    torch.set_num_threads(1)
    yield ns
    torch.set_num_threads(before)


@pytest.mark.parametrize("T", [10, 100, 1000])
def test_lesson_schedules_match_the_package(lesson, T):
    assert torch.equal(lesson["linear_betas"](T), D.linear_betas(T))
    assert torch.equal(lesson["cosine_betas"](T), D.cosine_betas(T))
    betas = D.cosine_betas(T)
    assert torch.equal(lesson["alphas_cumprod_from_betas"](betas), D.alphas_cumprod_from_betas(betas))


def test_lesson_forward_process_and_loss_match_the_package(lesson):
    s = D.NoiseSchedule(D.cosine_betas(100))
    x0 = torch.rand(5, 1, 8, 8) * 2 - 1
    t = torch.tensor([0, 1, 50, 98, 99])
    torch.manual_seed(3)
    a = lesson["q_sample"](x0, t, s.alphas_cumprod)
    torch.manual_seed(3)
    b = D.q_sample(x0, t, s.alphas_cumprod)
    assert torch.equal(a, b)
    model = UNet(UNET_PRESETS["nano"])
    torch.manual_seed(4)
    a = lesson["diffusion_loss"](model, x0, s.alphas_cumprod)
    torch.manual_seed(4)
    b = D.diffusion_loss(model, x0, s.alphas_cumprod)
    assert torch.equal(a, b)


def test_lesson_unet_matches_the_package(lesson):
    cfg = D.DIFFUSION_PRESETS["digits"].unet
    torch.manual_seed(0)
    ours = lesson["UNet"](in_channels=cfg.in_channels, base_channels=cfg.base_channels,
                          time_dim=cfg.time_dim, n_groups=cfg.n_groups)
    torch.manual_seed(0)
    package = UNet(cfg)
    assert ours.state_dict().keys() == package.state_dict().keys()
    x, t = torch.randn(6, 1, 8, 8), torch.tensor([0, 1, 10, 40, 80, 99])
    assert torch.equal(ours(x, t), package(x, t))
    default = lesson["UNet"]()      # the lesson builds UNet() with the preset's sizes
    assert sum(p.numel() for p in default.parameters()) == sum(p.numel() for p in package.parameters())
    assert torch.equal(lesson["timestep_embedding"](t, 64), timestep_embedding(t, 64))


@pytest.mark.parametrize("clip", [True, False])
def test_lesson_steps_match_the_package(lesson, clip):
    s = D.NoiseSchedule(D.cosine_betas(100))
    xt, eps, z = torch.randn(3, 4, 1, 8, 8).unbind(0)
    eps = 2 * eps                      # large enough for clipping to matter
    for t in (0, 1, 50, 99):
        assert torch.equal(lesson["ddpm_step"](eps, t, xt, s, z, clip), D.ddpm_step(eps, t, xt, s, z, clip))
    for t, t_prev, eta in ((99, 74, 0.0), (10, -1, 0.0), (60, 30, 1.0), (5, -1, 0.5)):
        assert torch.equal(lesson["ddim_step"](eps, t, t_prev, xt, s.alphas_cumprod, eta, z, clip),
                           D.ddim_step(eps, t, t_prev, xt, s.alphas_cumprod, eta, z, clip))
    for n in (1, 2, 7, 20, 100):
        assert lesson["ddim_timesteps"](100, n) == D.ddim_timesteps(100, n)


def test_lesson_samplers_match_the_package_under_the_same_seed(lesson):
    s = D.NoiseSchedule(D.cosine_betas(30))
    torch.manual_seed(0)
    model = UNet(UNET_PRESETS["nano"])
    torch.manual_seed(5)
    a = lesson["sample_ddpm"](model, s, 4)
    torch.manual_seed(5)
    b = D.ddpm_sample(model, s, 4)
    assert torch.equal(a, b)
    torch.manual_seed(6)
    a = lesson["sample_ddim"](model, s, 4, n_steps=7)
    torch.manual_seed(6)
    b = D.ddim_sample(model, s, 4, n_steps=7)
    assert torch.equal(a, b)


def test_the_lessons_training_loop_is_train_diffusion(lesson):
    """The lesson's loop (seed, schedule, model, Adam, EMA; then minibatch, loss, step, EMA)."""
    cfg = D.DIFFUSION_PRESETS["tiny"]
    x = torch.rand(50, 1, 8, 8) * 2 - 1
    run = D.train_diffusion(cfg, x, 4, seed=0, progress=False)
    torch.manual_seed(0)
    schedule = D.NoiseSchedule.from_config(cfg)
    model = UNet(cfg.unet)
    opt = torch.optim.Adam(model.parameters(), lr=cfg.lr)
    ema = D.EMA(model, cfg.ema_decay)
    for _ in range(4):
        idx = torch.randint(0, len(x), (cfg.batch_size,))
        loss = lesson["diffusion_loss"](model, x[idx], schedule.alphas_cumprod)
        opt.zero_grad()
        loss.backward()
        opt.step()
        ema.update(model)
    for (name, a), b in zip(run.ema_model.state_dict().items(), ema.model.state_dict().values()):
        assert torch.equal(a, b), name
    assert len(run.history["loss"]) == 4 and run.seconds > 0


def _answer_cells(folder: str) -> dict:
    return exec_answer_cells(folder, "07", {"torch": torch, "F": F})


def test_the_released_exercises_fail_every_check_until_written():
    ns = _answer_cells("exercises")
    for name in EXERCISES:
        with pytest.raises(CheckFailure, match="not written yet"):
            _check(name)(ns[name])
