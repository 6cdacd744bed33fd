"""Checks of chapter 05 (coursekit.checks.ch05): each passes on the reference answers,
fails on the exercise stubs, and fails on typical wrong answers with a hint that names
the mistake."""
import inspect

import nbformat
import pytest
import torch
from einops import rearrange
from torch import nn
from torch.nn import functional as F

from coursekit.authoring.release import make_exercise
from coursekit.checks import CheckFailure, ch05
from coursekit.models import vae as V
from nbtools import notebook

CHECKS = ["check_reparameterise", "check_kl_divergence", "check_negative_elbo", "check_encoder",
          "check_train_step"]
# what each check is given, by name in the solution notebook
ANSWERS = {"check_reparameterise": "reparameterise", "check_kl_divergence": "kl_divergence",
           "check_negative_elbo": "negative_elbo", "check_encoder": "Encoder",
           "check_train_step": "train_step"}


def _run(nb) -> dict:
    """Run a solution or exercise notebook's set-up cells and answer cells; return the names."""
    ns: dict = {"__name__": "__exercise__"}
    code = [c for c in nb.cells if c.cell_type == "code"]
    for i, cell in enumerate(code):
        meta = cell.metadata.get("nbgrader", {})
        if i < 2 or meta.get("solution"):
            exec(compile(cell.source, f"cell{i}", "exec"), ns)
    return ns


@pytest.fixture(scope="module")
def solution_nb():
    return nbformat.read(notebook("solutions", "05"), as_version=4)


@pytest.fixture(scope="module")
def solution(solution_nb):
    return _run(solution_nb)


@pytest.fixture(scope="module")
def stubs(solution_nb):
    return _run(make_exercise(solution_nb, "05_vaes.ipynb"))


def test_every_check_has_a_check_cell_and_the_reverse(solution_nb):
    graded = {c.metadata["nbgrader"]["grade_id"] for c in solution_nb.cells
              if c.metadata.get("nbgrader", {}).get("grade")}
    public = {name for name, fn in inspect.getmembers(ch05, inspect.isfunction)
              if name.startswith("check_")}
    assert graded == public == set(CHECKS)


@pytest.mark.parametrize("check", CHECKS)
def test_check_passes_on_the_solution_notebook(solution, check, capsys):
    getattr(ch05, check)(solution[ANSWERS[check]])
    assert f"PASSED {check}" in capsys.readouterr().out


@pytest.mark.parametrize("check", CHECKS)
def test_check_fails_on_the_exercise_stub(stubs, check):
    with pytest.raises(CheckFailure, match="not written yet"):
        getattr(ch05, check)(stubs[ANSWERS[check]])


# -- reference answers written independently (package versions) pass too ---------------------------

def _package_encoder(n_latent=2):
    return V.Encoder(V.VAEConfig(n_latent=n_latent, n_hidden=64))


def _package_step(model, optimizer, x, beta=1.0):
    loss, recon, kl = V.negative_elbo(x, *model(x), beta=beta)
    optimizer.zero_grad()
    loss.backward()
    optimizer.step()
    return {"loss": loss.item(), "recon": recon.item(), "kl": kl.item()}


def _elbo_with_sigmoid_bce(x, x_logits, mu, logvar):
    recon = F.binary_cross_entropy(torch.sigmoid(x_logits), x, reduction="sum") / len(x)
    kl = V.kl_divergence(mu, logvar).mean()
    return recon + kl, recon, kl


@pytest.mark.parametrize("check, answer", [
    ("check_reparameterise", V.reparameterise),
    ("check_reparameterise", lambda mu, logvar: torch.distributions.Normal(mu, torch.exp(0.5 * logvar)).rsample()),
    ("check_kl_divergence", V.kl_divergence),
    ("check_kl_divergence", lambda mu, logvar: torch.distributions.kl_divergence(
        torch.distributions.Normal(mu, torch.exp(0.5 * logvar)),
        torch.distributions.Normal(torch.zeros_like(mu), torch.ones_like(mu))).sum(1)),
    ("check_negative_elbo", lambda x, xl, mu, lv: V.negative_elbo(x, xl, mu, lv)),
    ("check_negative_elbo", _elbo_with_sigmoid_bce),
    ("check_encoder", _package_encoder),
    ("check_train_step", _package_step),
], ids=["reparam-package", "reparam-rsample", "kl-package", "kl-distributions", "elbo-package",
        "elbo-sigmoid-bce", "encoder-package", "step-package"])
def test_check_passes_on_other_correct_answers(check, answer, capsys):
    getattr(ch05, check)(answer)
    assert f"PASSED {check}" in capsys.readouterr().out


# -- typical wrong answers ------------------------------------------------------------------------------

def _std(logvar):
    return torch.exp(0.5 * logvar)


def _reparam_fixed_eps(mu, logvar):
    torch.manual_seed(0)
    return mu + _std(logvar) * torch.randn_like(mu)


WRONG_REPARAM = {
    "returns mu": (lambda mu, logvar: mu, "no noise"),
    "std = exp(logvar)": (lambda mu, logvar: mu + torch.exp(logvar) * torch.randn_like(mu), "variance"),
    "torch.normal": (lambda mu, logvar: torch.normal(mu, _std(logvar)), "torch.normal"),
    "distribution.sample()": (lambda mu, logvar: torch.distributions.Normal(mu, _std(logvar)).sample(),
                              "requires_grad is False"),
    "detached": (lambda mu, logvar: (mu + _std(logvar) * torch.randn_like(mu)).detach(), "requires_grad"),
    "uniform noise": (lambda mu, logvar: mu + _std(logvar) * torch.rand_like(mu), "uniform"),
    "one eps for the batch": (lambda mu, logvar: mu + _std(logvar) * torch.randn(mu.shape[1]), "no noise"),
    "same eps every call": (_reparam_fixed_eps, "new eps"),
    "wrong shape": (lambda mu, logvar: (mu + _std(logvar) * torch.randn_like(mu)).sum(1), "wrong shape"),
    "returns a list": (lambda mu, logvar: (mu + _std(logvar)).tolist(), "torch.Tensor"),
}


@pytest.mark.parametrize("name", sorted(WRONG_REPARAM))
def test_check_reparameterise_fails_on_wrong_answers(name):
    fn, hint = WRONG_REPARAM[name]
    with pytest.raises(CheckFailure, match=hint):
        ch05.check_reparameterise(fn)


def _kl_terms(mu, logvar):
    return mu ** 2 + logvar.exp() - 1 - logvar


WRONG_KL = {
    "sign flipped": (lambda mu, lv: -0.5 * _kl_terms(mu, lv).sum(1), "sign"),
    "no one half": (lambda mu, lv: _kl_terms(mu, lv).sum(1), "1/2"),
    "mean over latent": (lambda mu, lv: 0.5 * _kl_terms(mu, lv).mean(1), "averaged over the latent"),
    "summed over batch too": (lambda mu, lv: 0.5 * _kl_terms(mu, lv).sum(), "one number for the whole batch"),
    "not summed": (lambda mu, lv: 0.5 * _kl_terms(mu, lv), "wrong shape"),
    "logvar taken as log sigma": (lambda mu, lv: 0.5 * (mu ** 2 + (2 * lv).exp() - 1 - 2 * lv).sum(1),
                                  "log\\(sigma\\^2\\)"),
    "no mu term": (lambda mu, lv: 0.5 * (lv.exp() - 1 - lv).sum(1), "mu\\^2 term"),
    "returns a float": (lambda mu, lv: float(0.5 * _kl_terms(mu, lv).sum()), "torch.Tensor"),
}


@pytest.mark.parametrize("name", sorted(WRONG_KL))
def test_check_kl_divergence_fails_on_wrong_answers(name):
    fn, hint = WRONG_KL[name]
    with pytest.raises(CheckFailure, match=hint):
        ch05.check_kl_divergence(fn)


def _bce(x_logits, x):
    return F.binary_cross_entropy_with_logits(x_logits, x, reduction="none").flatten(1).sum(1)


WRONG_ELBO = {
    "recon averaged over pixels": (
        lambda x, xl, mu, lv: (lambda r, k: (r + k, r, k))(
            F.binary_cross_entropy_with_logits(xl, x), V.kl_divergence(mu, lv).mean()),
        "averaged the cross-entropy over pixels"),
    "summed over the batch": (
        lambda x, xl, mu, lv: (lambda r, k: (r + k, r, k))(_bce(xl, x).sum(), V.kl_divergence(mu, lv).sum()),
        "summed over the batch too"),
    "squared error": (
        lambda x, xl, mu, lv: (lambda r, k: (r + k, r, k))(
            ((torch.sigmoid(xl) - x) ** 2).flatten(1).sum(1).mean(), V.kl_divergence(mu, lv).mean()),
        "squared error"),
    "recon minus kl": (
        lambda x, xl, mu, lv: (lambda r, k: (r - k, r, k))(_bce(xl, x).mean(), V.kl_divergence(mu, lv).mean()),
        "recon \\+ kl"),
    "no kl in loss": (
        lambda x, xl, mu, lv: (lambda r, k: (r, r, k))(_bce(xl, x).mean(), V.kl_divergence(mu, lv).mean()),
        "KL term is missing"),
    "kl sign": (
        lambda x, xl, mu, lv: (lambda r, k: (r - k, r, -k))(_bce(xl, x).mean(), V.kl_divergence(mu, lv).mean()),
        "wrong sign"),
    "returns only the loss": (lambda x, xl, mu, lv: V.negative_elbo(x, xl, mu, lv)[0], "tuple"),
    "returns floats": (lambda x, xl, mu, lv: tuple(t.item() for t in V.negative_elbo(x, xl, mu, lv)),
                       "gradients of the loss"),
    "logits used as probabilities": (
        lambda x, xl, mu, lv: (lambda r, k: (r + k, r, k))(
            F.binary_cross_entropy(xl, x, reduction="sum") / len(x), V.kl_divergence(mu, lv).mean()),
        "raised"),
}


@pytest.mark.parametrize("name", sorted(WRONG_ELBO))
def test_check_negative_elbo_fails_on_wrong_answers(name):
    fn, hint = WRONG_ELBO[name]
    with pytest.raises(CheckFailure, match=hint):
        ch05.check_negative_elbo(fn)


class _Base(nn.Module):
    def __init__(self, n_latent=2, n_hidden=32):
        super().__init__()
        self.body = nn.Sequential(nn.Linear(64, n_hidden), nn.ReLU())
        self.to_mu = nn.Linear(n_hidden, n_latent)
        self.to_logvar = nn.Linear(n_hidden, n_latent)


class OneTensor(_Base):
    def forward(self, x):
        h = self.body(x.flatten(1))
        return torch.cat([self.to_mu(h), self.to_logvar(h)], 1)


class SameHead(_Base):
    def forward(self, x):
        mu = self.to_mu(self.body(x.flatten(1)))
        return mu, mu


class ReluLogvar(_Base):
    def forward(self, x):
        h = self.body(x.flatten(1))
        return self.to_mu(h), torch.relu(self.to_logvar(h))


class MixedImages(_Base):
    def forward(self, x):
        h = self.body(x.reshape(64, -1).T)                      # mixes pixels of different images
        return self.to_mu(h), self.to_logvar(h)


class Detached(_Base):
    def forward(self, x):
        h = self.body(x.flatten(1))
        return self.to_mu(h).detach(), self.to_logvar(h).detach()


class FixedLatent(_Base):
    def __init__(self, n_latent=2):
        super().__init__(n_latent=2)

    def forward(self, x):
        h = self.body(rearrange(x, "b c h w -> b (c h w)"))
        return self.to_mu(h), self.to_logvar(h)


class NoParameters(nn.Module):
    def __init__(self, n_latent=2):
        super().__init__()
        self.n_latent = n_latent

    def forward(self, x):
        return x.flatten(1)[:, :self.n_latent], x.flatten(1)[:, -self.n_latent:]


WRONG_ENCODER = {
    "one tensor": (OneTensor, "a pair \\(mu, logvar\\)"),
    "same head": (SameHead, "two separate nn.Linear heads"),
    "relu on logvar": (ReluLogvar, "do not pass it through"),
    "images mixed": (MixedImages, "flatten each image on its own"),
    "detached outputs": (Detached, "requires_grad is False"),
    "ignores n_latent": (FixedLatent, "wrong shape"),
    "no parameters": (NoParameters, "no parameters"),
    "an instance, not the class": (_package_encoder(2), "pass the class"),
}


@pytest.mark.parametrize("name", sorted(WRONG_ENCODER))
def test_check_encoder_fails_on_wrong_answers(name):
    cls, hint = WRONG_ENCODER[name]
    with pytest.raises(CheckFailure, match=hint):
        ch05.check_encoder(cls)


def _step(zero_grad=True, use_beta=True, step=True, forward_twice=False, returns="dict"):
    def train_step(model, optimizer, x, beta=1.0):
        x_logits, mu, logvar = model(x)
        if forward_twice:
            _, mu, logvar = model(x)
        _, recon, kl = V.negative_elbo(x, x_logits, mu, logvar)
        loss = recon + (beta if use_beta else 1.0) * kl
        if zero_grad:
            optimizer.zero_grad()
        loss.backward()
        if step:
            optimizer.step()
        if returns == "tuple":
            return loss.item(), recon.item(), kl.item()
        return {"loss": loss.item(), "recon": recon.item(), "kl": kl.item()}
    return train_step


WRONG_STEP = {
    "no zero_grad": (_step(zero_grad=False), "zero_grad"),
    "beta ignored": (_step(use_beta=False), "beta"),
    "no optimizer.step": (_step(step=False), "optimizer.step\\(\\)"),
    "model called twice": (_step(forward_twice=True), "call model\\(x\\) once"),
    "returns a tuple": (_step(returns="tuple"), "a dict with keys"),
}


@pytest.mark.parametrize("name", sorted(WRONG_STEP))
def test_check_train_step_fails_on_wrong_answers(name):
    fn, hint = WRONG_STEP[name]
    with pytest.raises(CheckFailure, match=hint):
        ch05.check_train_step(fn)


@pytest.mark.parametrize("check", CHECKS)
def test_checks_do_not_change_the_learners_random_numbers(solution, check, capsys):
    torch.manual_seed(123)
    expected = torch.rand(3)
    torch.manual_seed(123)
    getattr(ch05, check)(solution[ANSWERS[check]])
    assert torch.equal(torch.rand(3), expected)


@pytest.mark.parametrize("check", CHECKS)
def test_checks_reject_non_functions_clearly(check):
    with pytest.raises(CheckFailure, match="hint"):
        getattr(ch05, check)(torch.zeros(3))
