"""Chapter 11: the lesson's inline losses give the same numbers as coursekit.rlhf under one
seed; the hidden rule rates the story world's own endings; log-probabilities, masks, the
reward model, REINFORCE/PPO and DPO behave as their equations say (on a tiny GPT); the RLHF
explorer widget; the released stubs fail (answer key: test_check_contract.py).
The checks' right and wrong answers live in tests/answers/ch11.py (test_check_contract.py)."""
from __future__ import annotations

import copy
import math
import random

import pytest
import torch
import torch.nn.functional as F
from nbtools import exec_answer_cells, exec_tagged_cells, notebook

import coursekit as ck
from coursekit import rlhf
from coursekit.checks import ch11
from coursekit.checks.assertions import CheckFailure
from coursekit.data import CharTokenizer, StoryWorld, story_corpus
from coursekit.models.gpt import GPT, GPTConfig


@pytest.fixture(scope="module")
def lesson():
    before = torch.get_num_threads()
    ns = exec_tagged_cells(notebook("notebooks", "11"))
    torch.set_num_threads(before)
    return ns


@pytest.fixture(scope="module")
def tiny():
    """A small untrained GPT over the story world's characters (block 128 = 80 + 48)."""
    tok = CharTokenizer(story_corpus(3000, seed=0))          # the story model's vocabulary
    torch.manual_seed(0)
    model = GPT(GPTConfig(vocab_size=tok.vocab_size, block_size=128, n_layer=1, n_head=2, n_embd=16)).eval()
    return model, tok


def _g(seed):
    return torch.Generator().manual_seed(seed)


# --- the lesson's inline code equals the package ---------------------------------------------

@pytest.mark.parametrize("seed", [0, 1])
def test_lesson_losses_match_the_package(lesson, seed):
    g = _g(seed)
    rc, rr = 3 * torch.randn(9, generator=g), 3 * torch.randn(9, generator=g)
    torch.testing.assert_close(lesson["bt_loss"](rc, rr), rlhf.bradley_terry_loss(rc, rr))
    logp, logp_ref = -torch.rand(5, 7, generator=g), -torch.rand(5, 7, generator=g)
    mask = (torch.rand(5, 7, generator=g) > 0.3).float()
    torch.testing.assert_close(lesson["per_token_kl"](logp, logp_ref, mask), rlhf.per_token_kl(logp, logp_ref, mask))
    rewards = torch.randn(6, generator=g)
    torch.testing.assert_close(lesson["reinforce_advantages"](rewards), rlhf.reinforce_advantages(rewards))
    adv = torch.randn(5, generator=g)
    logp_new = logp + 0.3 * torch.randn(5, 7, generator=g)
    torch.testing.assert_close(lesson["ppo_clip_loss"](logp_new, logp, adv, mask, 0.2),
                               rlhf.ppo_clip_loss(logp_new, logp, adv, mask, 0.2))
    four = [-20 * torch.rand(8, generator=g) for _ in range(4)]
    torch.testing.assert_close(lesson["dpo_loss"](*four, beta=0.3), rlhf.dpo_loss(*four, beta=0.3))


# --- the prompts and the hidden rule -----------------------------------------------------------------

def test_the_hidden_rule_rates_the_story_worlds_own_endings():
    world = StoryWorld()
    prompts = rlhf.make_prompts(300, seed=3, world=world)
    stories = world.stories(300, seed=1003)
    for p, s in zip(prompts, stories):
        assert len(p.text) == rlhf.PROMPT_CHARS and s.text.endswith(p.text + p.ending)
        rating = rlhf.rater_score(p.ending[:rlhf.N_NEW])
        assert (rating >= 3) == (s.ending == "happy") and rating >= 0, (p.ending, rating)
    assert {rlhf.rater_score(p.ending[:rlhf.N_NEW]) for p in prompts} == {0, 1, 2, 3, 4, 5}
    assert rlhf.rater_score("At last At last Tom spotted the key, and Ann") == rlhf.NONSENSE
    assert rlhf.rater_score("At last Tom spottted the key, and Ann laughed") == rlhf.NONSENSE
    assert rlhf.rater_score("By sunset the cake was found, and Tom") == rlhf.NONSENSE   # no such object
    assert rlhf.rater_prefers("At last Tom spotted the key, and A", "The key was gone for good, and T") == 1.0
    assert rlhf.rater_prefers("xx", "yy") == 0.5


def test_response_mask_stops_after_the_first_newline():
    resp = torch.tensor([[1, 2, 0, 3, 0], [1, 1, 1, 1, 1], [0, 5, 5, 5, 5]])
    mask = rlhf.response_mask(resp, stop_id=0)
    assert mask.tolist() == [[1, 1, 1, 0, 0], [1, 1, 1, 1, 1], [1, 0, 0, 0, 0]]


def test_token_logprobs_match_a_position_by_position_computation(tiny):
    model, tok = tiny
    prompt = torch.randint(0, tok.vocab_size, (3, 10), generator=_g(0))
    resp = torch.randint(0, tok.vocab_size, (3, 6), generator=_g(1))
    got = rlhf.token_logprobs(model, prompt, resp)
    full = torch.cat([prompt, resp], 1)
    with torch.no_grad():
        for t in range(6):
            logits = model(full[:, :10 + t])[0][:, -1]
            torch.testing.assert_close(got[:, t], F.log_softmax(logits, -1).gather(-1, resp[:, t:t + 1])[:, 0],
                                       atol=1e-5, rtol=1e-5)


# --- preference pairs and the reward model ------------------------------------------------------------

def test_preference_pairs_follow_the_rule_except_where_flipped(tiny, monkeypatch):
    model, tok = tiny
    prompts = rlhf.make_prompts(80, seed=0)
    pool = [tok.encode(p.ending[:rlhf.N_NEW].ljust(rlhf.N_NEW)) for p in rlhf.make_prompts(50, seed=1)]
    pool.append(tok.encode("e" * rlhf.N_NEW))                                   # nonsense

    def real_endings(model, ids, n_new=rlhf.N_NEW, temperature=1.0, generator=None):
        pick = torch.randint(0, len(pool), (len(ids),), generator=generator)
        return torch.stack([pool[i] for i in pick.tolist()])

    monkeypatch.setattr(rlhf, "sample_responses", real_endings)
    pairs = rlhf.make_preference_pairs(model, tok, prompts, noise=0.3, seed=0)
    assert 40 <= len(pairs) <= 80 and 0.1 < pairs.flipped.float().mean() < 0.5
    for i in range(len(pairs)):
        a = tok.decode(pairs.chosen[i].tolist()).split("\n")[0]
        b = tok.decode(pairs.rejected[i].tolist()).split("\n")[0]
        pref = rlhf.rater_prefers(a, b)
        assert pref != 0.5 and (pref == 1.0) != bool(pairs.flipped[i])
    assert rlhf.make_preference_pairs(model, tok, prompts, noise=0.0, seed=0).flipped.sum() == 0
    train, rest = pairs.split(len(pairs) // 2)
    assert len(train) + len(rest) == len(pairs) and len(train.prompts) == len(train)
    monkeypatch.setattr(rlhf, "sample_responses", lambda model, ids, n_new=48, temperature=1.0, generator=None:
                        torch.stack([pool[-1]] * len(ids)))
    with pytest.raises(ValueError, match="tie"):
        rlhf.make_preference_pairs(model, tok, prompts, seed=0)


def _hand_made_pairs(tok, n=60, seed=0):
    """Pairs of real endings: the happier one chosen (no noise), for a tiny model to learn."""
    rng = random.Random(seed)
    prompts = rlhf.make_prompts(n, seed=seed)
    endings = [p.ending[:rlhf.N_NEW].ljust(rlhf.N_NEW) for p in rlhf.make_prompts(4 * n, seed=seed + 1)]
    chosen, rejected = [], []
    for _ in range(n):
        a, b = rng.sample(endings, 2)
        while rlhf.rater_score(a) == rlhf.rater_score(b):
            a, b = rng.sample(endings, 2)
        if rlhf.rater_score(a) < rlhf.rater_score(b):
            a, b = b, a
        chosen.append(tok.encode(a))
        rejected.append(tok.encode(b))
    c, r = torch.stack(chosen), torch.stack(rejected)
    return rlhf.PreferencePairs(rlhf.encode_prompts(tok, prompts), c, r, torch.ones(c.shape), torch.ones(r.shape),
                                torch.zeros(n, dtype=torch.bool), prompts)


def test_reward_model_learns_the_preferences_and_keeps_its_trunk_frozen(tiny):
    model, tok = tiny
    pairs = _hand_made_pairs(tok)
    before = copy.deepcopy(model.state_dict())
    run = rlhf.train_reward_model(model, pairs, n_steps=200, lr=3e-2, progress=False)
    rm = run.model
    assert run.history["loss"][-1] < run.history["loss"][0] < math.log(2) + 1e-6
    agree, rule = rlhf.reward_accuracy(rm, pairs)
    assert agree == rule and agree > 0.8
    assert all(torch.equal(v, model.state_dict()[k]) for k, v in before.items())     # the policy is untouched
    assert not any(p.requires_grad for p in rm.gpt.parameters())
    feats = rm.features(pairs.prompt_ids[:3], pairs.chosen[:3], pairs.chosen_mask[:3])
    assert feats.shape == (3, 2 * model.config.n_embd)


# --- RL and DPO -------------------------------------------------------------------------------------

def test_ppo_clip_loss_is_reinforce_at_ratio_one_and_stops_beyond_the_clip():
    g = _g(0)
    logp = torch.randn(4, 5, generator=g).requires_grad_(True)
    adv = torch.randn(4, generator=g)
    mask = torch.ones(4, 5)
    rlhf.ppo_clip_loss(logp, logp.detach(), adv, mask).backward()
    torch.testing.assert_close(logp.grad, -adv[:, None].expand(4, 5) / 20)
    # a token already 50% more likely with a positive advantage gets no more push
    logp_old = torch.zeros(1, 2)
    moved = torch.tensor([[math.log(1.5), 0.0]], requires_grad=True)
    rlhf.ppo_clip_loss(moved, logp_old, torch.tensor([1.0]), torch.ones(1, 2)).backward()
    assert moved.grad[0, 0] == 0 and moved.grad[0, 1] < 0


def test_dpo_loss_is_log2_at_the_reference_and_pushes_the_right_way():
    z = torch.zeros(3)
    assert rlhf.dpo_loss(z, z, z, z, 0.1).item() == pytest.approx(math.log(2))
    pc, pr = torch.zeros(3, requires_grad=True), torch.zeros(3, requires_grad=True)
    rlhf.dpo_loss(pc, pr, z, z, 0.5).backward()
    assert (pc.grad < 0).all() and (pr.grad > 0).all()         # descent raises chosen, lowers rejected


def test_train_rl_and_dpo_move_the_policy_and_leave_the_reference(tiny):
    model, tok = tiny
    pairs = _hand_made_pairs(tok, n=24)
    rm = rlhf.train_reward_model(model, pairs, n_steps=20, progress=False).model
    before = copy.deepcopy(model.state_dict())
    prompts = rlhf.make_prompts(16, seed=2)
    rl = rlhf.train_rl(model, rm, tok, prompts, n_steps=3, config=rlhf.RLConfig(batch=8, n_new=6, ppo_epochs=2),
                       progress=False, sample_every=1)
    assert set(rl.history.records) >= {"reward", "kl", "score", "objective"} and len(rl.samples) == 3
    assert rl.history["kl"][0] == pytest.approx(0.0, abs=1e-5)          # step 0: policy = reference
    assert any(not torch.equal(p, before[k]) for k, p in rl.model.state_dict().items())
    dpo = rlhf.train_dpo(model, pairs, n_steps=3, batch=8, progress=False)
    assert dpo.history["loss"][0] == pytest.approx(math.log(2), abs=1e-5)
    assert all(torch.equal(v, model.state_dict()[k]) for k, v in before.items())
    ev = rlhf.evaluate_policy(model, model, rm, tok, prompts[:8], seed=0, n_new=6)
    assert ev["kl"] == pytest.approx(0.0, abs=1e-5) and 0 <= ev["win_rate"] <= 1


# --- the widget ----------------------------------------------------------------------------------

def _fake_run(n, seed):
    history = ck.History()
    g = _g(seed)
    for i in range(n):
        history.log(i, reward=float(i), kl=0.5 * i, score=torch.rand(1, generator=g).item())
    return rlhf.PolicyRun(None, history, None, 0.0, samples=[(0, "p", "first"), (5, "p", "at five")])


def test_explorer_scrubs_through_steps_and_runs():
    w = ck.widgets.rlhf_explorer({"a": _fake_run(10, 0), "b": _fake_run(6, 1)})
    assert w.error == "" and w.png.startswith(b"\x89PNG") and w.step == 9 and w.reward == 9.0
    png = w.png
    w.set(step=3)
    assert (w.reward, w.kl, w.sample) == (3.0, 1.5, (0, "first")) and w.png != png
    w.set(step=7)
    assert w.sample == (5, "at five")
    w.set(run="b", step=9)                                   # past the end of the shorter run
    assert w.run == "b" and w.step == 5 and w.kl == 2.5


def test_explorer_needs_runs():
    with pytest.raises(ValueError):
        ck.widgets.rlhf_explorer({})
    with pytest.raises(TypeError):
        ck.widgets.rlhf_explorer({"x": object()})
    assert ck.widgets.rlhf_explorer(_fake_run(3, 0)).run == "RL"


# --- the checks and the notebooks ------------------------------------------------------------

EXERCISES = ["stable_bt_loss", "token_rewards", "conservative_dpo_loss"]


def test_check_references_agree_with_the_package():
    g = _g(0)
    rc, rr = 5 * torch.randn(7, generator=g), 5 * torch.randn(7, generator=g)
    torch.testing.assert_close(ch11._bt(rc, rr).float(), rlhf.bradley_terry_loss(rc, rr))
    four = [-10 * torch.rand(6, generator=g) for _ in range(4)]
    torch.testing.assert_close(ch11._cdpo(*four, 0.2, 0.0).float(), rlhf.dpo_loss(*four, 0.2))
    score, logp, logp_ref = torch.randn(4, generator=g), -torch.rand(4, 6, generator=g), -torch.rand(4, 6, generator=g)
    mask = rlhf.response_mask(torch.tensor([[1, 1, 0, 1, 1, 1], [1] * 6, [0] * 6, [1, 1, 1, 1, 1, 0]]), 0)
    summed = ch11._token_rewards(score, logp, logp_ref, mask, 0.3).sum(1).float()
    torch.testing.assert_close(summed, score - 0.3 * rlhf.per_token_kl(logp, logp_ref, mask))


def _answer_cells(folder: str) -> dict:
    return exec_answer_cells(folder, "11", {"torch": torch, "F": F})


def test_the_released_exercises_fail_every_check_until_written():
    ns = _answer_cells("exercises")
    for name in EXERCISES:
        with pytest.raises(CheckFailure, match="not written yet"):
            getattr(ch11, f"check_{name}")(ns[name])
