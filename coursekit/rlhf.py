"""Reinforcement learning from human feedback on the course's story model (lesson 11).

The policy is ``ck.zoo.load("story-gpt")``. A prompt is the last ``PROMPT_CHARS`` characters
of an unseen story, up to its ending; the model writes the first ``N_NEW`` characters of
the ending. A hidden rule stands in for the human raters (``rater_score``): they prefer
happier endings, and text that is none of the story world's endings is rated lowest.

    prompts = make_prompts(512, seed=0)
    pairs = make_preference_pairs(run.model, run.tokenizer, prompts, noise=0.15, seed=0)
    rm = train_reward_model(run.model, pairs, n_steps=150)                  # Bradley-Terry
    rl = train_rl(run.model, rm, prompts, beta=0.05, n_steps=60)           # reward - beta KL
    dpo = train_dpo(run.model, pairs, beta=0.1, n_steps=100)               # no reward model
    evaluate_policy(rl.model, run.model, rm, run.tokenizer, test_prompts)  # win rate, KL

The papers: Christiano et al. (2017) "Deep reinforcement learning from human preferences";
Ouyang et al. (2022) "Training language models to follow instructions with human
feedback"; Rafailov et al. (2023) "Direct Preference Optimization: Your Language Model is
Secretly a Reward Model"; Schulman et al. (2017) "Proximal Policy Optimization Algorithms".
"""
from __future__ import annotations

import copy
import random
import re
import time
from dataclasses import dataclass, field

import torch
import torch.nn as nn
import torch.nn.functional as F

from coursekit.data.stories import OBJECTS, StoryWorld
from coursekit.train import Run, train

PROMPT_CHARS = 80          # characters of story before the ending the model sees
N_NEW = 48                 # characters of ending the model writes (80 + 48 = the block, 128)
NOISE = 0.15               # share of the raters' labels flipped (rater disagreement)

# The hidden rule: how the raters rate an ending, by its words (the story world's six
# endings, happiest first). Each pattern covers the ending's first words (it always fits in
# N_NEW characters); any object of the story world may be named.
_OBJ = "(?:" + "|".join(OBJECTS) + ")"
_NAME = "[A-Z][a-z]+"
ENDINGS = [(rf"At last {_NAME} spotted the {_OBJ}, and ", 5, "found: laughed with joy"),
           (rf"By sunset the {_OBJ} was found, and ", 4, "found: thanked with tea"),
           (rf"Together they found the {_OBJ}, and ", 3, "found: smiled all the way home"),
           (rf"In the end the {_OBJ} was lost, and ", 2, "lost: sat by the window"),
           (rf"The {_OBJ} was gone for good, and ", 1, "gone for good: sad for a long time"),
           (rf"They searched until dark, but the {_OBJ} was", 0, "never found: walked home alone")]
NONSENSE = -1              # rating of text that is none of these endings


# --- the prompts and the hidden rule -----------------------------------------------------------

@dataclass
class Prompt:
    """One prompt: the text the model continues and what the raters check against."""

    text: str            # the last PROMPT_CHARS characters before the ending
    obj: str             # the object the story's character lost ("key")
    ending: str          # the story's own ending (not shown to the model)


def make_prompts(n: int, seed: int = 0, world: StoryWorld | None = None,
                 prompt_chars: int = PROMPT_CHARS) -> list[Prompt]:
    """``n`` prompts cut from stories the model never saw (seeds 1000 + seed onwards)."""
    world = world or StoryWorld()
    out = []
    for story in world.stories(n, seed=1000 + seed):
        cut = story.text.rindex(". ") + 2                 # the ending is the last sentence
        obj = next(o for o in _OBJECTS if f" {o}" in story.text[cut:])
        out.append(Prompt(story.text[:cut][-prompt_chars:], obj, story.text[cut:]))
    return out


_OBJECTS = sorted(OBJECTS, key=len, reverse=True)


def rater_score(ending: str) -> int:
    """The hidden rule: 5 (happiest ending) .. 0 (saddest), -1 for anything else (nonsense).

    ``ending`` is the text after the prompt; it is rated by which of the story world's
    endings it starts as (``ENDINGS``), written correctly.
    """
    for pattern, score, _ in ENDINGS:
        if re.match(pattern, ending):
            return score
    return NONSENSE


def rater_prefers(a: str, b: str) -> float:
    """1.0 when the raters' rule prefers ``a``, 0.0 when it prefers ``b``, 0.5 for a tie."""
    sa, sb = rater_score(a), rater_score(b)
    return 1.0 if sa > sb else 0.0 if sa < sb else 0.5


# --- sampling responses and their log-probabilities ----------------------------------------------

def encode_prompts(tokenizer, prompts: list[Prompt], device=None) -> torch.Tensor:
    """(B, PROMPT_CHARS) token ids of the prompts (all the same length: no padding needed)."""
    return torch.stack([tokenizer.encode(p.text) for p in prompts]).to(device or "cpu")


def response_mask(response: torch.Tensor, stop_id: int | None) -> torch.Tensor:
    """(B, R) float mask: 1 up to and including the first ``stop_id`` token, 0 after it.

    A story ends with a newline; what the model writes after it (the next story) is padding.
    """
    if stop_id is None:
        return torch.ones_like(response, dtype=torch.float)
    is_stop = (response == stop_id).long()                              # (B, R)
    before = is_stop.cumsum(1) - is_stop                                # stops strictly before t
    return (before == 0).float()


@torch.no_grad()
def sample_responses(model, prompt_ids: torch.Tensor, n_new: int = N_NEW, temperature: float = 1.0,
                     generator: torch.Generator | None = None) -> torch.Tensor:
    """(B, n_new) sampled continuations of ``prompt_ids`` (B, P), with the KV cache."""
    from coursekit.sampling import generate
    return generate(model, prompt_ids, n_new, temperature=temperature, generator=generator)[:, prompt_ids.shape[1]:]


def decode_responses(tokenizer, response: torch.Tensor) -> list[str]:
    """The responses as text, each cut at its first newline."""
    return [tokenizer.decode(r.tolist()).split("\n")[0] for r in response]


def token_logprobs(model, prompt_ids: torch.Tensor, response: torch.Tensor) -> torch.Tensor:
    """(B, R) log pi(y_t | x, y_<t) of every response token under ``model`` (with gradients).

    One forward pass over prompt + response; the logits at position P - 1 + t predict y_t.
    """
    full = torch.cat([prompt_ids, response], dim=1)                     # (B, P + R)
    logits = model(full)[0][:, prompt_ids.shape[1] - 1:-1]              # (B, R, V)
    logp = F.log_softmax(logits.float(), dim=-1)                        # (B, R, V)
    return logp.gather(-1, response[..., None])[..., 0]                 # (B, R)


def per_token_kl(logp: torch.Tensor, logp_ref: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """(B,) the sampled KL estimate sum_t (log pi - log pi_ref) over the unmasked tokens.

    On tokens drawn from pi its mean is KL(pi || pi_ref) of the whole response; each term
    is the per-token KL penalty of Ouyang et al. (2022).
    """
    return ((logp - logp_ref) * mask).sum(-1)


# --- preference data -------------------------------------------------------------------------------

@dataclass
class PreferencePairs:
    """Pairs of the model's own responses to the same prompt, labelled by noisy raters.

    Attributes: prompt_ids (N, P); chosen, rejected (N, R) token ids; chosen_mask,
    rejected_mask (N, R); flipped (N,) bool, the labels a rater got wrong (the noise);
    prompts, the N Prompt objects.
    """

    prompt_ids: torch.Tensor
    chosen: torch.Tensor
    rejected: torch.Tensor
    chosen_mask: torch.Tensor
    rejected_mask: torch.Tensor
    flipped: torch.Tensor
    prompts: list[Prompt] = field(default_factory=list)

    def __len__(self) -> int:
        return len(self.chosen)

    def split(self, n_first: int) -> tuple["PreferencePairs", "PreferencePairs"]:
        """The first ``n_first`` pairs and the rest (training and held-out)."""
        def part(s):
            return PreferencePairs(self.prompt_ids[s], self.chosen[s], self.rejected[s], self.chosen_mask[s],
                                   self.rejected_mask[s], self.flipped[s], self.prompts[s])
        return part(slice(0, n_first)), part(slice(n_first, None))


@torch.no_grad()
def make_preference_pairs(model, tokenizer, prompts: list[Prompt], noise: float = NOISE, seed: int = 0,
                          n_new: int = N_NEW, batch: int = 256) -> PreferencePairs:
    """Two samples per prompt from ``model``, labelled by the hidden rule with label noise.

    1. Sample two responses for every prompt (in batches, with the KV cache).
    2. The raters prefer the higher ``rater_score``; pairs they rate equal are dropped.
    3. Each label is flipped with probability ``noise`` (raters disagree), so no reward
       model can agree with more than about 1 - noise of the held-out labels.
    """
    g = torch.Generator().manual_seed(seed)
    flip_rng = random.Random(seed)
    device = next(model.parameters()).device
    stop = tokenizer.encode("\n").tolist()[0]
    keep = {k: [] for k in ("p", "c", "r", "f")}
    kept_prompts = []
    for start in range(0, len(prompts), batch):                          # quick: a few batches
        part = prompts[start:start + batch]
        ids = encode_prompts(tokenizer, part, device)                    # (B, P)
        a = sample_responses(model, ids, n_new, generator=g)             # (B, R)
        b = sample_responses(model, ids, n_new, generator=g)             # (B, R)
        for i, (ta, tb) in enumerate(zip(decode_responses(tokenizer, a), decode_responses(tokenizer, b))):
            pref = rater_prefers(ta, tb)
            if pref == 0.5:
                continue
            flipped = flip_rng.random() < noise
            a_wins = (pref == 1.0) != flipped
            keep["p"].append(ids[i])
            keep["c"].append(a[i] if a_wins else b[i])
            keep["r"].append(b[i] if a_wins else a[i])
            keep["f"].append(flipped)
            kept_prompts.append(part[i])
    if not keep["c"]:
        raise ValueError("every pair was a tie (the raters rated both endings the same): the model "
                         "writes none of the story world's endings yet; use more prompts or a trained model")
    chosen, rejected = torch.stack(keep["c"]), torch.stack(keep["r"])
    return PreferencePairs(torch.stack(keep["p"]), chosen, rejected, response_mask(chosen, stop),
                           response_mask(rejected, stop), torch.tensor(keep["f"]), kept_prompts)


# --- the Bradley-Terry reward model --------------------------------------------------------------------

class RewardModel(nn.Module):
    """A scalar head on the pre-trained GPT's features (a frozen copy of its trunk).

    features(x, y): the final hidden states (after ln_f) averaged over the response's
    tokens, beside the hidden state of its last token: (B, 2C).
    ``forward(prompt_ids, response, mask) -> (B,)`` rewards r(x, y) = w . features + b.
    """

    def __init__(self, gpt):
        super().__init__()
        self.gpt = copy.deepcopy(gpt).eval()
        self.gpt.head = nn.Identity()                                    # logits -> features
        self.gpt.requires_grad_(False)
        self.score = nn.Linear(2 * gpt.config.n_embd, 1)
        nn.init.zeros_(self.score.weight)
        nn.init.zeros_(self.score.bias)

    @torch.no_grad()
    def features(self, prompt_ids: torch.Tensor, response: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        full = torch.cat([prompt_ids, response], dim=1)                 # (B, P + R)
        h = self.gpt(full)[0][:, prompt_ids.shape[1]:]                  # (B, R, C) response positions
        mean = (h * mask[..., None]).sum(1) / mask.sum(1, keepdim=True)  # (B, C)
        last = h[torch.arange(len(h)), mask.sum(1).long() - 1]          # (B, C) last real token
        return torch.cat([mean, last], dim=-1)                          # (B, 2C)

    def forward(self, prompt_ids: torch.Tensor, response: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        return self.score(self.features(prompt_ids, response, mask))[:, 0]   # (B,)


def bradley_terry_loss(r_chosen: torch.Tensor, r_rejected: torch.Tensor) -> torch.Tensor:
    """-log sigmoid(r_chosen - r_rejected), averaged: the Bradley-Terry model's negative log-likelihood."""
    return -F.logsigmoid(r_chosen - r_rejected).mean()


def train_reward_model(gpt, pairs: PreferencePairs, n_steps: int = 300, lr: float = 1e-2,
                       weight_decay: float = 1e-2, seed: int = 0, progress: bool = True) -> Run:
    """Fit ``RewardModel(gpt)``'s head to the pairs by minimising the Bradley-Terry loss.

    The trunk is frozen, so the features of every pair are computed once; each step is
    a full-batch AdamW step on the head. Returns a Run whose model is the reward model
    and whose history has "loss" and "accuracy" (on the training labels).
    """
    with torch.random.fork_rng():
        torch.manual_seed(seed)
        rm = RewardModel(gpt)
        f_c = rm.features(pairs.prompt_ids, pairs.chosen, pairs.chosen_mask)        # (N, 2C)
        f_r = rm.features(pairs.prompt_ids, pairs.rejected, pairs.rejected_mask)    # (N, 2C)
        opt = torch.optim.AdamW(rm.score.parameters(), lr=lr, weight_decay=weight_decay)

        def step(i):
            rc, rr = rm.score(f_c)[:, 0], rm.score(f_r)[:, 0]                      # (N,) each
            loss = bradley_terry_loss(rc, rr)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            return {"loss": loss.item(), "accuracy": (rc > rr).float().mean().item()}

        start = time.perf_counter()
        history = train(step, n_steps, desc="reward model", show=progress)
    rm.eval()
    return Run(rm, history, {"lr": lr, "weight_decay": weight_decay}, time.perf_counter() - start)


@torch.no_grad()
def reward_accuracy(rm, pairs: PreferencePairs) -> tuple[float, float]:
    """(agreement with the noisy labels, agreement with the hidden rule) on ``pairs``."""
    rc = rm(pairs.prompt_ids, pairs.chosen, pairs.chosen_mask)
    rr = rm(pairs.prompt_ids, pairs.rejected, pairs.rejected_mask)
    agree = (rc > rr).float()
    rule = torch.where(pairs.flipped, 1 - agree, agree)
    return agree.mean().item(), rule.mean().item()


# --- reinforcement learning: reward - beta KL --------------------------------------------------------

def reinforce_advantages(rewards: torch.Tensor) -> torch.Tensor:
    """(B,) rewards -> advantages with a leave-one-out baseline (the mean of the other samples)."""
    B = len(rewards)
    baseline = (rewards.sum() - rewards) / (B - 1)
    return rewards - baseline


def ppo_clip_loss(logp: torch.Tensor, logp_old: torch.Tensor, advantages: torch.Tensor, mask: torch.Tensor,
                  clip: float = 0.2) -> torch.Tensor:
    """PPO's clipped surrogate (Schulman et al. 2017), as a loss to minimise.

    ratio_t = exp(log pi - log pi_old); per token -min(ratio A, clip(ratio, 1 - eps, 1 + eps) A),
    averaged over the unmasked tokens. With one step per batch (ratio = 1) its gradient is
    REINFORCE's: -A grad log pi.

    Args: logp, logp_old, mask (B, R); advantages (B,), one per response.
    """
    ratio = torch.exp(logp - logp_old)                                  # (B, R)
    adv = advantages[:, None]                                           # (B, 1)
    surrogate = torch.minimum(ratio * adv, ratio.clamp(1 - clip, 1 + clip) * adv)
    return -(surrogate * mask).sum() / mask.sum()


@dataclass
class RLConfig:
    """How ``train_rl`` optimises (the lesson's recipe)."""

    beta: float = 0.05          # weight of the KL penalty to the frozen reference
    lr: float = 1e-4            # AdamW learning rate of the policy
    batch: int = 64             # prompts sampled per step
    ppo_epochs: int = 1         # gradient steps per batch (1: REINFORCE with a baseline)
    clip: float = 0.2           # PPO's clip range (matters only when ppo_epochs > 1)
    n_new: int = N_NEW          # characters sampled per response


@dataclass
class PolicyRun(Run):
    """A trained policy; ``samples`` holds (step, prompt, response) seen during training."""

    samples: list = field(default_factory=list)


def train_rl(gpt, rm, tokenizer, prompts: list[Prompt], n_steps: int = 60, config: RLConfig | None = None,
             seed: int = 0, progress: bool = True, sample_every: int = 10) -> PolicyRun:
    """Maximise r(x, y) - beta * KL(pi || pi_ref) with REINFORCE (or PPO's clipped update).

    Each step:
    1. Draw ``batch`` prompts; sample one response each from the policy pi.
    2. Score them with the reward model; take log pi and log pi_ref of every token.
    3. Reward R = r(x, y) - beta * sum_t (log pi - log pi_ref) (the per-token KL penalty).
    4. Advantage A = R - baseline (the other samples' mean reward, ``reinforce_advantages``).
    5. ``ppo_epochs`` gradient steps on ``ppo_clip_loss`` (one step: plain REINFORCE).
    The reference pi_ref is ``gpt`` itself, frozen; the policy starts as a copy of it.
    History: "reward" (reward model), "kl" (per response), "score" (hidden rule), "objective".
    """
    cfg = config or RLConfig()
    device = next(gpt.parameters()).device
    stop = tokenizer.encode("\n").tolist()[0]
    ref = gpt.eval()
    with torch.random.fork_rng():
        torch.manual_seed(seed)
        policy = copy.deepcopy(gpt).eval()        # eval mode: no dropout, so log pi_old is log pi
        opt = torch.optim.AdamW(policy.parameters(), lr=cfg.lr, weight_decay=0.0)
        g = torch.Generator().manual_seed(seed)
        pick = random.Random(seed)
        samples = []

        def step(i):
            batch = pick.sample(prompts, cfg.batch)
            ids = encode_prompts(tokenizer, batch, device)              # (B, P)
            response = sample_responses(policy, ids, cfg.n_new, generator=g)   # (B, R)
            mask = response_mask(response, stop)                        # (B, R)
            with torch.no_grad():
                reward = rm(ids, response, mask)                        # (B,)
                logp_old = token_logprobs(policy, ids, response)        # (B, R)
                logp_ref = token_logprobs(ref, ids, response)           # (B, R)
                kl = per_token_kl(logp_old, logp_ref, mask)             # (B,)
                adv = reinforce_advantages(reward - cfg.beta * kl)      # (B,)
            for _ in range(cfg.ppo_epochs):
                loss = ppo_clip_loss(token_logprobs(policy, ids, response), logp_old, adv, mask, cfg.clip)
                opt.zero_grad(set_to_none=True)
                loss.backward()
                torch.nn.utils.clip_grad_norm_(policy.parameters(), 1.0)
                opt.step()
            texts = decode_responses(tokenizer, response)
            score = sum(rater_score(t) for t in texts) / len(batch)
            if i % sample_every == 0 or i == n_steps - 1:
                samples.append((i, batch[0].text, texts[0]))
            return {"reward": reward.mean().item(), "kl": kl.mean().item(), "score": score,
                    "objective": (reward - cfg.beta * kl).mean().item()}

        start = time.perf_counter()
        history = train(step, n_steps, desc=f"RL (beta={cfg.beta:g})", show=progress)
    policy.eval()
    return PolicyRun(policy, history, cfg, time.perf_counter() - start, samples=samples)


# --- direct preference optimisation ---------------------------------------------------------------------

def dpo_loss(pi_chosen: torch.Tensor, pi_rejected: torch.Tensor, ref_chosen: torch.Tensor,
             ref_rejected: torch.Tensor, beta: float) -> torch.Tensor:
    """DPO's loss (Rafailov et al. 2023, eq. 7) from the four summed log-probabilities (B,) each.

    -log sigmoid(beta * [(log pi(y_w) - log ref(y_w)) - (log pi(y_l) - log ref(y_l))]), averaged.
    """
    margin = (pi_chosen - ref_chosen) - (pi_rejected - ref_rejected)     # (B,)
    return -F.logsigmoid(beta * margin).mean()


def train_dpo(gpt, pairs: PreferencePairs, n_steps: int = 100, beta: float = 0.1, lr: float = 1e-4,
              batch: int = 64, seed: int = 0, progress: bool = True) -> PolicyRun:
    """Fit the policy to the preference pairs directly with ``dpo_loss`` (no reward model, no sampling).

    The reference's log-probabilities are computed once; the policy starts as a copy of ``gpt``.
    History: "loss", "accuracy" (implicit reward of chosen > rejected), "margin".
    """
    with torch.no_grad():
        ref_c = (token_logprobs(gpt, pairs.prompt_ids, pairs.chosen) * pairs.chosen_mask).sum(-1)
        ref_r = (token_logprobs(gpt, pairs.prompt_ids, pairs.rejected) * pairs.rejected_mask).sum(-1)
    with torch.random.fork_rng():
        torch.manual_seed(seed)
        policy = copy.deepcopy(gpt).train()
        opt = torch.optim.AdamW(policy.parameters(), lr=lr, weight_decay=0.0)
        g = torch.Generator().manual_seed(seed)

        def step(i):
            idx = torch.randint(0, len(pairs), (batch,), generator=g)
            pc = (token_logprobs(policy, pairs.prompt_ids[idx], pairs.chosen[idx]) * pairs.chosen_mask[idx]).sum(-1)
            pr = (token_logprobs(policy, pairs.prompt_ids[idx], pairs.rejected[idx])
                  * pairs.rejected_mask[idx]).sum(-1)
            loss = dpo_loss(pc, pr, ref_c[idx], ref_r[idx], beta)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            torch.nn.utils.clip_grad_norm_(policy.parameters(), 1.0)
            opt.step()
            margin = (pc - ref_c[idx]) - (pr - ref_r[idx])
            return {"loss": loss.item(), "accuracy": (margin > 0).float().mean().item(),
                    "margin": margin.mean().item()}

        start = time.perf_counter()
        history = train(step, n_steps, desc=f"DPO (beta={beta:g})", show=progress)
    policy.eval()
    return PolicyRun(policy, history, {"beta": beta, "lr": lr, "batch": batch}, time.perf_counter() - start)


# --- evaluation ---------------------------------------------------------------------------------------------

@torch.no_grad()
def evaluate_policy(policy, ref, rm, tokenizer, prompts: list[Prompt], seed: int = 0,
                    n_new: int = N_NEW) -> dict:
    """How a policy compares with the reference on ``prompts``, one sample each.

    Returns a dict: "win_rate" (the hidden rule prefers the policy's response to the
    reference's; ties count one half), "score" and "ref_score" (mean rating), "reward"
    (reward model, mean), "kl" (mean sum_t log pi - log pi_ref on the policy's samples),
    "nonsense" (share of policy responses rated nonsense), "samples" (the first 4 texts).
    """
    device = next(policy.parameters()).device
    stop = tokenizer.encode("\n").tolist()[0]
    ids = encode_prompts(tokenizer, prompts, device)
    ours = sample_responses(policy, ids, n_new, generator=torch.Generator().manual_seed(seed))
    theirs = sample_responses(ref, ids, n_new, generator=torch.Generator().manual_seed(seed + 1))
    mask = response_mask(ours, stop)
    kl = per_token_kl(token_logprobs(policy, ids, ours), token_logprobs(ref, ids, ours), mask)
    a, b = decode_responses(tokenizer, ours), decode_responses(tokenizer, theirs)
    scores = [rater_score(t) for t in a]
    return {"win_rate": sum(rater_prefers(x, y) for x, y in zip(a, b)) / len(prompts),
            "score": sum(scores) / len(scores),
            "ref_score": sum(rater_score(t) for t in b) / len(prompts),
            "reward": rm(ids, ours, mask).mean().item() if rm is not None else float("nan"),
            "kl": kl.mean().item(),
            "nonsense": sum(s == NONSENSE for s in scores) / len(scores),
            "samples": a[:4]}
