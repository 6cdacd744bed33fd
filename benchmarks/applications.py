"""Benchmark of chapter 15: four domains, each judged its own way, with the data beside the model.

    python benchmarks/applications.py                  # the figures the lesson quotes
    python benchmarks/applications.py --code-samples 40 --molecules 2000

1. Code (``ck.zoo`` "code-gpt"): parse rates of 300-character samples (whole, and per
   top-level statement) against windows of the held-out 10% of the corpus cut the same way;
   function completion on ``coursekit.applications.code.TASKS``: ``--per-task`` completions
   each, run with their unit tests in a confined subprocess; pass@1, @5, @10 (Chen et al., 2021).
2. Music ("tune-gpt"): the share of sampled tunes that parse, of bars that fill the metre,
   of notes in the key, and of tunes music21 reads, against the same on the training tunes.
3. Molecules ("smiles-gpt", "selfies-gpt"): validity, uniqueness, novelty (MOSES) of
   ``--molecules`` samples at temperature 1, for SMILES and for SELFIES.
4. Chat fine-tune ("story-gpt"), only with ``--chat-seeds N``: for N random splits of the twelve towns into six
   and six, fine-tune on the question-and-answer pairs of six towns (stories mixed in) and ask
   about the other six; greedy answer accuracy against the untuned model asked the same way.
5. Inpainting ("digit-cfg"): classifier accuracy of the held-out digits whole, with the bottom
   (or right) half blanked, and inpainted by replacement (50 guided DDIM steps, null label).

Readable lines first; the last line is one JSON object with every figure.
"""
from __future__ import annotations

import argparse
import json
import os
import time

import numpy as np
import torch

from machine import describe  # benchmarks/machine.py, next to this script

import coursekit as ck
from coursekit.applications.chat import add_characters, answer_accuracy, chat_finetune
from coursekit.applications.code import (TASKS, complete_tasks, data_windows, function_body, parse_rate, pass_at_k,
                                         run_tests, sample_code, statement_parse_rate)
from coursekit.applications.inpaint import half_mask, inpaint
from coursekit.applications.molecules import moses_metrics, sample_molecules
from coursekit.applications.music import music21_parses, sample_tunes, tune_measures
from coursekit.data.qa import qa_pairs, split_towns
from coursekit.data.smiles import load_smiles
from coursekit.data.stdlib_code import stdlib_corpus
from coursekit.data.stories import story_corpus
from coursekit.data.tunes import load_tunes
from coursekit.evaluate import digit_classifier
from coursekit.models.diffusion import from_model_range, to_model_range


CHAT_STEPS = 300          # fine-tuning steps of part 4


def r4(x: float) -> float:
    return round(float(x), 4)


def code_part(run, n_samples: int, per_task: int) -> dict:
    corpus, _ = stdlib_corpus(300_000)
    held_out = corpus[int(0.9 * len(corpus)):]
    samples = sample_code(run, n_samples, 300, temperature=0.8, seed=0)
    windows = data_windows(held_out, 400, 300, seed=0)
    rows = {}
    for name, texts in (("samples", samples), ("held_out", windows)):
        per_statement, n_statements = statement_parse_rate(texts)
        rows[name] = {"n": len(texts), "whole": r4(parse_rate(texts)), "statements": r4(per_statement),
                      "n_statements": n_statements}
    completions = complete_tasks(run, TASKS, per_task, length=100, temperature=0.8, seed=1)
    counts = {}
    for task in ck.progress(TASKS, desc="unit tests"):
        counts[task.name] = sum(run_tests(task.prompt + function_body(c) + "\n\n" + task.tests)
                                for c in completions[task.name])
    ks = [k for k in (1, 5, 10) if k <= per_task]
    rows["pass_at_k"] = {str(k): r4(np.mean([pass_at_k(per_task, c, k) for c in counts.values()])) for k in ks}
    rows["passed_per_task"] = counts
    rows["per_task"] = per_task
    print("\ncode-gpt: parse rates of 300-character texts (temperature 0.8)")
    print(f"{'':10s} {'texts':>6s} {'whole':>6s} {'statements':>11s} {'parse':>6s}")
    for name in ("samples", "held_out"):
        r = rows[name]
        print(f"{name:10s} {r['n']:6d} {r['whole']:6.3f} {r['n_statements']:11d} {r['statements']:6.3f}")
    print(f"function completion, {per_task} samples per task: passed {counts}; "
          + ", ".join(f"pass@{k} = {v}" for k, v in rows["pass_at_k"].items()))
    return rows


def music_part(run, n_tunes: int, n_music21: int) -> dict:
    tunes = load_tunes()
    samples = sample_tunes(run, n_tunes, 400, temperature=0.8, seed=0)
    rows = {"samples": tune_measures(samples), "data": tune_measures(tunes)}
    rows["samples"]["music21"] = r4(np.mean([music21_parses(t) for t in samples[:n_music21]]))
    rows["data"]["music21"] = r4(np.mean([music21_parses(t) for t in tunes[:n_music21]]))
    rows = {k: {m: (r4(v) if isinstance(v, float) else v) for m, v in d.items()} for k, d in rows.items()}
    print(f"\ntune-gpt: {n_tunes} sampled tunes (temperature 0.8) against the {len(tunes)} training tunes")
    print(f"{'':8s} {'tunes':>6s} {'parse':>6s} {'bars in metre':>14s} {'in key':>7s} {'music21 (first ' + str(n_music21) + ')':>20s}")
    for name, m in rows.items():
        print(f"{name:8s} {m['n_tunes']:6d} {m['parse']:6.3f} {m['bars_in_metre']:14.3f} {m['in_key']:7.3f} "
              f"{m['music21']:20.3f}")
    return rows


def molecule_part(runs: dict, n_mol: int) -> dict:
    smiles = load_smiles()
    rows = {}
    for label, run in runs.items():
        rows[label] = {k: r4(v) for k, v in moses_metrics(sample_molecules(run, n_mol, 1.0, seed=0), smiles).items()}
    print(f"\nmolecules: {n_mol} samples per model at temperature 1.0 ({len(smiles)} training molecules)")
    print(f"{'model':8s} {'validity':>9s} {'uniqueness':>11s} {'novelty':>8s}")
    for label, m in rows.items():
        print(f"{label:8s} {m['validity']:9.3f} {m['uniqueness']:11.3f} {m['novelty']:8.3f}")
    return rows


def chat_part(story, n_steps: int, n_seeds: int) -> dict:
    stories = story_corpus(300, seed=5).split("\n\n")
    rows = {"base": {"trained_towns": [], "held_out_towns": []}, "chat": {"trained_towns": [], "held_out_towns": []}}
    for seed in ck.progress(range(n_seeds), desc="chat fine-tunes"):
        train_towns, held_towns = split_towns(6, seed=seed)
        train_pairs, held_pairs = qa_pairs(towns=train_towns), qa_pairs(towns=held_towns)
        chat = chat_finetune(story, train_pairs, n_steps, seed=seed, progress=False, stories=stories)
        for name, run in (("base", add_characters(story, seed=seed)), ("chat", chat)):
            rows[name]["trained_towns"].append(r4(answer_accuracy(run, train_pairs)))
            rows[name]["held_out_towns"].append(r4(answer_accuracy(run, held_pairs)))
    # the held-out facts asked in the stories' own words ("Millbrook is known for"): does the model know them?
    from coursekit.prompting import complete
    held_all = qa_pairs()
    said = complete(story, [p.opening for p in held_all], 30, stop=".")
    story_form = r4(sum(p.value in t for p, t in zip(held_all, said)) / len(held_all))
    print(f"all 24 facts asked in the stories' own words (untuned story model): {story_form:.3f}")
    for r in rows.values():
        r.update({f"{k}_mean": r4(np.mean(v)) for k, v in list(r.items())})
    print(f"\nchat fine-tune of story-gpt ({n_steps} steps), {n_seeds} splits of the towns (6 + 6): greedy accuracy")
    print(f"{'model':8s} {'fine-tuned towns':>17s} {'held-out towns':>15s}   per split")
    for name, r in rows.items():
        print(f"{name:8s} {r['trained_towns_mean']:17.3f} {r['held_out_towns_mean']:15.3f}   {r['held_out_towns']}")
    rows["n_steps"], rows["splits"], rows["story_form_all_facts"] = n_steps, n_seeds, story_form
    return rows


def inpaint_part(run, n_steps: int) -> dict:
    clf = digit_classifier()
    digits = ck.data.load_digits(seed=0)
    x0, y = to_model_range(digits.x_val), digits.y_val
    acc = lambda x: r4((clf(from_model_range(x)).argmax(1) == y).float().mean().item())
    rows = {}
    for hide in ck.progress(["bottom", "right"], desc="inpainting"):
        mask = half_mask(len(x0), hide=hide)
        filled = inpaint(run.model, run.schedule, x0, mask, n_steps=n_steps, generator=torch.Generator().manual_seed(0))
        with torch.no_grad():
            rows[hide] = {"original": acc(x0), "masked": acc(mask * x0 - (1 - mask)), "inpainted": acc(filled)}
    print(f"\ninpainting {len(x0)} held-out digits ({n_steps} DDIM steps, null label): classifier accuracy")
    print(f"{'hidden':8s} {'original':>9s} {'masked':>7s} {'inpainted':>10s}")
    for hide, r in rows.items():
        print(f"{hide:8s} {r['original']:9.3f} {r['masked']:7.3f} {r['inpainted']:10.3f}")
    return rows


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--code-samples", type=int, default=None, help="code samples for parse rates (default 100)")
    parser.add_argument("--per-task", type=int, default=None, help="completions per task (default 20)")
    parser.add_argument("--tunes", type=int, default=None, help="sampled tunes (default 200)")
    parser.add_argument("--molecules", type=int, default=None, help="molecules per model (default 1000)")
    parser.add_argument("--chat-seeds", type=int, default=0,
                        help="splits of the towns for part 4 (default 0: skipped, minutes per split on 2 cores)")
    parser.add_argument("--only", nargs="*", default=None,
                        choices=["code", "music", "molecules", "chat", "inpainting"],
                        help="run only these parts (default: all)")
    args = parser.parse_args()
    n_code = args.code_samples or ck.budget(100, fast=4)
    per_task = args.per_task or ck.budget(20, fast=2)
    n_tunes = args.tunes or ck.budget(200, fast=4)
    n_mol = args.molecules or ck.budget(1000, fast=20)
    ck.seed_everything(0)
    load_before = describe("cpu")
    t0 = time.perf_counter()
    runs = {name: ck.zoo.load(name, progress=False)
            for name in ("code-gpt", "tune-gpt", "smiles-gpt", "selfies-gpt", "story-gpt", "digit-cfg")}
    print(f"models loaded (or built) in {time.perf_counter() - t0:.1f} s")
    parts = {}
    for name, part in (("code", lambda: code_part(runs["code-gpt"], n_code, per_task)),
                       ("music", lambda: music_part(runs["tune-gpt"], n_tunes, ck.budget(50, fast=2))),
                       ("molecules", lambda: molecule_part({"SMILES": runs["smiles-gpt"],
                                                            "SELFIES": runs["selfies-gpt"]}, n_mol)),
                       ("chat", lambda: chat_part(runs["story-gpt"], ck.budget(CHAT_STEPS, fast=10), args.chat_seeds)
                        if args.chat_seeds else {"skipped": "run with --chat-seeds N"}),
                       ("inpainting", lambda: inpaint_part(runs["digit-cfg"], ck.budget(50, fast=5)))):
        if args.only is not None and name not in args.only:
            continue
        t1 = time.perf_counter()
        parts[name] = part()
        parts[name]["seconds"] = round(time.perf_counter() - t1, 1)
    load_after = os.getloadavg()[0]
    print(f"\nload average {load_before:.2f} before, {load_after:.2f} after")
    summary = {"benchmark": "applications", "models": list(runs), **parts,
               "settings": {"code_samples": n_code, "per_task": per_task, "tunes": n_tunes, "molecules": n_mol},
               "load_avg_before": round(load_before, 2), "load_avg_after": round(load_after, 2)}
    print(json.dumps(summary))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
