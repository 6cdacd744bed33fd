"""Benchmark of chapter 17: detecting generated digits, the text watermark, memorisation.

    python benchmarks/ethics.py                       # as reported in the README
    python benchmarks/ethics.py --texts 32 --max-len 400 --mem-stories 600 --mem-steps 400   # the lesson's sizes

1. Detector (``coursekit.detect``): a small CNN trained on real 8x8 scans against generated
   digits (quantised to the scans' 17 grey levels) of the zoo's four generators; caught
   share per generator at threshold 0.5 and at 1% false alarms on real test scans; then
   each generator held out in turn: caught share on the three seen and on the unseen one.
2. Watermark (``coursekit.watermark``, Kirchenbauer et al. 2023, gamma 0.5): a word-level
   story GPT (spaced word pieces) writes ``--texts`` texts from real openings at several
   strengths delta; detection (z > 2.326 over distinct pairs, 1% false positives) by the
   number of generated tokens read, the shortest length that reaches 95%, detection at 200
   tokens after 10% and 30% random edits, the false alarms on unwatermarked text, and the
   cost: the character scorer's nats per character and the share of true town facts.
   Target: >= 95% at 200 tokens (or the length that reaches it).
3. Memorisation (``coursekit.memorise``): 15 six-digit secrets planted 1, 10 and 100 times
   among the training stories; a story GPT trained on them and on the de-duplicated
   corpus; per copy count: secrets written out greedily and mean exposure (bits, rank among
   255 random codes).

Readable lines first; the last line is one JSON object with every figure.
"""
from __future__ import annotations

import argparse
import json
import math
import time

import torch

from machine import describe  # benchmarks/machine.py, next to this script

import coursekit as ck
from coursekit.data import CharTokenizer, load_digits
from coursekit.data.stories import StoryWorld
from coursekit.detect import GENERATORS, flagged_share, generator_samples, rate_at_fpr, train_detector
from coursekit.evaluate import fact_accuracy, texts_nll
from coursekit.lm import LMData, train_lm
from coursekit.memorise import greedy_codes, make_secrets, secret_corpus, secret_exposures
from coursekit.models.gpt import GPTConfig
from coursekit.sampling import generate
from coursekit.tokenizers.words import SPACED_WORD_SPLIT, WordTokenizer
from coursekit.watermark import Z_1PCT, Watermark, random_edits

DELTAS = [0.0, 1.0, 2.0, 3.0, 4.0]
LENGTHS = [25, 50, 100, 150, 200, 300, 400, 500, 600, 800]


def detector_table(n_train: int, epochs: int) -> dict:
    digits = load_digits(seed=0)
    fakes_train = {g: generator_samples(g, n_train, seed=1) for g in GENERATORS}
    fakes_test = {g: generator_samples(g, len(digits.x_val), seed=2) for g in GENERATORS}
    det = train_detector(digits.x_train, fakes_train, epochs=epochs, progress=False)
    p_real = det.prob_generated(digits.x_val)
    out = {"all": {"real_flagged": round(flagged_share(det, digits.x_val), 4)}}
    print(f"detector against all four: real test scans flagged {out['all']['real_flagged']:.1%}")
    for g in GENERATORS:
        caught_1pct = rate_at_fpr(p_real, det.prob_generated(fakes_test[g]), 0.01)[1]
        out["all"][g] = {"caught": round(flagged_share(det, fakes_test[g]), 4), "caught_at_1pct": round(caught_1pct, 4)}
        print(f"  {g:10s} caught {out['all'][g]['caught']:6.1%}, at 1% false alarms {caught_1pct:6.1%}")
    out["held_out"] = {}
    for held in GENERATORS:
        det = train_detector(digits.x_train, {g: x for g, x in fakes_train.items() if g != held}, epochs=epochs,
                             progress=False)
        seen = [flagged_share(det, fakes_test[g]) for g in GENERATORS if g != held]
        row = {"seen": round(sum(seen) / len(seen), 4), "unseen": round(flagged_share(det, fakes_test[held]), 4),
               "real_flagged": round(flagged_share(det, digits.x_val), 4)}
        out["held_out"][held] = row
        print(f"  held out {held:10s}: seen {row['seen']:6.1%}, unseen {row['unseen']:6.1%}, "
              f"real flagged {row['real_flagged']:5.1%}")
    return out


def watermark_table(n_texts: int, max_len: int, steps: int, device) -> dict:
    world = StoryWorld()
    text = "\n\n".join(s.text for s in world.stories(3000, seed=0)) + "\n\n"
    tok = WordTokenizer(text, max_words=2000, split=SPACED_WORD_SPLIT)
    data = LMData.from_text(text, tokenizer=tok)
    t0 = time.perf_counter()
    run = train_lm(GPTConfig.preset("gpt-nano", vocab_size=tok.vocab_size), data, steps, device=device, seed=0,
                   progress=False)
    print(f"word model: {tok.vocab_size} pieces, {steps} steps in {time.perf_counter() - t0:.0f} s, "
          f"validation {run.history['val_loss'][-1]:.3f} nats/token")
    scorer = ck.zoo.load("story-gpt-scorer", device=device, progress=False)
    prompt_len = 8
    prompts = data.val[: n_texts * 64].view(n_texts, 64)[:, :prompt_len].to(device)
    lengths = [n for n in LENGTHS if n <= max_len]
    out = {"model_val_loss": round(run.history["val_loss"][-1], 4), "gamma": 0.5, "texts": n_texts, "by_delta": {}}
    for delta in DELTAS:
        wm = Watermark(tok.vocab_size, key=42, gamma=0.5, delta=delta)
        g = torch.Generator(device=device).manual_seed(0)
        t0 = time.perf_counter()
        with torch.no_grad():
            texts = generate(run.model, prompts, max_len, generator=g,
                             logits_processor=wm.processor if delta else None).cpu()
        seconds = time.perf_counter() - t0

        def rate(L, edit=0.0):
            zs = []
            for i, t in enumerate(texts):
                t = t[: prompt_len + L]
                if edit:
                    t = random_edits(t, edit, tok.vocab_size, torch.Generator().manual_seed(i), start=prompt_len)
                zs.append(wm.z_score(t, start=prompt_len))
            return sum(z > Z_1PCT for z in zs) / len(zs)

        by_len = {L: round(rate(L), 4) for L in lengths}
        needed = next((L for L in lengths if by_len[L] >= 0.95), None)
        decoded = [tok.decode(t[prompt_len:]).replace("<unk>", "") for t in texts]
        nll = texts_nll(scorer, decoded, min(len(d) for d in decoded)).mean().item()
        facts, claims = fact_accuracy(decoded, world)
        L200 = min(200, max_len)
        row = {"detected_by_length": by_len, "length_for_95pct": needed,
               "detected_200_edit_10pct": round(rate(L200, 0.1), 4), "detected_200_edit_30pct": round(rate(L200, 0.3), 4),
               "scorer_nats_per_char": round(nll, 4), "true_facts": round(facts, 4) if claims else None, "claims": claims,
               "generation_s": round(seconds, 1)}
        out["by_delta"][str(delta)] = row
        print(f"delta {delta}: " + ", ".join(f"{L}: {r:.0%}" for L, r in by_len.items())
              + f"; 95% at {needed}; at {L200} tokens after 10%/30% edits {row['detected_200_edit_10pct']:.0%}/"
              f"{row['detected_200_edit_30pct']:.0%}; scorer {nll:.3f} nats/char, facts {facts:.2f} of {claims}")
    return out


def memorisation_table(n_stories: int, steps: int, preset: str, device) -> dict:
    secrets = make_secrets(15, copies=(1, 10, 100), seed=0)
    out = {"preset": preset, "stories": n_stories, "steps": steps}
    for dedup in (False, True):
        train_docs, val_docs = secret_corpus(n_stories, secrets, dedup=dedup, seed=0)
        text, vtext = "\n\n".join(train_docs) + "\n\n", "\n\n".join(val_docs) + "\n\n"
        tok = CharTokenizer(text + vtext)
        data = LMData(tok, tok.encode(text), tok.encode(vtext))
        t0 = time.perf_counter()
        run = train_lm(GPTConfig.preset(preset, vocab_size=tok.vocab_size), data, steps, device=device, seed=0,
                       progress=False)
        seconds = time.perf_counter() - t0
        got = greedy_codes(run, secrets)
        exp = secret_exposures(run, secrets, n_candidates=255, seed=1)
        key = "deduplicated" if dedup else "planted"
        out[key] = {"train_s": round(seconds, 1), "documents": len(train_docs)}
        for c in (1, 10, 100):
            group = [s for s in secrets if s.copies == c]
            out[key][f"{c}x"] = {"written_out": sum(got[s.name] == s.code for s in group), "of": len(group),
                                 "exposure_bits": round(sum(exp[s.name] for s in group) / len(group), 3)}
        print(f"{key}: " + "; ".join(f"{c}: {v['written_out']}/{v['of']} written, {v['exposure_bits']:.2f} bits"
                                     for c, v in out[key].items() if c.endswith("x"))
              + f" ({seconds:.0f} s training)")
    return out


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--n-train", type=int, default=1000, help="generated training images per generator")
    p.add_argument("--epochs", type=int, default=15)
    p.add_argument("--texts", type=int, default=64)
    p.add_argument("--max-len", type=int, default=800)
    p.add_argument("--wm-steps", type=int, default=800)
    p.add_argument("--mem-stories", type=int, default=3000)
    p.add_argument("--mem-steps", type=int, default=800)
    p.add_argument("--mem-preset", default="story")
    p.add_argument("--skip", nargs="*", default=[], choices=["detector", "watermark", "memorisation"])
    args = p.parse_args()
    device = ck.setup(seed=0, quiet=True)
    load = describe(device)
    t0 = time.perf_counter()
    result = {"benchmark": "ethics", "load": round(load, 2), "args": vars(args)}
    if "detector" not in args.skip:
        result["detector"] = detector_table(args.n_train, args.epochs)
    if "watermark" not in args.skip:
        result["watermark"] = watermark_table(args.texts, args.max_len, args.wm_steps, device)
    if "memorisation" not in args.skip:
        result["memorisation"] = memorisation_table(args.mem_stories, args.mem_steps, args.mem_preset, device)
    result["seconds"] = round(time.perf_counter() - t0, 1)
    result["load_end"] = round(__import__("os").getloadavg()[0], 2)
    print(json.dumps(result))


if __name__ == "__main__":
    main()
