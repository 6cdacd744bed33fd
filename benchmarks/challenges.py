"""Benchmark of chapter 16: hallucination and retrieval, compression, data parallelism, bias.

    python benchmarks/challenges.py                  # as reported
    python benchmarks/challenges.py --worlds 2 --reader-steps 100 --skip-bias

1. Hallucination and RAG (``ck.zoo`` "story-gpt"): the facts of ``--worlds`` updated story
   worlds (StoryWorld seeds 1, 2, ...: each town's specialty and landmark redrawn after
   training), 24 questions each, greedy. Closed-book accuracy; then a copy fine-tuned for
   ``--reader-steps`` to answer from a passage (``coursekit.retrieval.finetune_reader`` on
   passages of 300 other, fresh worlds), asked with the best BM25 sentence of 300 stories
   of the updated world in its prompt, and with a wrong passage (the next town's). Target:
   RAG accuracy >= 2 x closed-book and > 90%.
2. Bias: the share of stories whose character has the stereotyped pronoun (the data);
   story-gpt's exact probability of a stereotyped name after "Once upon a time, a <job>
   named" (mean over the 16 jobs); then a small GPT ("gpt-pico") trained from scratch for
   ``--bias-steps`` on the corpus's openings "a <job> named <name>." alone, on the skewed
   openings and on the counterfactually augmented ones (every opening also with the other
   gender's name): its exact probability and its sampled share at temperature 1.0 and 0.5.
3. Compression (story-gpt): float32, torch dynamic int8, weight-only int8 (per-row
   scales), 50% magnitude pruning, and a 3 x 64 student distilled for ``--distill-steps``
   (beside the same student trained on the text alone): bytes, ms per token on one thread,
   validation loss (nats per character, first 20,000 validation characters).
4. Data parallelism: ``coursekit.ddp_train`` for ``--ddp-steps`` in one process and under
   ``torchrun --nproc_per_node=2`` at the same global batch: the largest difference between
   the two loss curves, and tokens per second of each.

Readable lines first; the last line is one JSON object with every figure.
"""
from __future__ import annotations

import argparse
import json
import os

from machine import describe  # benchmarks/machine.py, next to this script

import coursekit as ck
from coursekit.compress import distill, dynamic_int8, measure, prune_model, quantize_weights
from coursekit.data import story_corpus
from coursekit.data.bias import sampled_stereotype_share, stereotype_probability, stereotype_share, swap_gender
from coursekit.data.stories import PROFESSIONS, StoryWorld
from coursekit.ddp_train import launch
from coursekit.lm import LMData, LMTrainConfig, train_lm
from coursekit.models.gpt import GPTConfig
from coursekit.retrieval import BM25, evaluate_facts, finetune_reader, reading_examples, sentence_store

TARGET_FACTOR, TARGET_RAG = 2.0, 0.90


def rag_part(story, n_worlds: int, reader_steps: int) -> dict:
    reader = finetune_reader(story, reading_examples(range(100, 400)), reader_steps, seed=0)
    rows = {"closed_book_training_world": evaluate_facts(story, StoryWorld(0))["accuracy"]}
    acc = {"closed": [], "closed_reader": [], "rag": [], "hit": [], "wrong": [], "copied": []}
    for seed in range(1, n_worlds + 1):
        world = StoryWorld(seed)
        store = BM25(sentence_store(world, 300, seed=0))
        acc["closed"].append(evaluate_facts(story, world)["accuracy"])
        acc["closed_reader"].append(evaluate_facts(reader, world)["accuracy"])
        r = evaluate_facts(reader, world, store)
        acc["rag"].append(r["accuracy"])
        acc["hit"].append(r["retrieval_hit"])
        w = evaluate_facts(reader, world, store, passages="wrong")
        acc["wrong"].append(w["accuracy"])
        acc["copied"].append(w["copied"])
    rows.update({k: round(sum(v) / len(v), 4) for k, v in acc.items()})
    rows.update({"n_questions": 24 * n_worlds, "reader_steps": reader_steps,
                 "reader_seconds": round(reader.seconds, 1)})
    return rows


def bias_part(story, steps: int) -> dict:
    world = StoryWorld()
    stories = world.stories(3000, seed=3)
    jobs = sorted(PROFESSIONS)
    out = {"data_share": round(stereotype_share(stories), 4),
           "story_gpt_probability": round(sum(stereotype_probability(story, j) for j in jobs) / len(jobs), 4),
           "story_gpt_sampled_t1": round(sampled_stereotype_share(story, 20)["share"], 4)}
    skewed = [f"a {s.profession} named {s.name}." for s in stories]
    variants = {"skewed": skewed, "counterfactual": skewed + [swap_gender(line) for line in skewed]}
    out["counterfactual_data_share"] = 0.5       # every opening appears with both genders: exactly half
    tok = story.tokenizer
    for name, lines in variants.items():
        data = LMData.from_text("\n".join(lines) + "\n", tokenizer=tok)
        cfg = GPTConfig.preset("gpt-pico", vocab_size=tok.vocab_size, block_size=32)
        run = train_lm(cfg, data, steps, train_config=LMTrainConfig(lr=1e-2, batch_size=32, eval_every=0),
                       desc=f"openings model ({name})")
        prob = sum(stereotype_probability(run, j, prompt=f"\na {j} named") for j in jobs) / len(jobs)
        s1 = _sampled(run, 1.0)
        s05 = _sampled(run, 0.5)
        out[name] = {"probability": round(prob, 4), "sampled_t1": round(s1, 4), "sampled_t05": round(s05, 4),
                     "seconds": round(run.seconds, 1)}
    out["steps"] = steps
    return out


def _sampled(run, temperature: float, n: int = 40) -> float:
    """Sampled stereotyped share of an openings model (prompts "\\na <job> named")."""
    from coursekit.data.bias import pronoun_of_name
    from coursekit.prompting import complete
    jobs = sorted(PROFESSIONS)
    prompts = [f"\na {j} named" for j in jobs for _ in range(n)]
    texts = complete(run, prompts, 8, temperature=temperature, seed=0)
    hits = [pronoun_of_name(t.split(".")[0].strip()) == PROFESSIONS[p.split()[1]] for p, t in zip(prompts, texts)
            if pronoun_of_name(t.split(".")[0].strip())]
    return sum(hits) / len(hits) if hits else float("nan")


def compression_part(story, distill_steps: int) -> dict:
    data = LMData.from_text(story_corpus(3000, seed=0), tokenizer=story.tokenizer)
    val = data.val[:20_000]
    student_cfg = GPTConfig.preset("gpt-nano", vocab_size=story.tokenizer.vocab_size, block_size=128)
    student = distill(story.model, student_cfg, data, distill_steps, seed=0)
    scratch = train_lm(student_cfg, data, distill_steps, seed=0, desc="student without a teacher",
                       train_config=LMTrainConfig(eval_every=0))
    models = {"float32": story.model, "dynamic int8 (torch)": dynamic_int8(story.model),
              "weight-only int8": quantize_weights(story.model), "pruned 50%": prune_model(story.model, 0.5),
              f"distilled 3x64 ({distill_steps} steps)": student.model,
              f"same student, no teacher ({distill_steps} steps)": scratch.model}
    return {name: {k: round(v, 4) for k, v in measure(m, val).items()} for name, m in models.items()}


def ddp_part(steps: int) -> dict:
    out = {n: launch(n, steps=steps) for n in (1, 2)}
    diff = max(abs(a - b) for a, b in zip(out[1]["losses"], out[2]["losses"]))
    return {"steps": steps, "max_loss_difference": diff,
            "tokens_per_second_1": round(out[1]["tokens_per_second"], 1),
            "tokens_per_second_2": round(out[2]["tokens_per_second"], 1),
            "final_loss": round(out[1]["losses"][-1], 4),
            "wall_seconds_1": round(out[1]["wall_seconds"], 1), "wall_seconds_2": round(out[2]["wall_seconds"], 1)}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--worlds", type=int, default=4)
    parser.add_argument("--reader-steps", type=int, default=150)
    parser.add_argument("--bias-steps", type=int, default=2500)
    parser.add_argument("--distill-steps", type=int, default=600)
    parser.add_argument("--ddp-steps", type=int, default=60)
    parser.add_argument("--skip-bias", action="store_true")
    args = parser.parse_args()
    load_before = describe("cpu")
    story = ck.zoo.load("story-gpt")

    rag = rag_part(story, args.worlds, args.reader_steps)
    met = rag["rag"] >= TARGET_FACTOR * rag["closed"] and rag["rag"] > TARGET_RAG
    print(f"\n1. facts of {args.worlds} updated worlds ({rag['n_questions']} questions), greedy")
    print(f"closed-book on the training world: {rag['closed_book_training_world']:.3f}")
    print(f"closed-book: {rag['closed']:.3f}   (the reader, closed-book: {rag['closed_reader']:.3f})")
    print(f"RAG (BM25 top-1 sentence, reader {rag['reader_steps']} steps): {rag['rag']:.3f}, "
          f"passage holds the answer {rag['hit']:.3f}")
    print(f"wrong passage: right {rag['wrong']:.3f}, copied the passage's fact {rag['copied']:.3f}")
    print(f"target: RAG >= {TARGET_FACTOR:g} x closed-book and > {TARGET_RAG:.0%}: {'met' if met else 'NOT met'}")

    bias = {}
    if not args.skip_bias:
        bias = bias_part(story, args.bias_steps)
        print(f"\n2. profession-pronoun skew: data {bias['data_share']:.3f}; story-gpt P(stereotyped name) "
              f"{bias['story_gpt_probability']:.3f}, sampled {bias['story_gpt_sampled_t1']:.3f}")
        for name in ("skewed", "counterfactual"):
            b = bias[name]
            print(f"openings model on {name} openings ({bias['steps']} steps): P {b['probability']:.3f}, "
                  f"sampled T=1 {b['sampled_t1']:.3f}, T=0.5 {b['sampled_t05']:.3f}")

    table = compression_part(story, args.distill_steps)
    print("\n3. compression of story-gpt (validation: first 20,000 characters)")
    print(f"{'model':42s} {'bytes':>10s} {'ms/token':>9s} {'val loss':>9s}")
    for name, r in table.items():
        print(f"{name:42s} {r['bytes']:10,d} {r['ms_per_token']:9.2f} {r['val_loss']:9.3f}")

    ddp = ddp_part(args.ddp_steps)
    print(f"\n4. data parallel, {ddp['steps']} steps at a global batch of 16: largest loss difference "
          f"{ddp['max_loss_difference']:.2e}; tokens/s one process {ddp['tokens_per_second_1']:.0f}, "
          f"two {ddp['tokens_per_second_2']:.0f}")

    load_after = os.getloadavg()[0]
    print(f"\nload average {load_before:.2f} before, {load_after:.2f} after")
    summary = {"benchmark": "challenges", "rag": rag, "target": {"factor": TARGET_FACTOR, "rag": TARGET_RAG},
               "meets_target": met, "bias": bias, "compression": table, "ddp": ddp,
               "load_avg_before": round(load_before, 2), "load_avg_after": round(load_after, 2)}
    print(json.dumps(summary))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
