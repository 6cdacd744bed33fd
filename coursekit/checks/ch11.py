"""Checks for chapter 11, Reinforcement learning from human feedback (``exercises/11_rlhf.ipynb``).

Each check compares the learner's function with a reference written out below, on fixed
small cases and on random cases drawn from ``seed``, and says what to fix when they differ.
Exercise signatures:

* ``stable_bt_loss(r_chosen, r_rejected) -> 0-d tensor``: the Bradley-Terry loss
  mean(-log sigmoid(r_chosen - r_rejected)), finite (value and gradient) for any margin,
  without torch's log-sigmoid or softplus
* ``token_rewards(score, logp, logp_ref, mask, beta) -> (B, R)``: the per-token rewards of
  Ouyang et al. (2022): -beta (log pi - log pi_ref) on every real token, plus the reward
  model's score on each response's last real token, 0 on padding
* ``conservative_dpo_loss(pi_chosen, pi_rejected, ref_chosen, ref_rejected, beta, eps)``:
  DPO's loss (Rafailov et al. 2023) when a share ``eps`` of the labels is believed flipped
"""
from __future__ import annotations

import torch

from coursekit.checks.assertions import (as_tensor, call, diagnose, expect_close, fail, passed,
                                        require_callable, seeded)
from coursekit.checks.forbidden import ban

_R = "coursekit.rlhf."
BANS = {
    "check_stable_bt_loss": [
        ban("torch.nn.functional.logsigmoid", "torch.nn.LogSigmoid", ops=["aten::log_sigmoid_forward"],
            reason="log-sigmoid is the function to write: make -log sigmoid(d) finite for any d yourself"),
        ban("torch.nn.functional.softplus", "torch.nn.Softplus", ops=["aten::softplus"],
            reason="-log sigmoid(d) is softplus(-d): softplus would do the exercise for you"),
        ban("torch.nn.functional.binary_cross_entropy_with_logits", "torch.nn.BCEWithLogitsLoss",
            ops=["aten::binary_cross_entropy_with_logits"],
            reason="the cross-entropy with logits is the same loss, made stable for you"),
        ban(_R + "bradley_terry_loss", reason="coursekit's Bradley-Terry loss is the lesson's answer")],
    "check_token_rewards": [
        ban(_R + "per_token_kl", _R + "train_rl",
            reason="coursekit's per_token_kl sums the penalty over the response; here every token "
            "keeps its own")],
    "check_conservative_dpo_loss": [
        ban(_R + "dpo_loss", _R + "train_dpo",
            reason="coursekit's dpo_loss is the lesson's answer; write the loss with label smoothing yourself")],
}


# ---------------------------------------------------------------------------------------
# References (written independently of coursekit.rlhf)
# ---------------------------------------------------------------------------------------
def _bt(rc: torch.Tensor, rr: torch.Tensor) -> torch.Tensor:
    d = (rc - rr).double()
    return (torch.clamp(-d, min=0) + torch.log1p(torch.exp(-d.abs()))).mean()


def _bt_grad(rc: torch.Tensor, rr: torch.Tensor) -> torch.Tensor:
    """d loss / d r_chosen: -sigmoid(-(rc - rr)) / B."""
    return -torch.sigmoid(-(rc - rr).double()) / len(rc)


def _token_rewards(score, logp, logp_ref, mask, beta) -> torch.Tensor:
    out = torch.zeros(logp.shape, dtype=torch.float64)
    for b in range(logp.shape[0]):
        last = None
        for t in range(logp.shape[1]):
            if mask[b, t] > 0:
                out[b, t] = -beta * (float(logp[b, t]) - float(logp_ref[b, t]))
                last = t
        if last is not None:
            out[b, last] += float(score[b])
    return out


def _cdpo(pc, pr, rc, rr, beta, eps) -> torch.Tensor:
    h = beta * ((pc - rc) - (pr - rr)).double()
    return (-(1 - eps) * torch.nn.functional.logsigmoid(h) - eps * torch.nn.functional.logsigmoid(-h)).mean()


_gen = seeded


# ---------------------------------------------------------------------------------------
# Checks
# ---------------------------------------------------------------------------------------
def check_stable_bt_loss(stable_bt_loss, seed: int = 0) -> None:
    """``stable_bt_loss(r_chosen, r_rejected)``: mean -log sigmoid(r_chosen - r_rejected), stable."""
    name = "check_stable_bt_loss"
    require_callable(name, stable_bt_loss, "stable_bt_loss", n_args=2)
    g = _gen(seed)
    cases = [("r_chosen = [2.0], r_rejected = [0.0]", torch.tensor([2.0]), torch.tensor([0.0])),
             ("r_chosen = [0.0], r_rejected = [2.0] (the rejected one scored higher)",
              torch.tensor([0.0]), torch.tensor([2.0])),
             ("3 pairs: margins 1, -1 and 0", torch.tensor([1.0, 0.0, 3.0]), torch.tensor([0.0, 1.0, 3.0])),
             ("8 random pairs", torch.randn(8, generator=g), torch.randn(8, generator=g)),
             ("margins of +-150 (exp(150) overflows float32)", torch.tensor([150.0, -75.0, 3.0, -150.0]),
              torch.tensor([0.0, 75.0, 2.0, 0.0])),
             ("100 random pairs with margins up to +-300", 150 * torch.randn(100, generator=g),
              150 * torch.randn(100, generator=g))]
    for case, rc, rr in cases:
        rc_in, rr_in = rc.clone().requires_grad_(True), rr.clone().requires_grad_(True)
        got = call(name, stable_bt_loss, rc_in, rr_in, what="stable_bt_loss(r_chosen, r_rejected)",
                   bans=BANS[name])
        got_t = as_tensor(name, got, "the loss", shape=(), dtype_float=True)
        ref = _bt(rc, rr)
        d = (rc - rr).double()
        hint = diagnose(got_t.detach(), [
            (_bt(rr, rc), "chosen and rejected are swapped: the loss is small when r_chosen is the larger"),
            (_bt(rc, rr) * len(rc), "average over the pairs instead of summing"),
            (-_bt(rc, rr), "sign: the loss is -log sigmoid(r_chosen - r_rejected), a positive number"),
            (torch.log1p(torch.exp(-d)).mean(), "not finite for large margins")],
            "the Bradley-Terry model says P(chosen beats rejected) = sigmoid(r_chosen - r_rejected); "
            "the loss is the mean negative log of that probability", right=ref)
        if not torch.isfinite(got_t).all():
            hint = ("not finite for large margins: -log sigmoid(d) = log(1 + exp(-d)); split it as "
                    "max(-d, 0) + log(1 + exp(-|d|)) so that exp never sees a large positive number")
        expect_close(name, f"the loss for {case}", got_t.detach(), ref, atol=1e-4, rtol=1e-5, hint=hint,
                     what="the loss")
        if not got_t.requires_grad:
            fail(name, f"the gradient for {case}", "a loss that autograd can differentiate",
                 "a tensor with no gradient", "compute the loss with torch operations on the inputs "
                 "(no .item(), no .detach(), no new tensor from Python numbers)")
        grad, = torch.autograd.grad(got_t, rc_in, allow_unused=True)
        grad = torch.zeros_like(rc) if grad is None else grad
        if not torch.isfinite(grad).all():
            fail(name, f"d loss / d r_chosen for {case}", _bt_grad(rc, rr), grad,
                 "the gradient must stay finite too: avoid functions whose derivative is 0 * inf at "
                 "large margins (torch.where computes both sides, and the side it drops can be inf)")
        kink = (rc - rr) == 0      # max(-d, 0) has no derivative at d = 0: autograd picks one side there
        expect_close(name, f"d loss / d r_chosen for {case}", torch.where(kink, 0.0, grad.double()),
                     torch.where(kink, 0.0, _bt_grad(rc, rr)), atol=1e-5,
                     hint="the gradient must stay finite too: avoid functions whose derivative is "
                          "0 * inf at large margins (log of a sigmoid that rounds to 0, or exp of a large number)",
                     what="the gradient")
    passed(name, "the Bradley-Terry loss and its gradient, finite for margins up to +-300, on 6 cases")


def _random_mask(g: torch.Generator, B: int, R: int) -> torch.Tensor:
    lengths = torch.randint(1, R + 1, (B,), generator=g)
    lengths[0] = R                                                       # one full row
    return (torch.arange(R)[None] < lengths[:, None]).float()


def check_token_rewards(token_rewards, seed: int = 0) -> None:
    """``token_rewards(score, logp, logp_ref, mask, beta)``: per-token KL penalty, score on the last real token."""
    name = "check_token_rewards"
    require_callable(name, token_rewards, "token_rewards", n_args=5)
    g = _gen(seed)
    cases = [("one response of 3 tokens, no padding, beta = 0.5",
              torch.tensor([2.0]), torch.tensor([[-1.0, -2.0, -0.5]]), torch.tensor([[-1.5, -1.0, -0.5]]),
              torch.ones(1, 3), 0.5),
             ("two responses, the second padded after 2 tokens, beta = 0.1",
              torch.tensor([1.0, -3.0]), torch.tensor([[-0.2, -0.4, -0.6, -0.8], [-1.0, -2.0, -3.0, -4.0]]),
              torch.tensor([[-0.3, -0.3, -0.3, -0.3], [-0.5, -0.5, -9.0, -9.0]]),
              torch.tensor([[1.0, 1, 1, 1], [1, 1, 0, 0]]), 0.1)]
    for B, R, beta in ((5, 7, 0.05), (8, 12, 1.3), (3, 1, 0.2)):
        logp = -torch.rand(B, R, generator=g) * 3
        cases.append((f"{B} random responses of up to {R} tokens with padding, beta = {beta}",
                      torch.randn(B, generator=g) * 2, logp, logp + torch.randn(B, R, generator=g),
                      _random_mask(g, B, R), beta))
    for case, score, logp, logp_ref, mask, beta in cases:
        got = call(name, token_rewards, score.clone(), logp.clone(), logp_ref.clone(), mask.clone(), beta,
                   what="token_rewards(score, logp, logp_ref, mask, beta)", bans=BANS[name])
        got = as_tensor(name, got, "the per-token rewards", shape=tuple(logp.shape), dtype_float=True)
        ref = _token_rewards(score, logp, logp_ref, mask, beta)
        last_col = torch.zeros_like(ref)
        last_col[:, -1] = score.double()
        kl = -beta * (logp - logp_ref).double()
        hint = diagnose(got, [
            (kl + last_col, "the KL penalty is not masked, or the score is on the last column: padding "
                            "tokens get no penalty and the score goes on each row's last *real* token"),
            ((kl * mask) + last_col * mask, "the score goes on each row's last real token, not the last column"),
            (_token_rewards(score, logp, logp_ref, mask, 1.0),
             "beta is missing: the penalty is beta * (log pi - log pi_ref)"),
            (_token_rewards(score, logp_ref, logp, mask, beta),
             "sign: the penalty is -beta * (log pi - log pi_ref) (the policy pays for moving away)"),
            (kl * mask + score.double()[:, None] * mask,
             "the score is given once per response, on its last real token, not on every token")],
            "on every real token (mask 1): -beta * (logp - logp_ref); on padding: 0; then add the "
            "score to the last real token of each row", right=ref)
        expect_close(name, f"the per-token rewards for {case}", got, ref, atol=1e-5, hint=hint,
                     what="the per-token rewards")
    passed(name, "the per-token KL penalty with the score on the last real token, on 5 cases")


def check_conservative_dpo_loss(conservative_dpo_loss, seed: int = 0) -> None:
    """``conservative_dpo_loss(pi_c, pi_r, ref_c, ref_r, beta, eps)``: DPO with label smoothing eps."""
    name = "check_conservative_dpo_loss"
    require_callable(name, conservative_dpo_loss, "conservative_dpo_loss", n_args=6)
    g = _gen(seed)
    cases = [("one pair: pi = (-10, -12), ref = (-11, -11), beta = 0.5, eps = 0",
              torch.tensor([-10.0]), torch.tensor([-12.0]), torch.tensor([-11.0]), torch.tensor([-11.0]), 0.5, 0.0),
             ("the same pair with eps = 0.2", torch.tensor([-10.0]), torch.tensor([-12.0]),
              torch.tensor([-11.0]), torch.tensor([-11.0]), 0.5, 0.2)]
    for B, beta, eps in ((6, 0.1, 0.15), (16, 2.0, 0.3), (4, 0.05, 0.0), (10, 1.0, 0.5)):
        ref_c, ref_r = -30 * torch.rand(B, generator=g), -30 * torch.rand(B, generator=g)
        cases.append((f"{B} random pairs, beta = {beta}, eps = {eps}",
                      ref_c + 3 * torch.randn(B, generator=g), ref_r + 3 * torch.randn(B, generator=g),
                      ref_c, ref_r, beta, eps))
    for case, pc, pr, rc, rr, beta, eps in cases:
        got = call(name, conservative_dpo_loss, pc.clone(), pr.clone(), rc.clone(), rr.clone(), beta, eps,
                   what="conservative_dpo_loss(pi_chosen, pi_rejected, ref_chosen, ref_rejected, beta, eps)",
                   bans=BANS[name])
        got = as_tensor(name, got, "the loss", shape=(), dtype_float=True)
        ref = _cdpo(pc, pr, rc, rr, beta, eps)
        hint = diagnose(got, [
            (_cdpo(pc, pr, rc, rr, beta, 0.0), "eps is ignored: with probability eps the label is flipped, "
                                               "so add eps times the loss of the swapped pair"),
            (_cdpo(pr, pc, rr, rc, beta, eps), "chosen and rejected are swapped, or (the same loss) eps and "
                                               "1 - eps: the label is right with probability 1 - eps"),
            (_cdpo(pc, pr, rc, rr, 1.0, eps), "beta is missing: the implicit reward is beta * log(pi / ref)"),
            (_cdpo(pc, pr, torch.zeros_like(rc), torch.zeros_like(rr), beta, eps),
             "the reference's log-probabilities are not subtracted: the implicit reward is "
             "beta * (log pi(y) - log ref(y))"),
            (_cdpo(pc, pr, rc, rr, beta, eps) * len(pc), "average over the pairs instead of summing")],
            "h = beta * [(pi_chosen - ref_chosen) - (pi_rejected - ref_rejected)]; the loss is the mean of "
            "-(1 - eps) log sigmoid(h) - eps log sigmoid(-h)", right=ref)
        expect_close(name, f"the loss for {case}", got, ref, atol=1e-5, hint=hint, what="the loss")
    passed(name, "DPO's loss with label smoothing, on 6 cases")
