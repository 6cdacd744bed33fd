"""Chapter 11's answer table: right answers written apart from the checks' references,
and the typical mistakes and dodges each check must refuse (see answers/__init__.py)."""
from __future__ import annotations

import torch
import torch.nn.functional as F

import coursekit.rlhf as RL
from answers import Case

# --- right answers (another coding than the checks' references) ---------------------------


def stable_bt_loss(r_chosen, r_rejected):
    d = r_chosen - r_rejected
    # log(1 + e^-d) = -d + log(1 + e^d) for d < 0; logaddexp(0, -d) is the same, stable
    return torch.logaddexp(torch.zeros_like(d), -d).mean()


def token_rewards(score, logp, logp_ref, mask, beta):
    rewards = -beta * (logp - logp_ref) * mask                           # (B, R)
    last = mask.sum(-1).long() - 1                                       # (B,) last real position
    bonus = F.one_hot(last, logp.shape[1]).to(rewards.dtype) * score[:, None]
    return rewards + bonus


def conservative_dpo_loss(pi_chosen, pi_rejected, ref_chosen, ref_rejected, beta, eps):
    h = beta * (pi_chosen - ref_chosen - pi_rejected + ref_rejected)
    p = torch.sigmoid(h.double())
    return (-(1 - eps) * torch.log(p) - eps * torch.log1p(-p)).mean().float()


RIGHT = [
    Case("check_stable_bt_loss", stable_bt_loss),
    Case("check_stable_bt_loss", stable_bt_loss, kwargs={"seed": 9}),
    Case("check_token_rewards", token_rewards),
    Case("check_token_rewards", token_rewards, kwargs={"seed": 4}),
    Case("check_conservative_dpo_loss", conservative_dpo_loss),
    Case("check_conservative_dpo_loss", conservative_dpo_loss, kwargs={"seed": 5}),
]


# --- wrong answers -----------------------------------------------------------------------------

def _naive_bt(rc, rr):
    return -torch.log(torch.sigmoid(rc - rr)).mean()


def _swapped_bt(rc, rr):
    return stable_bt_loss(rr, rc)


def _summed_bt(rc, rr):
    return stable_bt_loss(rc, rr) * len(rc)


def _item_bt(rc, rr):
    return torch.tensor(stable_bt_loss(rc, rr).item())


def _where_bt(rc, rr):                   # right value, but the unused branch's gradient is nan
    d = rc - rr
    return torch.where(d > 0, torch.log1p(torch.exp(-d)), -d + torch.log1p(torch.exp(d))).mean()


def _logsigmoid_bt(rc, rr):
    return -F.logsigmoid(rc - rr).mean()


def _softplus_bt(rc, rr):
    return F.softplus(rr - rc).mean()


def _bce_bt(rc, rr):
    d = rc - rr
    return F.binary_cross_entropy_with_logits(d, torch.ones_like(d))


def _coursekit_bt(rc, rr):
    return RL.bradley_terry_loss(rc, rr)


def _unmasked(score, logp, logp_ref, mask, beta):
    rewards = -beta * (logp - logp_ref)
    rewards[:, -1] += score
    return rewards


def _last_column(score, logp, logp_ref, mask, beta):
    rewards = -beta * (logp - logp_ref) * mask
    rewards[:, -1] += score * mask[:, -1]
    return rewards


def _no_beta(score, logp, logp_ref, mask, beta):
    return token_rewards(score, logp, logp_ref, mask, 1.0)


def _sign(score, logp, logp_ref, mask, beta):
    return token_rewards(score, logp_ref, logp, mask, beta)


def _score_everywhere(score, logp, logp_ref, mask, beta):
    return (-beta * (logp - logp_ref) + score[:, None]) * mask


def _via_per_token_kl(score, logp, logp_ref, mask, beta):
    total = RL.per_token_kl(logp, logp_ref, mask)
    return token_rewards(score, logp, logp_ref, mask, beta) + 0 * total[:, None]


def _plain_dpo(pc, pr, rc, rr, beta, eps):
    return conservative_dpo_loss(pc, pr, rc, rr, beta, 0.0)


def _swapped_dpo(pc, pr, rc, rr, beta, eps):
    return conservative_dpo_loss(pr, pc, rr, rc, beta, eps)


def _eps_swapped(pc, pr, rc, rr, beta, eps):
    return conservative_dpo_loss(pc, pr, rc, rr, beta, 1 - eps)


def _no_beta_dpo(pc, pr, rc, rr, beta, eps):
    return conservative_dpo_loss(pc, pr, rc, rr, 1.0, eps)


def _no_ref(pc, pr, rc, rr, beta, eps):
    return conservative_dpo_loss(pc, pr, 0 * rc, 0 * rr, beta, eps)


def _coursekit_dpo(pc, pr, rc, rr, beta, eps):
    return (1 - eps) * RL.dpo_loss(pc, pr, rc, rr, beta) + eps * RL.dpo_loss(pr, pc, rr, rc, beta)


WRONG = [
    # stable_bt_loss
    Case("check_stable_bt_loss", _naive_bt, "not finite for large margins", "log of sigmoid"),
    Case("check_stable_bt_loss", _swapped_bt, "swapped", "chosen and rejected swapped"),
    Case("check_stable_bt_loss", _summed_bt, "average over the pairs", "sum"),
    Case("check_stable_bt_loss", _item_bt, "no gradient", "item"),
    Case("check_stable_bt_loss", _where_bt, "gradient must stay finite", "where with both branches"),
    Case("check_stable_bt_loss", _logsigmoid_bt, "logsigmoid", "F.logsigmoid"),
    Case("check_stable_bt_loss", _softplus_bt, "softplus", "F.softplus"),
    Case("check_stable_bt_loss", _bce_bt, "binary_cross_entropy_with_logits", "BCE with logits"),
    Case("check_stable_bt_loss", _coursekit_bt, "coursekit.rlhf.bradley_terry_loss", "coursekit's loss"),
    # token_rewards
    Case("check_token_rewards", _unmasked, "not masked", "no mask"),
    Case("check_token_rewards", _last_column, "last real token", "score on the last column"),
    Case("check_token_rewards", _no_beta, "beta is missing", "no beta"),
    Case("check_token_rewards", _sign, "sign", "log ratio reversed"),
    Case("check_token_rewards", _score_everywhere, "once per response", "score on every token"),
    Case("check_token_rewards", _via_per_token_kl, "coursekit.rlhf.per_token_kl", "coursekit's per_token_kl"),
    # conservative_dpo_loss
    Case("check_conservative_dpo_loss", _plain_dpo, "eps is ignored", "plain DPO"),
    Case("check_conservative_dpo_loss", _swapped_dpo, "swapped", "chosen and rejected swapped"),
    Case("check_conservative_dpo_loss", _eps_swapped, "1 - eps", "eps on the wrong side"),
    Case("check_conservative_dpo_loss", _no_beta_dpo, "beta is missing", "no beta"),
    Case("check_conservative_dpo_loss", _no_ref, "reference", "no reference"),
    Case("check_conservative_dpo_loss", _coursekit_dpo, "coursekit.rlhf.dpo_loss", "coursekit's dpo_loss"),
]
