"""Benchmark of chapter 07's diffusion model on the 8x8 digits, in the lesson's default setting.

    python benchmarks/diffusion.py                    # the lesson: "digits" preset, 1500 steps
    python benchmarks/diffusion.py --steps 4000 --n-samples 2000

Trains ``coursekit.models.diffusion`` with ``train_diffusion`` (the lesson's loop) and
reports
* sample quality: ``coursekit.evaluate.digit_quality`` (score, confidence, classes
  covered) of DDPM samples (all T steps) and of DDIM samples at several step counts,
  beside the real validation digits' figures; the target is a score of at least 90%
  of the real digits' score;
* speed: milliseconds per training step, and samples per second for DDPM and DDIM.

Readable lines first; the last line is one JSON object with every figure. Timings
depend on the machine's load, which is printed with them.
"""
from __future__ import annotations

import argparse
import json
import os
import time

import torch

from machine import describe  # benchmarks/machine.py, next to this script

from coursekit.data import load_digits
from coursekit.evaluate import digit_classifier, digit_quality
from coursekit.models.diffusion import (DIFFUSION_PRESETS, LESSON_STEPS, ddim_sample, ddpm_sample,
                                        from_model_range, to_model_range, train_diffusion)
from coursekit.runtime import budget, pick_device, seed_everything

TARGET = 0.90   # share of the real digits' score that samples should reach


def timed_quality(sample, n: int) -> tuple[dict, float]:
    """Draw n samples with ``sample()``; return (digit_quality figures, samples per second)."""
    start = time.perf_counter()
    x = sample()
    seconds = time.perf_counter() - start
    q = digit_quality(from_model_range(x).cpu())
    return {k: round(v, 4) if isinstance(v, float) else v for k, v in q.items()}, n / seconds


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--preset", default="digits", choices=sorted(p for p in DIFFUSION_PRESETS
                                                                     if p != "mnist"))
    parser.add_argument("--steps", type=int, default=None,
                        help=f"training steps (default: the lesson's, {LESSON_STEPS})")
    parser.add_argument("--n-samples", type=int, default=None, help="samples scored (default 1000)")
    parser.add_argument("--ddim-steps", default="5,10,20,50", help="DDIM step counts, comma-separated")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--device", default=None, help="default: cuda / mps / cpu, the fastest")
    args = parser.parse_args()
    steps = args.steps if args.steps is not None else budget(LESSON_STEPS, fast=30)
    n = args.n_samples if args.n_samples is not None else budget(1000, fast=50)
    ddim_counts = [int(k) for k in args.ddim_steps.split(",")]

    seed_everything(args.seed)
    device = pick_device(args.device)
    load_before = describe(device)
    cfg = DIFFUSION_PRESETS[args.preset]
    print(f"model: {args.preset} {cfg}; {steps} training steps")

    # 1. training (the lesson's loop)
    data = load_digits(seed=0)
    run = train_diffusion(cfg, to_model_range(data.x_train), steps, device=device, seed=args.seed,
                          progress=False)
    ms_per_step = 1000 * run.seconds / max(steps, 1)
    n_params = sum(p.numel() for p in run.model.parameters())
    print(f"training: {steps} steps in {run.seconds:.1f} s = {ms_per_step:.1f} ms per step "
          f"({n_params:,} parameters); final loss {run.history.mean_last('loss', 50):.4f}")

    # 2. quality and speed of the samplers, beside real data
    digit_classifier()                                         # train the judge once, outside timing
    real = {k: round(v, 4) if isinstance(v, float) else v for k, v in digit_quality(data.x_val).items()}
    results = {}
    gen = lambda: torch.Generator().manual_seed(args.seed + 1)  # noqa: E731  same noise for every sampler
    q, speed = timed_quality(lambda: ddpm_sample(run.ema_model, run.schedule, n, generator=gen()), n)
    results[f"ddpm_{cfg.n_timesteps}"] = {"steps": cfg.n_timesteps, **q, "samples_per_s": round(speed, 1)}
    for k in ddim_counts:
        q, speed = timed_quality(lambda: ddim_sample(run.ema_model, run.schedule, n, n_steps=k,
                                                     generator=gen()), n)
        results[f"ddim_{k}"] = {"steps": k, **q, "samples_per_s": round(speed, 1)}

    print(f"\n{'':12s} {'steps':>5s} {'score':>6s} {'% real':>7s} {'confidence':>10s} "
          f"{'classes':>7s} {'samples/s':>9s}")
    print(f"{'real (val)':12s} {'':>5s} {real['score']:6.2f} {100:6.0f}% {real['confidence']:10.3f} "
          f"{real['classes_covered']:7d}")
    for name, r in results.items():
        r["share_of_real"] = round(r["score"] / real["score"], 4)
        r["meets_target"] = r["share_of_real"] >= TARGET
        print(f"{name:12s} {r['steps']:5d} {r['score']:6.2f} {100 * r['share_of_real']:6.0f}% "
              f"{r['confidence']:10.3f} {r['classes_covered']:7d} {r['samples_per_s']:9.0f}"
              f"{'' if r['meets_target'] else '   below target'}")
    load_after = os.getloadavg()[0]
    ddim20 = results.get("ddim_20", next(iter(results.values())))
    ddpm = results[f"ddpm_{cfg.n_timesteps}"]
    print(f"\ntarget: score >= {100 * TARGET:.0f}% of real ({TARGET * real['score']:.2f}): "
          f"DDPM {'met' if ddpm['meets_target'] else 'NOT met'}, "
          f"DDIM-20 {'met' if ddim20['meets_target'] else 'NOT met'}; "
          f"load average {load_before:.2f} before, {load_after:.2f} after")

    summary = {
        "benchmark": "diffusion", "preset": args.preset, "train_steps": steps, "n_samples": n,
        "n_params": n_params, "seed": args.seed, "device": str(device),
        "torch_threads": torch.get_num_threads(), "load_avg_before": round(load_before, 2),
        "load_avg_after": round(load_after, 2), "train_seconds": round(run.seconds, 2),
        "ms_per_train_step": round(ms_per_step, 2),
        "final_loss": round(run.history.mean_last("loss", 50), 5), "real": real,
        "target_share_of_real": TARGET, "samplers": results,
        "ddpm_score": ddpm["score"], "ddim20_score": ddim20["score"], "real_score": real["score"],
        "ddpm_samples_per_s": ddpm["samples_per_s"], "ddim20_samples_per_s": ddim20["samples_per_s"],
        "meets_target": bool(ddpm["meets_target"] and ddim20["meets_target"]),
    }
    print(json.dumps(summary))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
