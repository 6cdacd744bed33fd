"""Benchmark of chapter 14: classifier-free guidance on the digits, and conditioning by prompt.

    python benchmarks/guidance.py                    # 50 samples per digit per scale, as reported
    python benchmarks/guidance.py --per-class 100 --requests 96

1. Guidance (``ck.zoo`` "digit-cfg"): for each guidance scale w, one sample per request,
   ``--per-class`` requests of each digit, 20 guided DDIM steps from the same starting
   noise. Reported: the share the course's digit classifier (``coursekit.evaluate``) reads
   as the requested digit, the within-class diversity (mean distance between two samples
   of one digit) and the sample score (``digit_quality``), each beside the real digits'
   (the validation split). Target: >= 95% requested-class accuracy at some scale whose
   score is >= 85% of the real digits'.
2. Prompt-field compliance (``ck.zoo`` "story-gpt", unconditional): stories asked for by an
   opening that names a character, a job and a town, or by a header the model never saw;
   the share of stories that honour each field (``coursekit.prompting.field_compliance``),
   for requests that follow the corpus's profession-pronoun stereotype and for those that
   go against it.
3. Prompt engineering on the world's facts ("<town> is known for ___", greedy): the
   wording, the number of worked examples (0 to 3), their format, and five seeds choosing
   the examples and their order; mean and spread of the accuracy over the seeds.

Readable lines first; the last line is one JSON object with every figure.
"""
from __future__ import annotations

import argparse
import json
import os
import random
import statistics
import time

import torch

from machine import describe  # benchmarks/machine.py, next to this script

import coursekit as ck
from coursekit.data.stories import TOWNS, StoryWorld
from coursekit.evaluate import digit_classifier, digit_quality, within_class_diversity
from coursekit.models.cond_diffusion import guided_sample
from coursekit.models.diffusion import from_model_range
from coursekit.prompting import (FACT_FORMS, FACT_WORDINGS, REQUEST_FORMS, complete, compliance_rates, fact_correct,
                                 fact_prompt, request_prompt, story_requests)

SCALES = [0.0, 0.5, 1.0, 1.5, 2.0, 3.0, 4.0, 6.0]
TARGET_ACCURACY, TARGET_SCORE_SHARE = 0.95, 0.85


def guidance_table(run, per_class: int, seed: int = 0) -> tuple[dict, dict]:
    """(per-scale figures, real digits' figures)."""
    clf = digit_classifier()
    real = ck.data.load_digits(seed=0)
    real_row = {"accuracy": round((clf(real.x_val).argmax(1) == real.y_val).float().mean().item(), 4),
                "diversity": round(within_class_diversity(real.x_val, real.y_val), 4),
                "score": round(digit_quality(real.x_val)["score"], 4)}
    labels = torch.arange(10).repeat_interleave(per_class)                          # (10 * per_class,)
    noise = torch.randn(len(labels), 1, 8, 8, generator=torch.Generator().manual_seed(seed))
    rows = {}
    for w in ck.progress(SCALES, desc="guidance scales"):
        t0 = time.perf_counter()
        x = from_model_range(guided_sample(run.model, run.schedule, labels, w=w, noise=noise))
        with torch.no_grad():
            accuracy = (clf(x).argmax(1) == labels).float().mean().item()
        rows[w] = {"accuracy": round(accuracy, 4), "diversity": round(within_class_diversity(x, labels), 4),
                   "score": round(digit_quality(x)["score"], 4), "seconds": round(time.perf_counter() - t0, 2)}
    return rows, real_row


def compliance_table(story, n_requests: int) -> dict:
    """Per prompt form: field compliance overall, for stereotyped and counter-stereotyped requests."""
    requests = story_requests(n_requests, seed=0)
    out = {}
    for form in REQUEST_FORMS:
        texts = complete(story, [request_prompt(r, form) for r in requests], 260, temperature=0.8, seed=0)
        out[form] = {"all_requests": compliance_rates(texts, requests)}
        for group, keep in (("stereotyped", True), ("counter_stereotyped", False)):
            pairs = [(t, r) for t, r in zip(texts, requests) if r.stereotyped == keep]
            out[form][group] = compliance_rates(*map(list, zip(*pairs)))
            out[form][group]["n"] = len(pairs)
        out[form]["example"] = request_prompt(requests[0], form) + texts[0]
    return out


def fact_table(story, world: StoryWorld, n_seeds: int) -> dict:
    """Accuracy of "<town> is known for" over the 12 towns: wordings, then shots x formats x seeds."""
    def accuracy(prompts):
        outs = complete(story, prompts, 16)
        return sum(fact_correct(o, t, world) for o, t in zip(outs, TOWNS)) / len(TOWNS)

    table = {"wording": {w: round(accuracy([fact_prompt(t, [], world, wording=w) for t in TOWNS]), 4)
                         for w in FACT_WORDINGS}}
    for form in FACT_FORMS:
        for k in (0, 1, 2, 3):
            accs = []
            for seed in range(n_seeds):
                rng = random.Random(seed)
                accs.append(accuracy([fact_prompt(t, rng.sample([u for u in TOWNS if u != t], k), world, form)
                                      for t in TOWNS]))
            table[f"{form}_{k}_shot"] = {"mean": round(statistics.mean(accs), 4),
                                         "std": round(statistics.pstdev(accs), 4), "per_seed": accs}
    return table


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--per-class", type=int, default=None, help="samples per digit per scale (default 50)")
    parser.add_argument("--requests", type=int, default=None, help="story requests per prompt form (default 96)")
    parser.add_argument("--seeds", type=int, default=5, help="seeds of the prompt-engineering table")
    parser.add_argument("--skip-text", action="store_true", help="only the guidance table (parts 2 and 3 skipped)")
    args = parser.parse_args()
    per_class = args.per_class or ck.budget(50, fast=4)
    n_requests = args.requests or ck.budget(96, fast=8)
    ck.seed_everything(0)
    load_before = describe("cpu")

    t0 = time.perf_counter()
    run = ck.zoo.load("digit-cfg", progress=False)
    story = None if args.skip_text else ck.zoo.load("story-gpt", progress=False)
    print(f"models loaded (or built) in {time.perf_counter() - t0:.1f} s")

    # 1. guidance
    rows, real = guidance_table(run, per_class)
    print(f"\nguided DDIM (20 steps), {per_class} samples per digit and scale, the same starting noise")
    print(f"{'w':>5s} {'accuracy':>9s} {'diversity':>10s} {'score':>6s} {'score/real':>10s} {'seconds':>7s}")
    for w, r in rows.items():
        print(f"{w:5.1f} {r['accuracy']:9.3f} {r['diversity']:10.3f} {r['score']:6.2f} "
              f"{r['score'] / real['score']:10.2f} {r['seconds']:7.2f}")
    print(f"{'real':>5s} {real['accuracy']:9.3f} {real['diversity']:10.3f} {real['score']:6.2f} {1.0:10.2f}")
    ok = [w for w, r in rows.items() if r["accuracy"] >= TARGET_ACCURACY
          and r["score"] >= TARGET_SCORE_SHARE * real["score"]]
    met = bool(ok)
    print(f"target: accuracy >= {TARGET_ACCURACY:.0%} with score >= {TARGET_SCORE_SHARE:.0%} of the real digits' "
          f"at some scale: {'met at w = ' + ', '.join(f'{w:g}' for w in ok) if met else 'NOT met'}")

    compliance, facts = {}, {}
    if args.skip_text:
        print("\nparts 2 and 3 (prompting) skipped (--skip-text)")
    else:
        compliance, facts = text_parts(story, n_requests, args.seeds)
    load_after = os.getloadavg()[0]
    print(f"\nload average {load_before:.2f} before, {load_after:.2f} after")
    summary = {"benchmark": "guidance", "models": ["digit-cfg", "story-gpt"], "per_class": per_class,
               "scales": {str(w): r for w, r in rows.items()}, "real_digits": real,
               "target": {"accuracy": TARGET_ACCURACY, "score_share": TARGET_SCORE_SHARE},
               "target_met_at": ok, "meets_target": met,
               "compliance": {f: {g: v for g, v in d.items() if g != "example"} for f, d in compliance.items()},
               "n_requests": n_requests, "facts": facts,
               "load_avg_before": round(load_before, 2), "load_avg_after": round(load_after, 2)}
    print(json.dumps(summary))
    return 0


def text_parts(story, n_requests: int, n_seeds: int) -> tuple[dict, dict]:
    """Parts 2 and 3: print the compliance and prompt-engineering tables, return them."""
    # 2. prompt-field compliance
    compliance = compliance_table(story, n_requests)
    print(f"\nstory-gpt asked for {n_requests} stories (temperature 0.8): share honouring each field")
    print(f"{'prompt form':28s} {'name':>6s} {'town':>6s} {'pronoun':>8s} {'all':>6s} {'n':>4s}")
    for form, groups in compliance.items():
        for group in ("all_requests", "stereotyped", "counter_stereotyped"):
            r = groups[group]
            print(f"{form + ' / ' + group:28s} {r['name']:6.2f} {r['town']:6.2f} {r['pronoun']:8.2f} "
                  f"{r['all']:6.2f} {r.get('n', n_requests):4d}")
        print(f"  e.g. {groups['example'][:200]!r}")

    # 3. prompt engineering on the facts
    facts = fact_table(story, StoryWorld(), n_seeds)
    print("\n'<town> is known for ___' over the 12 towns, greedy; zero-shot wordings:")
    for w, acc in facts["wording"].items():
        print(f"  {w:24s} {acc:.2f}")
    print(f"worked examples (towns and order drawn by {n_seeds} seeds): mean accuracy +- std over seeds")
    print(f"{'format':10s} " + " ".join(f"{k}-shot".rjust(12) for k in range(4)))
    for form in FACT_FORMS:
        cells = [facts[f"{form}_{k}_shot"] for k in range(4)]
        print(f"{form:10s} " + " ".join(f"{c['mean']:.2f} +- {c['std']:.2f}".rjust(12) for c in cells))

    return compliance, facts


if __name__ == "__main__":
    raise SystemExit(main())
