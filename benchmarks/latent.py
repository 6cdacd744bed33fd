"""Benchmark of chapter 12's latent space tools on the course's digit models, default mode.

    python benchmarks/latent.py                     # 256 paths, 64 walks per direction
    python benchmarks/latent.py --pairs 512 --ddim-pairs 64

Reports
* interpolation: for the VAE (2-D code), the GAN (33-D island noise) and the diffusion
  model's starting noise under deterministic 20-step DDIM (64-D), lerp against slerp: the
  median unevenness of the image change per step (largest step / mean step, 1 = even),
  the midpoints' norm and the classifier's mean confidence on the midpoints;
* directions: for ink and slant, found by difference of quantile means and by least
  squares, in the GAN's 32-D island code w (walks of +-2) and the VAE's 2-D z (+-1), as in
  the lesson: the mean Spearman
  correlation of position and attribute along walks from many codes (target >= 0.9 for
  at least one direction) and the share of steps the classifier keeps the class.

Readable lines first; the last line is one JSON object with every figure. The zoo models
are built on first use (minutes) and cached; timings depend on the machine's load, which
is printed with them.
"""
from __future__ import annotations

import argparse
import json
import time

import torch

from machine import describe  # benchmarks/machine.py, next to this script

import coursekit as ck
from coursekit import latent as L
from coursekit.evaluate import digit_classifier, digit_quality
from coursekit.models.diffusion import ddim_sample, from_model_range


def interpolation(decode, d: int, n_pairs: int, n_points: int, gen, classifier, shape=None) -> dict:
    """lerp vs slerp between n_pairs pairs of standard normal codes of size d."""
    a, b = torch.randn(n_pairs, d, generator=gen), torch.randn(n_pairs, d, generator=gen)
    out = {}
    for method in ("lerp", "slerp"):
        p = L.path(a, b, n_points, method)                                  # (T, B, d)
        codes = p if shape is None else p.reshape(n_points * n_pairs, *shape)
        with torch.no_grad():
            x = decode(codes.reshape(-1, d) if shape is None else codes)
        x = x.reshape(n_points, n_pairs, -1)                                # (T, B, pixels)
        steps = (x[1:] - x[:-1]).norm(dim=-1)                               # (T - 1, B)
        mid = x[n_points // 2].reshape(-1, 1, 8, 8).clamp(0, 1)
        q = digit_quality(mid, classifier)
        out[method] = {"unevenness_median": round(L.unevenness(steps).median().item(), 3),
                       "midpoint_norm": round(p[n_points // 2].norm(dim=-1).mean().item(), 3),
                       "end_norm": round(a.norm(dim=-1).mean().item(), 3),
                       "midpoint_confidence": round(q["confidence"], 4),
                       "midpoint_class_entropy": round(q["class_entropy"], 4),
                       "midpoint_greyness": round(torch.minimum(mid, 1 - mid).mean().item(), 4)}
    return out


@torch.no_grad()
def directions(codes, decode, span: float, n_walks: int, classifier) -> dict:
    images = decode(codes)
    out = {}
    ts = torch.linspace(-span, span, 9)
    for attr, fn in L.ATTRIBUTES.items():
        values = fn(images)
        for how, find in (("mean_difference", L.mean_difference_direction),
                          ("regression", L.regression_direction)):
            d = find(codes, values)
            walk = codes[:n_walks] + ts.view(-1, 1, 1) * d                  # (9, B, d)
            x = decode(walk.reshape(-1, codes.shape[1]))
            v = fn(x).reshape(9, -1)
            labels = classifier(x).argmax(1).reshape(9, -1)
            rho = torch.stack([L.spearman(ts, v[:, i]) for i in range(v.shape[1])])
            out[f"{attr}/{how}"] = {"spearman": round(rho.mean().item(), 4),
                                    "change": round((v[-1] - v[0]).mean().item(), 4),
                                    "same_class": round((labels == labels[4]).float().mean().item(), 4)}
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--pairs", type=int, default=256, help="VAE and GAN interpolation pairs")
    parser.add_argument("--ddim-pairs", type=int, default=96, help="diffusion interpolation pairs")
    parser.add_argument("--walks", type=int, default=64, help="walks per direction")
    parser.add_argument("--codes", type=int, default=2000, help="GAN codes to find directions from")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()

    device = ck.setup(seed=args.seed, quiet=True)
    load_before = describe(device)
    start = time.perf_counter()
    vae = ck.zoo.load("digit-vae").model.cpu()
    gan = ck.zoo.load("digit-gan").model.cpu()
    diffusion = ck.zoo.load("digit-diffusion")
    unet, schedule = diffusion.model.cpu(), diffusion.schedule.to("cpu")
    classifier = digit_classifier()
    setup_s = time.perf_counter() - start
    print(f"models and classifier ready in {setup_s:.1f} s (cached models load in seconds)")
    gen = torch.Generator().manual_seed(args.seed)

    start = time.perf_counter()
    interp = {
        "vae": interpolation(vae.decode, vae.config.n_latent, args.pairs, 17, gen, classifier),
        "gan": interpolation(gan, gan.cfg.noise_dim, args.pairs, 17, gen, classifier),
        "diffusion": interpolation(
            lambda noise: from_model_range(ddim_sample(unet, schedule, len(noise), n_steps=20,
                                                       noise=noise, eta=0.0)),
            64, args.ddim_pairs, 9, gen, classifier, shape=(1, 8, 8)),
    }
    interp_s = time.perf_counter() - start
    print(f"\ninterpolation (median unevenness: largest step / mean step; midpoint confidence "
          f"of the classifier), {interp_s:.1f} s")
    for model, res in interp.items():
        for method, r in res.items():
            print(f"  {model:9s} {method:5s}: unevenness {r['unevenness_median']:.2f}, midpoint norm "
                  f"{r['midpoint_norm']:.2f} (ends {r['end_norm']:.2f}), midpoint confidence "
                  f"{r['midpoint_confidence']:.3f}, class entropy {r['midpoint_class_entropy']:.3f}, "
                  f"greyness {r['midpoint_greyness']:.4f}")

    with torch.no_grad():
        w = gan.latent(torch.randn(args.codes, gan.cfg.noise_dim, generator=gen))     # (N, 32)
        z = vae.encode(ck.data.load_digits(seed=0).x_train)                           # (N, 2)
    dirs = {
        "gan_w": directions(w, lambda c: torch.sigmoid(gan.net(c)).view(-1, 1, 8, 8), 2.0,
                            args.walks, classifier),
        "vae_z": directions(z, vae.decode, 1.0, args.walks, classifier),
    }
    print("\ndirections (mean Spearman of position and attribute along 9-step walks; share of "
          "steps with the class of the walk's middle)")
    for space, res in dirs.items():
        for name, r in res.items():
            print(f"  {space:6s} {name:22s}: Spearman {r['spearman']:.3f}, change {r['change']:+.3f}, "
                  f"same class {r['same_class']:.3f}")
    best = max(r["spearman"] for res in dirs.values() for r in res.values())
    print(f"\nbest Spearman along a found direction: {best:.3f} (target >= 0.9): "
          f"{'met' if best >= 0.9 else 'NOT met'}")
    load_after = describe(device)
    print(json.dumps({"interpolation": interp, "directions": dirs, "best_spearman": best,
                      "target_met": best >= 0.9, "setup_s": round(setup_s, 1),
                      "interpolation_s": round(interp_s, 1), "load_before": round(load_before, 2),
                      "load_after": round(load_after, 2)}))


if __name__ == "__main__":
    main()
