"""Checks for exercises/08_data.ipynb, one ``check_<exercise>`` per exercise.

The references are written here, independently of ``coursekit.tokenizers.bpe`` and
``coursekit.data.cleaning`` (the tests compare both with HuggingFace ``tokenizers`` and
with the planted truth). Random cases are drawn from ``seed`` (the solutions' hidden
tests pass ``ck.checks.hidden_seed(...)``) with a private ``random.Random``, so a check
never changes the learner's random numbers. When an answer is wrong, a check tries the
usual mistakes on the same case and names the one the answer reproduces. ``BANS`` lists
what each answer may not use: coursekit's own version of the exercise.
"""
from __future__ import annotations

import random

import torch

from coursekit.checks.assertions import (as_tensor, call, expect_close, fail, guarded, passed,
                                         require_callable, scan_answer)
from coursekit.checks.forbidden import ban

BANS = {
    "check_update_pair_counts": [
        ban("coursekit.tokenizers.bpe.update_pair_counts", "coursekit.tokenizers.bpe.merge_word",
            "coursekit.tokenizers.bpe.pair_counts", "coursekit.tokenizers.bpe.train_bpe",
            reason="the exercise asks you to write the incremental update; coursekit's BPE "
                   "functions are the answer itself"),
    ],
    "check_lsh_probability": [
        ban("coursekit.data.cleaning.lsh_candidate_probability",
            reason="the exercise asks you to derive the banding curve; coursekit's "
                   "lsh_candidate_probability is the answer itself"),
    ],
    "check_scrub_pii": [
        ban("coursekit.data.cleaning.scrub_pii", "coursekit.data.cleaning.find_pii",
            reason="the exercise asks you to write the patterns; coursekit's scrubber is the "
                   "answer itself"),
    ],
}


# -- 1. the incremental pair-count update ----------------------------------------------------

def _merge(word: tuple, pair: tuple, new_id: int) -> tuple:
    """Left-to-right, non-overlapping merge of ``pair`` (the reference)."""
    out, i = [], 0
    while i < len(word):
        if tuple(word[i:i + 2]) == pair:
            out.append(new_id)
            i += 2
        else:
            out.append(word[i])
            i += 1
    return tuple(out)


def _recount(words: dict) -> dict:
    counts: dict = {}
    for w, f in words.items():
        for p in zip(w, w[1:]):
            counts[p] = counts.get(p, 0) + f
    return counts


def _merge_right_to_left(word, pair, new_id):
    return tuple(reversed(_merge(tuple(reversed(word)), (pair[1], pair[0]), new_id)))


def _update_variants(counts, word, freq, pair, new_id) -> list[tuple[dict, str]]:
    """What the usual mistakes leave in ``counts`` (a copy of the counts before)."""
    new = _merge(word, pair, new_id)
    out = []

    def apply(weight, keep_zero=False, w2=new):
        c = dict(counts)
        for p in zip(word, word[1:]):
            c[p] = c.get(p, 0) - weight
        for p in zip(w2, w2[1:]):
            c[p] = c.get(p, 0) + weight
        return c if keep_zero else {k: v for k, v in c.items() if v}

    out.append((apply(1), "weight every change by the word's frequency freq: a word that "
                          "occurs freq times holds each of its pairs freq times"))
    out.append((apply(freq, keep_zero=True), "delete a pair from counts when its count "
                                             "falls to 0, so it can never be picked again"))
    only = dict(counts)
    n = sum(1 for _ in range(len(word) - len(new)))
    only[pair] = only.get(pair, 0) - n * freq
    out.append(({k: v for k, v in only.items() if v}, "the neighbours change too: merging "
                "(a, b) in x a b y removes (x, a) and (b, y) and adds (x, new_id) and (new_id, y)"))
    out.append((apply(freq, w2=_merge_right_to_left(word, pair, new_id)),
                "merge scanning from the left, the way BPE applies a merge"))
    return out


def _check_update_pair_counts(update_pair_counts, seed: int = 0) -> None:
    """``update_pair_counts(counts, word, freq, pair, new_id)`` -> the merged word, with
    ``counts`` updated in place for that word (changed pairs only, zero counts deleted).

    Checked: fixed words (pair at both ends, twice, overlapping runs such as (5, 5, 5),
    absent); counts weighted by ``freq``; zero counts deleted; and a random BPE run of
    30 merges on a small corpus drawn from ``seed``, where after every merge the counts
    must equal a full recount.
    """
    name = "check_update_pair_counts"
    bans = BANS[name]
    require_callable(name, update_pair_counts, "update_pair_counts", n_args=5)
    scan_answer(name, lambda *a: update_pair_counts(*a), bans, "update_pair_counts")

    def run(case, counts, word, freq, pair, new_id, words=None):
        before = dict(counts)
        got = call(name, update_pair_counts, counts, word, freq, pair, new_id,
                   what=f"update_pair_counts(counts, {word}, {freq}, {pair}, {new_id})", bans=())
        expected_word = _merge(tuple(word), pair, new_id)
        if not isinstance(got, (tuple, list)) or [int(x) for x in got] != list(expected_word):
            hint = "return the word with every occurrence of pair replaced by new_id"
            if isinstance(got, (tuple, list)) and tuple(got) == _merge_right_to_left(tuple(word), pair, new_id):
                hint = "merge scanning from the left, the way BPE applies a merge"
            elif got is None:
                hint = "return the merged word (a tuple or list of ids)"
            fail(name, f"{case}: the merged word", str(expected_word), repr(got), hint)
        expected = dict(before)
        for p in zip(word, word[1:]):
            expected[p] -= freq
        for p in zip(expected_word, expected_word[1:]):
            expected[p] = expected.get(p, 0) + freq
        expected = {k: v for k, v in expected.items() if v}
        if counts != expected:
            hint = "subtract freq for each pair the merge destroyed, add freq for each pair it created"
            if counts == before:
                hint = "update counts in place (counts[p] = ...); the check reads the dict it passed you"
            for variant, why in _update_variants(before, tuple(word), freq, pair, new_id):
                if counts == variant:
                    hint = why
                    break
            diff = sorted(set(counts.items()) ^ set(expected.items()))[:6]
            fail(name, f"{case}: counts after the merge (first differences: {diff})",
                 _short_counts(expected), _short_counts(counts), hint)

    # 1. fixed words, each in a corpus of itself plus a neighbour word
    fixed = [("pair at both ends of (1, 2, 3, 1, 2), freq 3", (1, 2, 3, 1, 2), 3, (1, 2), 9),
             ("pair in the middle of (4, 1, 2, 4), freq 2", (4, 1, 2, 4), 2, (1, 2), 7),
             ("overlapping run (5, 5, 5), pair (5, 5), freq 1", (5, 5, 5), 1, (5, 5), 6),
             ("run of four (5, 5, 5, 5), pair (5, 5), freq 4", (5, 5, 5, 5), 4, (5, 5), 6),
             ("pair absent from (3, 4, 3), freq 5", (3, 4, 3), 5, (1, 2), 8)]
    for case, word, freq, pair, new_id in fixed:
        words = {word: freq, (2, 3, 1, 2, 4): 2}
        run(case, _recount(words), word, freq, pair, new_id)

    # 2. a random BPE run: after every merge, counts == a full recount
    rng = random.Random(seed + 8)
    words: dict = {}
    while len(words) < 40:
        words[tuple(rng.randrange(6) for _ in range(rng.randint(2, 9)))] = rng.randint(1, 6)
    counts = _recount(words)
    for k in range(30):
        if not counts:
            break
        pair = max(counts, key=lambda p: (counts[p], -p[0], -p[1]))
        new_id = 6 + k
        new_words: dict = {}
        for w, f in words.items():
            if any(q == pair for q in zip(w, w[1:])):
                run(f"random corpus (seed {seed}), merge {k + 1} of {pair} -> {new_id}, word {w}",
                    counts, w, f, pair, new_id)
            nw = _merge(w, pair, new_id)
            new_words[nw] = new_words.get(nw, 0) + f
        words = new_words
        if counts != _recount(words):
            fail(name, f"random corpus (seed {seed}), after merge {k + 1}: counts vs a full recount",
                 _short_counts(_recount(words)), _short_counts(counts),
                 "update only the pairs of the word you were given, in place")
    passed(name, "fixed words (ends, overlapping runs, absent pair), frequency weights, zero "
                 "counts deleted, 30 merges of a random corpus equal to full recounts")


def _short_counts(counts: dict) -> str:
    items = sorted(counts.items())
    text = "{" + ", ".join(f"{k}: {v}" for k, v in items[:12]) + (", ..." if len(items) > 12 else "") + "}"
    return f"{len(items)} pairs {text}"


# -- 2. the LSH banding curve ----------------------------------------------------------------

def _check_lsh_probability(lsh_probability, seed: int = 0) -> None:
    """``lsh_probability(s, r, b)``: chance that two documents of Jaccard similarity ``s``
    share at least one band, with ``b`` bands of ``r`` rows: a tensor shaped like ``s``."""
    name = "check_lsh_probability"
    bans = BANS[name]
    require_callable(name, lsh_probability, "lsh_probability", n_args=3)
    scan_answer(name, lambda *a: lsh_probability(*a), bans, "lsh_probability")
    g = torch.Generator().manual_seed(seed + 3)
    rng = random.Random(seed + 3)
    cases = [("s = [0, 1], r = 4, b = 32", torch.tensor([0.0, 1.0], dtype=torch.float64), 4, 32),
             ("s = 0.1 .. 0.9, r = 4, b = 32", torch.linspace(0.1, 0.9, 9, dtype=torch.float64), 4, 32),
             ("s = 0.1 .. 0.9, r = 8, b = 4", torch.linspace(0.1, 0.9, 9, dtype=torch.float64), 8, 4),
             ("s = 0.1 .. 0.9, r = 2, b = 10", torch.linspace(0.1, 0.9, 9, dtype=torch.float64), 2, 10)]
    for k in range(3):
        r, b = rng.randint(1, 9), rng.randint(1, 40)
        cases.append((f"random s of shape (3, 4), r = {r}, b = {b} (seed {seed})",
                      torch.rand(3, 4, generator=g, dtype=torch.float64), r, b))
    for case, s, r, b in cases:
        got = call(name, lsh_probability, s.clone(), r, b, what=f"lsh_probability(s, {r}, {b})",
                   bans=())
        expected = 1 - (1 - s ** r) ** b
        got_t = as_tensor(name, got, f"lsh_probability(s, {r}, {b})", shape=tuple(s.shape))
        if not torch.allclose(got_t.double(), expected, atol=1e-6):
            hint = ("a band matches when all its r rows agree (s^r); the pair is a candidate "
                    "unless every one of the b bands misses")
            for value, why in [(1 - (1 - s ** b) ** r, "r is the number of rows per band and b the "
                                "number of bands: you swapped them"),
                               ((1 - s ** r) ** b, "that is the chance that no band matches; "
                                "the candidate probability is its complement"),
                               (s ** (r * b), "that is the chance that all r * b rows agree; a "
                                "pair needs only one whole band to agree"),
                               (1 - (1 - s) ** (r * b), "the rows of a band must all agree at "
                                "once: a band matches with probability s^r"),
                               ((b * s ** r).clamp(max=1), "the bands are not exclusive events: "
                                "use 1 minus the chance that every band misses")]:
                if value.shape == got_t.shape and torch.allclose(got_t.double(), value, atol=1e-6):
                    hint = why
                    break
            expect_close(name, case, got_t, expected, atol=1e-6, hint=hint, what="the probabilities")
    passed(name, "s = 0 and 1, four (r, b) settings, random shapes and settings")


# -- 3. personal data -------------------------------------------------------------------------

_FIXED_PII = [
    ("an e-mail address first.last@domain", "Write to anna.smith@example.com today.",
     "Write to [EMAIL] today."),
    ("an e-mail address with a plus and digits", "Mail lena_42+news@mail.example.org, please.",
     "Mail [EMAIL], please."),
    ("an e-mail address at the end of a sentence", "Questions go to office@ashford.example.gov.",
     "Questions go to [EMAIL]."),
    ("a phone number +44 20 7946 0123", "Call me on +44 20 7946 0123 tonight.",
     "Call me on [PHONE] tonight."),
    ("a phone number +1 555 201 3344", "Call +1 555 201 3344.", "Call [PHONE]."),
    ("a phone number (555) 201-3344", "Ring (555) 201-3344 after six.", "Ring [PHONE] after six."),
    ("a phone number 555-201-3344", "Text 555-201-3344 or write.", "Text [PHONE] or write."),
    ("a phone number 0161 496 0123", "Call 0161 496 0123.", "Call [PHONE]."),
    ("an e-mail address and a phone number", "Write to max@example.net or call 555-201-3344.",
     "Write to [EMAIL] or call [PHONE]."),
    ("a date, a time and a year (not personal data)",
     "Posted on 2024-05-17 at 18:30. It was a gift from 1998.",
     "Posted on 2024-05-17 at 18:30. It was a gift from 1998."),
    ("a price, an order number and sizes (not personal data)",
     "A reward of £12.50. My order number was 4412-99. It is 23 cm long and weighs 130 g.",
     "A reward of £12.50. My order number was 4412-99. It is 23 cm long and weighs 130 g."),
    ("a closing time range (not personal data)",
     "Closed on 2025-03-15 from 9:00 to 17:00 for repairs.",
     "Closed on 2025-03-15 from 9:00 to 17:00 for repairs."),
]


def _pii_hint(case: str, text: str, got: str) -> str:
    if "not personal data" in case:
        return ("only e-mail addresses and phone numbers go: dates, times, prices and order "
                "numbers have fewer digits or other separators, so anchor your pattern on the "
                "phone formats of the exercise")
    if "<" in got or "{" in got or "***" in got:
        return "use exactly the placeholders [EMAIL] and [PHONE]"
    if "[EMAIL]" not in got and "@" in text and "e-mail" in case:
        return "an e-mail address is name characters (letters, digits, . _ + -), an @, and a domain with dots"
    return ("phone numbers come in five formats (see the exercise); write one alternative per "
            "format, and keep the text around them unchanged")


def _check_scrub_pii(scrub_pii, seed: int = 0) -> None:
    """``scrub_pii(text) -> str``: e-mail addresses become ``[EMAIL]``, phone numbers
    ``[PHONE]``, everything else unchanged.

    Checked: one sentence per format and per kind of number that is not personal data,
    then every document of a small crawl drawn from ``seed`` (its planted addresses and
    numbers are known), which must come back exactly as the truth says.
    """
    name = "check_scrub_pii"
    bans = BANS[name]
    require_callable(name, scrub_pii, "scrub_pii", n_args=1)
    scan_answer(name, scrub_pii, bans, "scrub_pii")
    for case, text, expected in _FIXED_PII:
        got = call(name, scrub_pii, text, what=f"scrub_pii({text!r})", bans=())
        if not isinstance(got, str):
            fail(name, f"scrub_pii({text!r}) should return a string", "a str",
                 type(got).__name__, "return the scrubbed text, not the matches")
        if got != expected:
            fail(name, f"{case}: scrub_pii({text!r})", repr(expected), repr(got),
                 _pii_hint(case, text, got))
    from coursekit.data.cleaning import normalise
    from coursekit.data.webtext import WebTextConfig, make_web_corpus
    corpus = make_web_corpus(WebTextConfig.preset("tiny"), seed=seed)
    planted: dict[int, list] = {}
    for i, kind, value in corpus.truth.pii:
        planted.setdefault(i, []).append((kind, value))
    n_items = 0
    for doc in corpus.docs:
        if doc.kind == "garbled":
            continue
        text = normalise(doc.text)
        expected = text
        for kind, value in sorted(planted.get(doc.id, []), key=lambda kv: -len(kv[1])):
            expected = expected.replace(value, "[EMAIL]" if kind == "email" else "[PHONE]")
            n_items += 1
        got = call(name, scrub_pii, text, what="scrub_pii(document)", bans=())
        if got != expected:
            missed = [v for _, v in planted.get(doc.id, []) if isinstance(got, str) and v in got]
            hint = (f"still readable: {missed}" if missed else
                    "something that is not an e-mail address or a phone number was changed")
            hint += "; " + _pii_hint("" if missed else "not personal data", text, str(got))
            fail(name, f"document {doc.id} of the crawl (seed {seed}, a {doc.kind})",
                 repr(expected), repr(got), hint)
    passed(name, f"{len(_FIXED_PII)} fixed sentences and {n_items} planted items in "
                 f"{len(corpus.docs)} crawled documents (seed {seed}), all exact")


def _guarded(impl, name):
    def check(answer, seed: int = 0) -> None:
        # the code is scanned once, then every call runs under one run-time guard
        # (guarding each of the hundreds of calls separately would take seconds)
        require_callable(name, answer, name[len("check_"):], n_args=None)
        scan_answer(name, answer, BANS[name], name[len("check_"):])
        with guarded(name, BANS[name], name[len("check_"):]):
            impl(answer, seed)
    check.__name__ = check.__qualname__ = name
    check.__doc__ = impl.__doc__
    return check


check_update_pair_counts = _guarded(_check_update_pair_counts, "check_update_pair_counts")
check_lsh_probability = _guarded(_check_lsh_probability, "check_lsh_probability")
check_scrub_pii = _guarded(_check_scrub_pii, "check_scrub_pii")
