"""Benchmark of chapter 10: four ways to adapt the story model to town news, and digit transfer.

    python benchmarks/finetune.py                    # 300 steps, 200 reports, seed 0
    python benchmarks/finetune.py --steps 600 --seeds 0 1

Loads ``ck.zoo`` "story-gpt" and fine-tunes it on ``coursekit.data.news`` reports with
``coursekit.models.lora.finetune``: from scratch, full fine-tuning, the last block only,
and LoRA (rank 4 on every linear layer of every block: the "attn-mlp" preset), and, for
comparison, LoRA at rank 16 (over the 5% budget: does the rank limit it?). All methods get the same data,
steps, batches and windows of 64 characters. The table: trainable parameters, the
new-domain loss (other reports), the old-domain loss (other stories: forgetting) and the
time. It checks that the merged LoRA model gives the same logits as the adapted one.

Targets: LoRA with at most 5% of the parameters trainable within 0.05 nats of full
fine-tuning on the new domain, and less forgetting (a lower old-domain loss) than full
fine-tuning. Then digits: a body trained on 0-4 reused for 5-9 with a few labels per class,
against training from scratch and against a frozen random body (the control), over a few seeds.

Readable lines first; the last line is one JSON object with every figure. Timings depend
on the machine's load, which is printed with them.
"""
from __future__ import annotations

import argparse
import json
import os
import time

import torch

from machine import describe  # benchmarks/machine.py, next to this script

import coursekit as ck
from coursekit.data import story_corpus
from coursekit.data.news import news_corpus
from coursekit.lm import LMData, lm_loss
from coursekit.models.lora import METHODS, LoRAConfig, count_parameters, finetune, merge_lora
from coursekit.transfer import few_shot_accuracy, train_source_body

CONTEXT = 64
TARGET_SHARE, TARGET_GAP = 0.05, 0.05


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=300, help="fine-tuning steps per method")
    parser.add_argument("--reports", type=int, default=200, help="news reports to train on")
    parser.add_argument("--seeds", type=int, nargs="+", default=[0], help="seeds of the fine-tuning runs")
    parser.add_argument("--digit-seeds", type=int, default=3, help="seeds of the few-shot digit runs")
    parser.add_argument("--extra-ranks", type=int, nargs="*", default=[16],
                        help="LoRA ranks beyond the preset's, for comparison (alpha = 2 r)")
    parser.add_argument("--threads", type=int, default=2)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    load = describe("cpu")

    story = ck.zoo.load("story-gpt", progress=False)
    tok = story.tokenizer
    alphabet = tok.decode(list(range(tok.vocab_size)))
    data = LMData.from_text(news_corpus(args.reports, seed=0, alphabet=alphabet), tok)
    news_test = tok.encode(news_corpus(60, seed=1))
    story_test = tok.encode(story_corpus(60, seed=7))
    losses = lambda m: (lm_loss(m, news_test, CONTEXT), lm_loss(m, story_test, CONTEXT))
    base_new, base_old = losses(story.model)
    print(f"new domain: {args.reports} news reports ({len(data.train):,} training characters); "
          f"{args.steps} steps, batches of 16 windows of {CONTEXT}; seeds {args.seeds}")
    print(f"\n{'method':<12}{'trainable':>11}{'share':>8}{'new-domain':>12}{'old-domain':>12}{'time s':>8}")
    print(f"{'(before)':<12}{0:>11,}{0:>8.1%}{base_new:>12.3f}{base_old:>12.3f}")
    table = {}
    merge_diff = None
    # the four methods, then LoRA at a larger rank (same alpha / r), over the 5% budget: is rank the limit?
    rows = [(m, m, None) for m in METHODS] + [(f"lora r{r}", "lora", LoRAConfig(r=r, alpha=2.0 * r))
                                               for r in args.extra_ranks]
    for label, method, lora_cfg in rows:
        news, old, secs = [], [], []
        for seed in args.seeds:
            start = time.perf_counter()
            run = finetune(story, data, args.steps, method=method, lora=lora_cfg, context=CONTEXT, seed=seed,
                           progress=False)
            secs.append(time.perf_counter() - start)
            n, o = losses(run.model)
            news.append(n)
            old.append(o)
            if label == "lora" and merge_diff is None:
                idx = news_test[:CONTEXT][None]
                with torch.no_grad():
                    merge_diff = (merge_lora(run.model)(idx)[0] - run.model(idx)[0]).abs().max().item()
        counts = count_parameters(run.model)
        row = {"trainable": counts["trainable"], "share": counts["trainable"] / counts["total"],
               "new_loss": sum(news) / len(news), "old_loss": sum(old) / len(old),
               "seconds": sum(secs) / len(secs)}
        table[label] = row
        print(f"{label:<12}{row['trainable']:>11,}{row['share']:>8.1%}{row['new_loss']:>12.3f}"
              f"{row['old_loss']:>12.3f}{row['seconds']:>8.1f}")
    lora, full = table["lora"], table["full"]
    gap = lora["new_loss"] - full["new_loss"]
    share_ok, gap_ok, forget_ok = lora["share"] <= TARGET_SHARE, gap <= TARGET_GAP, lora["old_loss"] < full["old_loss"]
    print(f"\nmerged LoRA model vs adapted: largest logit difference {merge_diff:.2e}")
    print(f"target: LoRA trains <= {TARGET_SHARE:.0%}: {lora['share']:.1%} -> {'met' if share_ok else 'MISSED'}")
    print(f"target: LoRA within {TARGET_GAP} nats of full fine-tuning on the new domain: "
          f"{lora['new_loss']:.3f} - {full['new_loss']:.3f} = {gap:+.3f} -> {'met' if gap_ok else 'MISSED'}")
    print(f"target: LoRA forgets less than full fine-tuning (old-domain loss): {lora['old_loss']:.3f} vs "
          f"{full['old_loss']:.3f} -> {'met' if forget_ok else 'MISSED'}")

    body = train_source_body(seed=0)
    digits = {}
    print(f"\ndigits 5-9 from a few labels per class, validation accuracy over {args.digit_seeds} seeds "
          "(mean, min-max)")
    print(f"{'labels':>8}{'transfer':>20}{'scratch':>20}{'random body':>20}")
    for n in (1, 3, 5, 10):
        runs = [few_shot_accuracy(body, n, seed=s) for s in range(args.digit_seeds)]
        digits[n] = {k: [r[k] for r in runs] for k in ("transfer", "scratch", "random body")}
        cells = [f"{sum(v) / len(v):.3f} ({min(v):.2f}-{max(v):.2f})" for v in digits[n].values()]
        print(f"{n:>8}{cells[0]:>20}{cells[1]:>20}{cells[2]:>20}")

    load_after = os.getloadavg()[0]
    print(f"\nload average {load:.2f} before, {load_after:.2f} after")
    print(json.dumps({"benchmark": "finetune", "load_avg_before": round(load, 2),
                      "load_avg_after": round(load_after, 2), "steps": args.steps,
                      "reports": args.reports, "seeds": args.seeds, "context": CONTEXT,
                      "before": {"new_loss": base_new, "old_loss": base_old}, "methods": table,
                      "merge_max_abs_diff": merge_diff,
                      "targets": {"lora_share_le_5pct": share_ok, "lora_within_0.05_of_full": gap_ok,
                                  "lora_forgets_less": forget_ok, "gap_nats": gap},
                      "digits": {str(k): v for k, v in digits.items()}}))


if __name__ == "__main__":
    main()
