"""Benchmark of chapter 11's RLHF on the course's story model, at a larger scale than the lesson.

    python benchmarks/rlhf.py                       # the full run (about 40 minutes on a busy 2-core CPU)
    python benchmarks/rlhf.py --prompts 512 --rl-steps 10 --dpo-steps 20 --betas 0.05 0

Loads ``ck.zoo`` "story-gpt" (the policy and the frozen reference), then:
1. preference pairs: two endings per unseen prompt, labelled by the hidden rule
   (``coursekit.rlhf.rater_score``: the raters prefer happier endings) with 15% of the
   labels flipped; ties dropped;
2. a Bradley-Terry reward model (frozen GPT features + a scalar head): held-out agreement
   with the noisy labels beside the ceiling the noise allows (1 - the held-out flip share);
   target: within 5 points;
3. RL (REINFORCE with a leave-one-out baseline, reward - beta KL per token) and DPO on the
   same pairs, each over several beta: the hidden rule's win rate over the reference on
   unseen prompts, the KL to the reference, the reward model's score, the share of
   nonsense; target: a win rate of at least 75% for both methods (at their best beta);
4. reward hacking: RL's reward-model score and win rate as beta goes to 0.
Readable lines first; the last line is one JSON object with every figure.
"""
from __future__ import annotations

import argparse
import json
import time

import torch

from machine import describe  # benchmarks/machine.py, next to this script

import coursekit as ck
from coursekit import rlhf

TARGET_RM_GAP = 0.05
TARGET_WIN = 0.75


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--prompts", type=int, default=2048, help="prompts for the preference pairs")
    parser.add_argument("--eval-prompts", type=int, default=512, help="unseen prompts for the win rates")
    parser.add_argument("--rl-steps", type=int, default=60)
    parser.add_argument("--dpo-steps", type=int, default=100)
    parser.add_argument("--betas", type=float, nargs="+", default=[0.1, 0.03, 0.01, 0.0], help="RL's betas")
    parser.add_argument("--dpo-betas", type=float, nargs="+", default=[0.5, 0.1, 0.02])
    parser.add_argument("--rl-lr", type=float, default=2e-4)
    parser.add_argument("--dpo-lr", type=float, default=1e-4)
    args = parser.parse_args()
    torch.manual_seed(0)
    load = describe("cpu")
    start = time.perf_counter()
    run = ck.zoo.load("story-gpt", progress=False)
    model, tok = run.model, run.tokenizer
    prompts = rlhf.make_prompts(args.prompts, seed=0)
    test_prompts = rlhf.make_prompts(args.eval_prompts, seed=7)
    pairs = rlhf.make_preference_pairs(model, tok, prompts, noise=rlhf.NOISE, seed=0)
    train_pairs, held_out = pairs.split(int(0.8 * len(pairs)))
    print(f"preference pairs: {len(pairs)} of {args.prompts} prompts (ties dropped), "
          f"{pairs.flipped.float().mean():.1%} of labels flipped; {len(train_pairs)} to train, "
          f"{len(held_out)} held out ({time.perf_counter() - start:.0f} s)", flush=True)

    rm = rlhf.train_reward_model(model, train_pairs, progress=False).model
    acc_labels, acc_rule = rlhf.reward_accuracy(rm, held_out)
    ceiling = 1 - held_out.flipped.float().mean().item()
    rm_ok = acc_labels >= ceiling - TARGET_RM_GAP
    print(f"reward model: held-out agreement with the raters' labels {acc_labels:.1%}, ceiling "
          f"(1 - flip share) {ceiling:.1%}, gap {ceiling - acc_labels:+.1%} (target <= 5 points: "
          f"{'met' if rm_ok else 'MISSED'}); agreement with the hidden rule {acc_rule:.1%}", flush=True)

    ref_eval = rlhf.evaluate_policy(model, model, rm, tok, test_prompts, seed=11)
    print(f"reference vs itself: win rate {ref_eval['win_rate']:.1%}, rating {ref_eval['score']:.2f}, "
          f"reward {ref_eval['reward']:.2f}, nonsense {ref_eval['nonsense']:.1%}", flush=True)

    results = {"rl": [], "dpo": []}
    for beta in args.dpo_betas:
        t = time.perf_counter()
        pol = rlhf.train_dpo(model, train_pairs, n_steps=args.dpo_steps, beta=beta, lr=args.dpo_lr,
                             progress=False)
        ev = rlhf.evaluate_policy(pol.model, model, rm, tok, test_prompts, seed=11)
        ev.update(beta=beta, seconds=time.perf_counter() - t)
        results["dpo"].append(ev)
        print(f"DPO beta={beta:<5g} win rate {ev['win_rate']:.1%}  KL {ev['kl']:6.2f} nats  reward "
              f"{ev['reward']:5.2f}  rating {ev['score']:.2f}  nonsense {ev['nonsense']:.1%}  "
              f"({ev['seconds']:.0f} s)  e.g. {ev['samples'][0]!r}", flush=True)

    for beta in args.betas:
        t = time.perf_counter()
        pol = rlhf.train_rl(model, rm, tok, prompts, n_steps=args.rl_steps,
                            config=rlhf.RLConfig(beta=beta, lr=args.rl_lr), progress=False)
        ev = rlhf.evaluate_policy(pol.model, model, rm, tok, test_prompts, seed=11)
        ev.update(beta=beta, seconds=time.perf_counter() - t,
                  reward_curve=[round(x, 3) for x in pol.history["reward"]],
                  kl_curve=[round(x, 3) for x in pol.history["kl"]])
        results["rl"].append(ev)
        print(f"RL  beta={beta:<5g} win rate {ev['win_rate']:.1%}  KL {ev['kl']:6.2f} nats  reward "
              f"{ev['reward']:5.2f}  rating {ev['score']:.2f}  nonsense {ev['nonsense']:.1%}  "
              f"({ev['seconds']:.0f} s)  e.g. {ev['samples'][0]!r}", flush=True)
    best = {k: max(v, key=lambda e: e["win_rate"]) for k, v in results.items()}
    for k, e in best.items():
        print(f"best {k.upper()}: beta={e['beta']:g}, win rate {e['win_rate']:.1%} at KL {e['kl']:.2f} "
              f"(target >= {TARGET_WIN:.0%}: {'met' if e['win_rate'] >= TARGET_WIN else 'MISSED'})")
    rl = sorted(results["rl"], key=lambda e: -e["beta"])
    print("reward hacking (RL, beta falling): " + "; ".join(
        f"beta={e['beta']:g}: reward {e['reward']:.2f}, win {e['win_rate']:.1%}, nonsense {e['nonsense']:.1%}"
        for e in rl))
    print(json.dumps({"benchmark": "rlhf", "load_average": load, "seconds": round(time.perf_counter() - start),
                      "n_pairs": len(pairs), "rm_accuracy": acc_labels, "rm_rule_accuracy": acc_rule,
                      "rm_ceiling": ceiling, "rm_target_met": rm_ok, "reference": ref_eval,
                      "rl": results["rl"], "dpo": results["dpo"],
                      "win_target_met": {k: e["win_rate"] >= TARGET_WIN for k, e in best.items()}}))


if __name__ == "__main__":
    main()
