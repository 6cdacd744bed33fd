"""Benchmark of chapter 08: from-scratch byte-level BPE vs HuggingFace ``tokenizers``, and
the cleaning pipeline's de-duplication against the planted truth.

    python benchmarks/tokenizer.py                 # vocabularies 512, 1024, 2048
    python benchmarks/tokenizer.py --vocab 1000

Both tokenizers are trained on the same cleaned crawl ("bench" preset, 90% of the kept
documents) to the same vocabulary size and scored on the other 10%: tokens per byte,
training seconds, encoding seconds. Then ``clean_corpus`` runs on a fresh crawl and the
precision and recall of each step are printed. Readable lines first, JSON last.
"""
from __future__ import annotations

import argparse
import json
import os
import time

import torch

from machine import describe  # benchmarks/machine.py, next to this script

from coursekit.data.cleaning import clean_corpus
from coursekit.data.webtext import WebTextConfig, make_web_corpus
from coursekit.tokenizers import BPETokenizer
from coursekit.tokenizers.reference import library_token_count, train_library_bpe


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--vocab", type=int, nargs="*", default=[512, 1024, 2048])
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    load_before = describe(torch.device("cpu"))

    t0 = time.perf_counter()
    corpus = make_web_corpus(WebTextConfig.preset("bench"), seed=args.seed)
    result = clean_corpus(corpus)
    clean_s = time.perf_counter() - t0
    print(f"crawl: {len(corpus)} documents; cleaning took {clean_s:.1f} s")
    for name, s in result.scores.items():
        print(f"{name:>12}: {s}")
    split = int(0.9 * len(result.texts))
    train, test = "\n\n".join(result.texts[:split]), "\n\n".join(result.texts[split:])
    n_bytes = len(test.encode("utf-8"))
    print(f"tokenizer training text {len(train.encode()):,} bytes, test text {n_bytes:,} bytes")
    rows = []
    for vocab in args.vocab:
        t0 = time.perf_counter()
        ours = BPETokenizer.train(train, vocab)
        t_ours = time.perf_counter() - t0
        t0 = time.perf_counter()
        n_ours = len(ours.encode(test))
        e_ours = time.perf_counter() - t0
        t0 = time.perf_counter()
        lib = train_library_bpe(train, vocab)
        t_lib = time.perf_counter() - t0
        t0 = time.perf_counter()
        n_lib = library_token_count(lib, test)
        e_lib = time.perf_counter() - t0
        assert ours.decode(ours.encode(test)) == test
        row = {"vocab": vocab, "ours_vocab": ours.vocab_size, "library_vocab": lib.get_vocab_size(),
               "ours_tokens_per_byte": round(n_ours / n_bytes, 5),
               "library_tokens_per_byte": round(n_lib / n_bytes, 5),
               "relative_difference": round((n_ours - n_lib) / n_lib, 5),
               "ours_train_s": round(t_ours, 3), "library_train_s": round(t_lib, 3),
               "ours_encode_s": round(e_ours, 3), "library_encode_s": round(e_lib, 3)}
        rows.append(row)
        print(f"vocab {vocab}: tokens per byte ours {row['ours_tokens_per_byte']:.4f} vs library "
              f"{row['library_tokens_per_byte']:.4f} ({100 * row['relative_difference']:+.2f}%); "
              f"training {t_ours:.2f} s vs {t_lib:.2f} s; encoding {e_ours:.2f} s vs {e_lib:.2f} s")
    load_after = os.getloadavg()[0]
    print(f"load average after: {load_after:.2f}")
    figures = {
        "seed": args.seed, "n_documents": len(corpus), "cleaning_s": round(clean_s, 2),
        "load_average_before": round(load_before, 2), "load_average_after": round(load_after, 2),
        "scores": {n: {"precision": round(s.precision, 4), "recall": round(s.recall, 4),
                       "flagged": s.flagged, "planted": s.planted}
                   for n, s in result.scores.items()},
        "bpe": rows,
    }
    print(json.dumps(figures))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
