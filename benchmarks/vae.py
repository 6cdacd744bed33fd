"""Benchmark of chapter 05's VAE on the 8x8 digits, in the lesson's default setting.

    python benchmarks/vae.py                      # the lesson's 2-D VAE, 2500 steps
    python benchmarks/vae.py --preset digits-8d --steps 4000

Trains ``coursekit.models.vae`` with ``train_vae`` and reports
* sample quality: ``coursekit.evaluate.digit_quality`` of VAE samples, with the score
  of real validation digits printed beside it, and two sharpness figures (greyness:
  mean distance of a pixel from the nearest of 0 and 1; edge energy: mean squared
  difference of neighbouring pixels);
* the final ELBO parts on the validation split (nats per image), with the floor of
  the reconstruction term (the pixels' own entropy);
* speed: seconds per training step (validation excluded) and samples per second.

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
from coursekit.models.vae import PRESETS, VAEConfig, evaluate, train_vae
from coursekit.runtime import pick_device, seed_everything


def greyness(x: torch.Tensor) -> float:
    """Mean distance of each pixel from the nearest of 0 and 1 (0 = pure black and white)."""
    return torch.minimum(x, 1 - x).mean().item()


def edge_energy(x: torch.Tensor) -> float:
    """Mean squared difference of horizontally and vertically adjacent pixels."""
    dx = x[..., :, 1:] - x[..., :, :-1]                        # (N, 1, H, W-1)
    dy = x[..., 1:, :] - x[..., :-1, :]                        # (N, 1, H-1, W)
    return 0.5 * (dx.pow(2).mean() + dy.pow(2).mean()).item()


def pixel_entropy(x: torch.Tensor) -> torch.Tensor:
    """Per-image sum of the binary entropy of every grey level: the floor of the recon term."""
    x = x.clamp(1e-6, 1 - 1e-6)
    return -(x * x.log() + (1 - x) * (1 - x).log()).flatten(1).sum(1)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--preset", default="digits-2d", choices=sorted(PRESETS))
    parser.add_argument("--steps", type=int, default=2500, help="training steps (lesson: 2500)")
    parser.add_argument("--lr", type=float, default=3e-3)
    parser.add_argument("--batch-size", type=int, default=128)
    parser.add_argument("--n-samples", type=int, default=1000, help="samples scored")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--device", default=None, help="default: cuda / mps / cpu, the fastest")
    args = parser.parse_args()

    seed_everything(args.seed)
    device = pick_device(args.device)
    load_before = describe(device)
    data = load_digits(seed=args.seed)
    config = VAEConfig.preset(args.preset)
    print(f"model: {args.preset} {config}; {args.steps} steps, batch {args.batch_size}, "
          f"lr {args.lr:g}")

    # 1. training
    start = time.perf_counter()
    run = train_vae(config, data, n_steps=args.steps, batch_size=args.batch_size,
                    lr=args.lr, seed=args.seed, device=device, progress=False)
    model, history = run.model, run.history
    train_s = time.perf_counter() - start
    ms_per_step = 1000 * history.seconds_per_step
    print(f"training: {train_s:.1f} s in all, {ms_per_step:.2f} ms per step (validation excluded)")

    # 2. the ELBO parts on the validation split (one draw of eps per image, fixed seed)
    gen = torch.Generator(device=device).manual_seed(args.seed + 1)
    val = evaluate(model, data.x_val, gen)
    floor = pixel_entropy(data.x_val).mean().item()
    print(f"validation ELBO parts (nats per image): recon {val['recon']:.3f} "
          f"(floor {floor:.3f}) + KL {val['kl']:.3f} = negative ELBO {val['neg_elbo']:.3f}")

    # 3. sampling speed: batches of n-samples, after one warm-up call
    model.sample(args.n_samples, generator=gen)
    repeats, start = 0, time.perf_counter()
    while repeats < 5 or time.perf_counter() - start < 1.0:
        model.sample(args.n_samples, generator=gen)
        repeats += 1
    if device.type == "cuda":
        torch.cuda.synchronize()
    samples_per_s = repeats * args.n_samples / (time.perf_counter() - start)
    print(f"sampling: {samples_per_s:,.0f} samples per second (batches of {args.n_samples})")

    # 4. sample quality, with real digits beside it
    classifier = digit_classifier()     # trained once per process, outside no_grad
    samples = model.sample(args.n_samples, generator=gen).cpu()
    real = data.x_val
    q_vae = digit_quality(samples, classifier=classifier)
    q_real = digit_quality(real, classifier=classifier)
    sharp = {"vae": {"greyness": greyness(samples), "edge_energy": edge_energy(samples)},
             "real": {"greyness": greyness(real), "edge_energy": edge_energy(real)}}
    print(f"{'digit_quality':>16} {'VAE (' + str(len(samples)) + ')':>12} "
          f"{'real val (' + str(len(real)) + ')':>15}")
    for key in ("score", "confidence", "class_entropy", "classes_covered"):
        fmt = "d" if key == "classes_covered" else ".3f"
        print(f"{key:>16} {q_vae[key]:>12{fmt}} {q_real[key]:>15{fmt}}")
    for key in ("greyness", "edge_energy"):
        print(f"{key:>16} {sharp['vae'][key]:>12.4f} {sharp['real'][key]:>15.4f}")
    load_after = os.getloadavg()[0]
    print(f"load average after: {load_after:.2f}")

    figures = {
        "preset": args.preset, "n_latent": config.n_latent, "steps": args.steps,
        "device": str(device), "torch_threads": torch.get_num_threads(),
        "load_average_before": round(load_before, 2), "load_average_after": round(load_after, 2),
        "train_seconds": round(train_s, 2), "ms_per_train_step": round(ms_per_step, 3),
        "samples_per_second": round(samples_per_s, 1),
        "val_recon": round(val["recon"], 4), "val_kl": round(val["kl"], 4),
        "val_neg_elbo": round(val["neg_elbo"], 4), "val_recon_floor": round(floor, 4),
        "vae_digit_quality": {k: v if isinstance(v, int) else round(v, 4)
                              for k, v in q_vae.items()},
        "real_digit_quality": {k: v if isinstance(v, int) else round(v, 4)
                               for k, v in q_real.items()},
        "vae_greyness": round(sharp["vae"]["greyness"], 4),
        "real_greyness": round(sharp["real"]["greyness"], 4),
        "vae_edge_energy": round(sharp["vae"]["edge_energy"], 5),
        "real_edge_energy": round(sharp["real"]["edge_energy"], 5),
        "n_samples_scored": len(samples), "n_real_scored": len(real),
    }
    print(json.dumps(figures))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
