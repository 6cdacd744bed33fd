"""Chapter 08 (data): the planted crawl and its cleaning pipeline, byte-level BPE against
HuggingFace ``tokenizers``, augmentation, the tokeniser explorer, the lesson's inline
code against the package, and the exercises' checks on the solutions and the stubs."""
from __future__ import annotations

import random

import nbformat
import pytest
import torch

import coursekit as ck
from coursekit.authoring.release import make_exercise
from coursekit.checks import CheckFailure, ch08
from coursekit.data import cleaning as CL
from coursekit.data.webtext import BOILERPLATE, WebTextConfig, make_web_corpus
from coursekit.tokenizers import bpe as B
from nbtools import exec_answers, exec_tagged_cells, notebook

CHECKS = {"check_update_pair_counts": "update_pair_counts",
          "check_lsh_probability": "lsh_probability", "check_scrub_pii": "scrub_pii"}
TEXT = ck.data.story_corpus(n_stories=400, seed=1)


@pytest.fixture(scope="module")
def corpus():
    return make_web_corpus(WebTextConfig.preset("lesson"), seed=3)


# -- the crawl and the cleaning pipeline -----------------------------------------------------

def test_corpus_is_deterministic_and_records_its_defects(corpus):
    again = make_web_corpus(WebTextConfig.preset("lesson"), seed=3)
    assert [d.text for d in again.docs] == [d.text for d in corpus.docs]
    t = corpus.truth
    assert len(t.exact_of) == len(t.near_of) == 72 and len(t.garbled) == 36
    assert all(o < c for c, o in {**t.exact_of, **t.near_of}.items())    # copies come later
    norm = [CL.normalise(d.text) for d in corpus.docs]
    for i, _, value in t.pii:
        assert value in norm[i]                  # raw text may hold odd whitespace inside it
    for c, o in t.exact_of.items():              # equal once normalised, boilerplate aside
        assert CL.drop_lines(norm[c], set(BOILERPLATE)) == CL.drop_lines(norm[o], set(BOILERPLATE))


@pytest.mark.parametrize("seed", [0, 5])
def test_every_cleaning_step_finds_the_planted_defects(seed):
    result = CL.clean_corpus(make_web_corpus(WebTextConfig.preset("lesson"), seed=seed))
    for name, s in result.scores.items():
        assert s.precision >= 0.95 and s.recall >= 0.95, (name, str(s))
    assert all("[EMAIL]" in t or "@" not in t for t in result.texts)


def test_minhash_estimates_jaccard():
    rng = random.Random(0)
    a, b = CL.hash_params(256, seed=1)
    for _ in range(20):
        base = {f"w{rng.randrange(400)}" for _ in range(120)}
        other = set(rng.sample(sorted(base), rng.randint(10, len(base)))) | {f"x{k}" for k in range(rng.randint(0, 80))}
        est = (CL.minhash(base, a, b) == CL.minhash(other, a, b)).double().mean().item()
        assert abs(est - CL.jaccard(base, other)) < 0.1          # sd <= 0.5 / 16 = 0.031


def test_lsh_probability_matches_simulation():
    g = torch.Generator().manual_seed(0)
    s, r, bands = 0.5, 4, 8
    agree = torch.rand(20000, bands, r, generator=g) < s             # (trials, b, r)
    rate = agree.all(-1).any(-1).double().mean().item()
    assert abs(rate - CL.lsh_candidate_probability(s, r, bands)) < 0.015


def test_scrubber_keeps_numbers_that_are_not_personal_data():
    text = "Posted on 2024-05-17 at 18:30, order 4412-99, £12.50, call (555) 201-3344 or a@b.example.com"
    assert CL.scrub_pii(text) == "Posted on 2024-05-17 at 18:30, order 4412-99, £12.50, call [PHONE] or [EMAIL]"


# -- byte-level BPE ---------------------------------------------------------------------------

def test_incremental_counts_equal_a_full_recount_after_every_merge():
    words = B.piece_counts(TEXT[:20000])
    counts = B.pair_counts(words)
    for k in range(60):
        pair = max(counts, key=lambda p: (counts[p], -p[0], -p[1]))
        new = {}
        for w, f in words.items():
            nw = B.update_pair_counts(counts, w, f, pair, 256 + k) if pair in zip(w, w[1:]) else w
            new[nw] = new.get(nw, 0) + f
        words = new
        assert counts == B.pair_counts(words), f"merge {k}"
    assert B.train_bpe(TEXT[:20000], 256 + 60)[:1] == [max(B.pair_counts(B.piece_counts(TEXT[:20000])).items(), key=lambda kv: (kv[1], -kv[0][0], -kv[0][1]))[0]]


def _random_unicode(rng: random.Random, n: int) -> str:
    pools = ["abcXYZ ", "éüñßçø", "日本語中文字", "한국어", "🙂🪁👩‍👩‍👧🏳️‍🌈", "\n\t  ", "Ωπ∑√", "'s're_-!?"]
    out = []
    for _ in range(n):
        if rng.random() < 0.05:
            out.append(chr(rng.randint(0x20, 0x2FFFF)))
        else:
            out.append(rng.choice(rng.choice(pools)))
    return "".join(c for c in out if not 0xD800 <= ord(c) <= 0xDFFF)


@pytest.mark.parametrize("seed", range(5))
def test_bpe_round_trip_is_exact_on_any_unicode(seed):
    tok = B.BPETokenizer.train(TEXT[:50000], 400)
    text = _random_unicode(random.Random(seed), 300)
    ids = tok.encode(text)
    assert ids.dtype == torch.int64 and ids.dim() == 1 and int(ids.max()) < tok.vocab_size
    assert tok.decode(ids) == text
    assert "".join(B.pretokenize(text)) == text


def test_bpe_state_round_trips_through_the_registry():
    tok = B.BPETokenizer.train(TEXT[:30000], 300)
    again = ck.data.tokenizer_from_state(tok.state())
    assert isinstance(again, B.BPETokenizer) and again.merges == tok.merges
    assert isinstance(tok, ck.data.Tokenizer)
    assert torch.equal(again.encode("Once upon a time"), tok.encode("Once upon a time"))


@pytest.mark.parametrize("vocab_size", [300, 600, 1000])
def test_bpe_compresses_like_the_tokenizers_library(vocab_size):
    pytest.importorskip("tokenizers")
    from coursekit.tokenizers.reference import library_token_count, train_library_bpe
    train, held = TEXT[:100000], TEXT[100000:130000]
    ours = len(B.BPETokenizer.train(train, vocab_size).encode(held))
    lib = library_token_count(train_library_bpe(train, vocab_size), held)
    assert abs(ours - lib) / lib < 0.02, (ours, lib)


def test_truncated_tokenizer_equals_a_shorter_training_run():
    long = B.BPETokenizer.train(TEXT[:30000], 500)
    assert long.truncated(350).merges == B.train_bpe(TEXT[:30000], 350)


# -- augmentation -----------------------------------------------------------------------------

def test_augment_keeps_shape_range_and_is_identity_without_change():
    from coursekit.data.augment import AugmentConfig, augment, standardise
    x = ck.data.load_digits(seed=0).x_train[:16]
    g = torch.Generator().manual_seed(0)
    y = augment(x, AugmentConfig(), g)
    assert y.shape == x.shape and y.min() >= 0 and y.max() <= 1 and not torch.equal(x, y)
    same = augment(x, AugmentConfig(max_shift=0, max_degrees=0, noise_std=0), g)
    assert torch.allclose(same, x, atol=1e-5)
    z = standardise(x, x.mean(dim=(0, 2, 3)), x.std(dim=(0, 2, 3)))
    assert abs(z.mean().item()) < 1e-5 and abs(z.std().item() - 1) < 1e-4


# -- the lesson's inline code against the package ---------------------------------------------

@pytest.fixture(scope="module")
def lesson():
    return exec_tagged_cells(notebook("notebooks", "08"))


def test_inline_cleaning_equals_the_package(lesson):
    corpus = make_web_corpus(WebTextConfig.preset("tiny"), seed=2)
    raw = [d.text for d in corpus.docs]
    texts = [lesson["normalise"](t) for t in raw]
    assert texts == [CL.normalise(t) for t in raw]
    assert lesson["frequent_lines"](texts, 5) == CL.frequent_lines(texts, 5)
    assert [lesson["quality_ok"](t) for t in texts] == [CL.quality_ok(t) for t in texts]
    assert lesson["exact_duplicates"](texts) == CL.exact_duplicates(texts)
    assert lesson["near_duplicates"](texts) == CL.near_duplicates(texts)
    a, b = CL.hash_params(64, seed=3)
    s = CL.shingles(texts[0])
    assert torch.equal(lesson["minhash"](s, a, b), CL.minhash(s, a, b))


def test_inline_bpe_equals_the_package(lesson):
    text = TEXT[:15000]
    merges = lesson["train_bpe_naive"](text, 256 + 80)
    assert merges == B.train_bpe(text, 256 + 80)
    tok = B.BPETokenizer(merges)
    sample = "Zoë's kite 🪁 flew over Millbrook's bridge."
    assert lesson["encode"](sample, merges) == tok.encode(sample).tolist()
    assert lesson["decode"](lesson["encode"](sample, merges), merges) == sample


def test_inline_augment_equals_the_package(lesson):
    from coursekit.data.augment import AugmentConfig, augment
    x = ck.data.load_digits(seed=0).x_train[:8]
    ours = lesson["augment"](x, generator=torch.Generator().manual_seed(4))
    theirs = augment(x, AugmentConfig(), torch.Generator().manual_seed(4))
    assert torch.allclose(ours, theirs, atol=1e-6)


# -- the tokeniser explorer -------------------------------------------------------------------

def test_tokenizer_explorer_responds_to_typing():
    from coursekit.data import CharTokenizer
    from coursekit.tokenizers import WordTokenizer
    toks = {"char": CharTokenizer(TEXT), "word": WordTokenizer(TEXT, 300),
            "bpe": B.BPETokenizer.train(TEXT[:30000], 400)}
    w = ck.widgets.tokenizer_explorer(toks, text="the cat")
    assert w.pieces == [(c, toks["char"].stoi[c]) for c in "the cat"]
    draws = w.n_draws
    w.controls["text"].value = "Zoë 🪁"                  # typing redraws
    assert w.n_draws == draws + 1 and w.n_unknown == 2 and "unk" in w.html
    w.set(tokenizer="bpe")
    assert w.ids == toks["bpe"].encode("Zoë 🪁").tolist() and w.n_unknown == 0
    assert "tokens per byte" in w.html
    w.set(tokenizer="word", text="Once upon a time")
    assert [p for p, _ in w.pieces] == ["Once", " ", "upon", " ", "a", " ", "time"]
    with pytest.raises(KeyError):
        w.set(colour="red")


# -- the exercises ----------------------------------------------------------------------------

def _run(nb) -> dict:
    return exec_answers(nb, {"__name__": "__exercise__"}, run_first=2)


@pytest.fixture(scope="module")
def solution_nb():
    return nbformat.read(notebook("solutions", "08"), as_version=4)


def test_every_check_has_a_check_cell_and_the_reverse(solution_nb):
    import inspect
    graded = {c.metadata["nbgrader"]["grade_id"] for c in solution_nb.cells
              if c.metadata.get("nbgrader", {}).get("grade") and c.cell_type == "code"}
    public = {n for n, f in inspect.getmembers(ch08, inspect.isfunction) if n.startswith("check_")}
    assert graded == public == set(CHECKS)


@pytest.mark.parametrize("check", CHECKS)
def test_solutions_pass_and_released_stubs_fail(solution_nb, check, capsys):
    solution = _run(solution_nb)
    getattr(ch08, check)(solution[CHECKS[check]])
    assert f"PASSED {check}" in capsys.readouterr().out
    stubs = _run(make_exercise(solution_nb, "08_data.ipynb"))
    with pytest.raises(CheckFailure, match="not written yet"):
        getattr(ch08, check)(stubs[CHECKS[check]])
