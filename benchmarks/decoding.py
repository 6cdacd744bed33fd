"""Benchmark of chapter 13's decoding rules on the course's story model, in the lesson's setting.

    python benchmarks/decoding.py                     # 24 prompts x 384 characters, as the lesson
    python benchmarks/decoding.py --prompts 64 --new 768

Loads ``ck.zoo`` "story-gpt" (the model) and "story-gpt-scorer" (the judge), continues the
openings of unseen stories with each rule of ``coursekit.sampling`` and reports, beside
the same figures for the real continuations (the corpus):
* quality: negative log-likelihood under the scorer (nats per character) and the share of
  story-world facts stated correctly (``coursekit.evaluate.fact_accuracy``);
* diversity: distinct-2 and self-similarity across samples; repetition inside a sample;
* speed: tokens per second of ``generate`` with and without the KV cache at the model's
  full context (128 characters), with one and with two threads; the target is a
  speed-up of at least 2x from the cache.

Readable lines first; the last line is one JSON object with every figure. Timings depend
on the machine's load, which is printed with them.
"""
from __future__ import annotations

import argparse
import json
import math
import os
import time

import torch

from machine import describe  # benchmarks/machine.py, next to this script

import coursekit as ck
from coursekit import sampling
from coursekit.evaluate import distinct_n, fact_accuracy, repetition, self_similarity, sequence_nll

TARGET_SPEEDUP = 2.0
RULES = {
    "greedy": dict(temperature=0),
    "beam_4": "beam",
    "pure_sampling": dict(temperature=1.0),
    "temperature_0.7": dict(temperature=0.7),
    "top_k_10": dict(top_k=10),
    "top_p_0.9": dict(top_p=0.9),
    "greedy_penalty_1.2": dict(temperature=0, repetition_penalty=1.2),
}


def continue_text(model, prompt_ids, rule, n_new: int, chunk: int = 64) -> torch.Tensor:
    """The lesson's helper: continue in chunks that each start from the last ``chunk`` tokens."""
    idx = prompt_ids
    for i in range(0, n_new, chunk):
        context, n = idx[:, -chunk:], min(chunk, n_new - i)
        if rule == "beam":
            out, _ = sampling.beam_search(model, context, n, beam_width=4)
        else:
            out = sampling.generate(model, context, n, generator=torch.Generator().manual_seed(i), **rule)
        idx = torch.cat([idx, out[:, context.shape[1]:]], dim=1)
    return idx


def speed(model, batch: int, length: int, use_cache: bool, repeats: int = 3) -> float:
    """Tokens per second generating ``length - 1`` tokens from one, best of ``repeats``."""
    start = torch.zeros(batch, 1, dtype=torch.long)
    best = float("inf")
    for _ in range(repeats):
        t0 = time.perf_counter()
        sampling.generate(model, start, length - 1, use_cache=use_cache,
                          generator=torch.Generator().manual_seed(0))
        best = min(best, time.perf_counter() - t0)
    return batch * (length - 1) / best


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--prompts", type=int, default=None, help="stories continued (default 24)")
    parser.add_argument("--new", type=int, default=None, help="characters generated per story (default 384)")
    parser.add_argument("--batch", type=int, default=8, help="batch of the speed measurement")
    args = parser.parse_args()
    n_prompts = args.prompts or ck.budget(24, fast=4)
    n_new = args.new or ck.budget(384, fast=32)
    ck.seed_everything(0)
    threads_default = torch.get_num_threads()
    load_before = describe("cpu")

    t0 = time.perf_counter()
    story, scorer = ck.zoo.load("story-gpt", progress=False), ck.zoo.load("story-gpt-scorer", progress=False)
    print(f"models loaded (or built) in {time.perf_counter() - t0:.1f} s: story-gpt "
          f"{story.model.num_params():,} parameters, scorer {scorer.model.num_params():,}")
    model, tok = story.model, story.tokenizer
    world = ck.data.StoryWorld()
    stream = ck.data.story_corpus(n_prompts + 3, seed=13)
    starts = [0] + [i + 2 for i in range(len(stream)) if stream.startswith("\n\n", i)][: n_prompts - 1]
    prompt_len = 12
    prompts = [stream[s:s + prompt_len] for s in starts]
    prompt_ids = torch.stack([tok.encode(p) for p in prompts])                  # (N, 12)

    def measure(texts: list[str]) -> dict:
        ids = torch.stack([scorer.tokenizer.encode(p + t) for p, t in zip(prompts, texts)])
        accuracy, n_claims = fact_accuracy(texts, world)
        return {"scorer_nll": round(sequence_nll(scorer.model, ids, prompt_len).mean().item(), 4),
                "fact_accuracy": None if math.isnan(accuracy) else round(accuracy, 4), "claims": n_claims,
                "distinct_2": round(distinct_n(texts, 2), 4),
                "self_similarity": round(self_similarity(texts, 2), 4),
                "repetition_4": round(sum(repetition(t, 4) for t in texts) / len(texts), 4)}

    # 1. the table: every rule and the corpus
    torch.set_num_threads(1)
    table = {"corpus": measure([stream[s + prompt_len:s + prompt_len + n_new] for s in starts])}
    seconds = {}
    for name, rule in RULES.items():
        t0 = time.perf_counter()
        out = continue_text(model, prompt_ids, rule, n_new)
        seconds[name] = round(time.perf_counter() - t0, 2)
        table[name] = measure([tok.decode(row[prompt_len:].tolist()) for row in out])
        table[name]["seconds"] = seconds[name]
    print(f"\n{n_prompts} story openings continued by {n_new} characters each; the corpus row is the "
          "real continuation")
    print(f"{'':20s} {'scorer NLL':>10s} {'facts':>6s} {'claims':>6s} {'distinct-2':>10s} {'self-sim':>8s} "
          f"{'rep-4':>6s} {'seconds':>7s}")
    for name, r in table.items():
        facts = float("nan") if r["fact_accuracy"] is None else r["fact_accuracy"]
        print(f"{name:20s} {r['scorer_nll']:10.3f} {facts:6.2f} {r['claims']:6d} "
              f"{r['distinct_2']:10.3f} {r['self_similarity']:8.3f} {r['repetition_4']:6.3f} "
              f"{r.get('seconds', float('nan')):7.2f}")
    h = table["corpus"]
    gap = {n: abs(r["scorer_nll"] - h["scorer_nll"]) + abs(r["distinct_2"] - h["distinct_2"])
           for n, r in table.items() if n != "corpus"}
    ranking = sorted(gap, key=gap.get)
    print("closest to the corpus (NLL gap + distinct-2 gap):", ", ".join(ranking))

    # 2. the KV cache at the full context, with 1 and with the default number of threads
    block = model.config.block_size
    speeds = {}
    for threads in sorted({1, threads_default}):
        torch.set_num_threads(threads)
        w = speed(model, args.batch, block, True)
        wo = speed(model, args.batch, block, False)
        speeds[f"{threads}_threads"] = {"with_cache": round(w, 1), "without_cache": round(wo, 1),
                                        "speedup": round(w / wo, 2)}
        print(f"\nspeed at the full context ({block} tokens, batch {args.batch}, {threads} thread(s)): "
              f"{w:.0f} tokens/s with the cache, {wo:.0f} without: {w / wo:.1f}x")
    torch.set_num_threads(threads_default)
    speedup = speeds["1_threads"]["speedup"]
    load_after = os.getloadavg()[0]
    print(f"\ntarget: KV-cache speed-up >= {TARGET_SPEEDUP:.0f}x at full context (1 thread): "
          f"{'met' if speedup >= TARGET_SPEEDUP else 'NOT met'} ({speedup:.1f}x); "
          f"load average {load_before:.2f} before, {load_after:.2f} after")

    summary = {
        "benchmark": "decoding", "model": "story-gpt", "scorer": "story-gpt-scorer",
        "n_prompts": n_prompts, "n_new": n_new, "threads_default": threads_default,
        "load_avg_before": round(load_before, 2), "load_avg_after": round(load_after, 2),
        "table": table, "closest_to_corpus": ranking, "speed_full_context": speeds,
        "context": block, "speedup_full_context": speedup,
        "meets_target": bool(speedup >= TARGET_SPEEDUP),
    }
    print(json.dumps(summary))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
