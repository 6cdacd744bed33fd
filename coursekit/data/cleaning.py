"""Chapter 08's cleaning pipeline, each step scored against the planted truth.

The steps, in the order :func:`clean_corpus` runs them:

1. **normalise**: Unicode NFC, HTML tags and entities out, whitespace collapsed per line;
2. **boilerplate**: drop lines that appear in many documents (menus, footers, banners);
3. **quality filter**: drop documents that do not look like prose (symbol soup, spam);
4. **exact de-duplication**: hash each normalised text, keep the first of each hash;
5. **near de-duplication**: MinHash signatures of word shingles (Broder, 1997), candidate
   pairs by locality-sensitive hashing in bands, kept when the estimated Jaccard
   similarity passes a threshold; the first document of each group is kept;
6. **personal data**: e-mail addresses and phone numbers replaced by ``[EMAIL]`` and
   ``[PHONE]``.

    corpus = make_web_corpus(WebTextConfig.preset("lesson"), seed=0)
    result = clean_corpus(corpus)
    result.scores["near_dedup"].precision, result.texts[:3]
"""
from __future__ import annotations

import hashlib
import html
import re
import unicodedata
import zlib
from dataclasses import dataclass, field

import torch

from coursekit.data.webtext import WebCorpus

# -- 1. normalisation --------------------------------------------------------------------------

_TAG = re.compile(r"<[^>]{0,200}>")
_SPACE = re.compile(r"[^\S\n]+")          # any whitespace except a newline


def normalise(text: str) -> str:
    """NFC Unicode, no HTML tags or entities, one space between words, no empty lines."""
    text = unicodedata.normalize("NFC", text)
    text = html.unescape(_TAG.sub("\n", text))
    lines = (_SPACE.sub(" ", line).strip() for line in text.split("\n"))
    return "\n".join(line for line in lines if line)


# -- 2. boilerplate: lines shared by many documents --------------------------------------------

def frequent_lines(texts: list[str], min_docs: int) -> set[str]:
    """The lines found in at least ``min_docs`` different documents."""
    counts: dict[str, int] = {}
    for text in texts:
        for line in set(text.split("\n")):
            counts[line] = counts.get(line, 0) + 1
    return {line for line, n in counts.items() if n >= min_docs}


def drop_lines(text: str, lines: set[str]) -> str:
    """``text`` without the lines in ``lines``."""
    return "\n".join(line for line in text.split("\n") if line not in lines)


# -- 3. quality filter -------------------------------------------------------------------------

def quality_ok(text: str, min_words: int = 8, min_alpha: float = 0.65,
               min_unique: float = 0.3, word_len: tuple[float, float] = (2.5, 10.0)) -> bool:
    """Heuristic prose test in the spirit of Gopher's rules (Rae et al., 2021).

    A document passes when it has at least ``min_words`` words, at least ``min_alpha``
    of its non-space characters are letters, at least ``min_unique`` of its words are
    distinct (keyword spam fails), and its mean word length is within ``word_len``.
    """
    words = text.split()
    if len(words) < min_words:
        return False
    chars = "".join(words)
    alpha = sum(c.isalpha() for c in chars) / len(chars)
    unique = len({w.lower() for w in words}) / len(words)
    mean_len = len(chars) / len(words)
    return alpha >= min_alpha and unique >= min_unique and word_len[0] <= mean_len <= word_len[1]


# -- 4. exact duplicates -----------------------------------------------------------------------

def exact_duplicates(texts: list[str]) -> dict[int, int]:
    """{index: index of the first text with the same SHA-256} for every repeat."""
    first: dict[str, int] = {}
    out: dict[int, int] = {}
    for i, text in enumerate(texts):
        key = hashlib.sha256(text.encode("utf-8")).hexdigest()
        if key in first:
            out[i] = first[key]
        else:
            first[key] = i
    return out


# -- 5. near duplicates: MinHash and LSH -------------------------------------------------------

PRIME = 2_147_483_647          # 2^31 - 1, the modulus of the hash family


def shingles(text: str, n: int = 3) -> set[str]:
    """The set of word ``n``-grams of a text (lower-cased), its "shingles"."""
    words = text.lower().split()
    if len(words) < n:
        return {" ".join(words)}
    return {" ".join(words[i:i + n]) for i in range(len(words) - n + 1)}


def jaccard(a: set, b: set) -> float:
    """|a & b| / |a | b| (1.0 for two empty sets)."""
    return len(a & b) / len(a | b) if a or b else 1.0


def hash_params(n_hashes: int, seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    """Random (a, b) of the hash family h(x) = (a x + b) mod PRIME: two (n_hashes,) int64."""
    g = torch.Generator().manual_seed(seed)
    a = torch.randint(1, PRIME, (n_hashes,), generator=g, dtype=torch.int64)
    b = torch.randint(0, PRIME, (n_hashes,), generator=g, dtype=torch.int64)
    return a, b


def minhash(shingle_set: set[str], a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """MinHash signature: for each of K hash functions, the smallest hash of any shingle.

    Args:
        shingle_set: the document's shingles (strings).
        a, b: (K,) parameters of the hash family, from :func:`hash_params`.
    Returns:
        (K,) int64. Two signatures agree in a position with probability equal to the
        Jaccard similarity of the two shingle sets.
    """
    x = torch.tensor([zlib.crc32(s.encode("utf-8")) % PRIME for s in sorted(shingle_set)],
                     dtype=torch.int64)                                   # (S,)
    h = (a[:, None] * x[None, :] + b[:, None]) % PRIME                     # (K, S)
    return h.min(dim=1).values                                             # (K,)


def lsh_candidates(signatures: torch.Tensor, bands: int) -> set[tuple[int, int]]:
    """Pairs (i, j), i < j, whose signatures agree on every row of at least one band.

    Args:
        signatures: (N, K) MinHash signatures, K divisible by ``bands``.
        bands: b, the number of bands of r = K / b rows each.
    """
    n, k = signatures.shape
    if k % bands:
        raise ValueError(f"{k} hashes cannot be cut into {bands} equal bands")
    banded = signatures.view(n, bands, k // bands)                        # (N, b, r)
    pairs: set[tuple[int, int]] = set()
    for band in range(bands):
        buckets: dict[tuple, list[int]] = {}
        for i, row in enumerate(banded[:, band].tolist()):
            buckets.setdefault(tuple(row), []).append(i)
        for members in buckets.values():
            for x in range(len(members)):
                for y in range(x + 1, len(members)):
                    pairs.add((members[x], members[y]))
    return pairs


def lsh_candidate_probability(s, r: int, b: int):
    """Chance that two documents of Jaccard similarity ``s`` become a candidate pair:
    1 - (1 - s^r)^b with b bands of r rows."""
    return 1 - (1 - s ** r) ** b


def near_duplicates(texts: list[str], n_hashes: int = 128, bands: int = 32,
                    threshold: float = 0.6, shingle: int = 3, seed: int = 0) -> dict[int, int]:
    """{index: index of the first document of its group} for every near duplicate.

    Steps: 1. shingles, 2. MinHash signatures, 3. LSH candidate pairs, 4. keep the pairs
    whose estimated Jaccard (share of equal signature entries) is at least ``threshold``,
    5. groups = connected components; every member but the first is a duplicate.
    """
    a, b = hash_params(n_hashes, seed)
    sigs = torch.stack([minhash(shingles(t, shingle), a, b) for t in texts]) \
        if texts else torch.zeros(0, n_hashes, dtype=torch.int64)         # (N, K)
    parent = list(range(len(texts)))

    def root(i: int) -> int:
        while parent[i] != i:
            parent[i] = parent[parent[i]]
            i = parent[i]
        return i

    for i, j in sorted(lsh_candidates(sigs, bands)):
        if (sigs[i] == sigs[j]).double().mean().item() >= threshold:
            ri, rj = root(i), root(j)
            parent[max(ri, rj)] = min(ri, rj)           # the smaller index stays the root
    return {i: root(i) for i in range(len(texts)) if root(i) != i}


# -- 6. personal data --------------------------------------------------------------------------

EMAIL = re.compile(r"[\w.+-]+@[\w-]+(?:\.[\w-]+)+")
PHONE = re.compile(r"(?<![\w-])(?:\+\d{1,3}[ ]?)?(?:\(\d{3}\)[ ]?|\d{3,4}[ -.])\d{3}[ -.]\d{4}(?![\w-])"
                   r"|\+44 \d{2} \d{4} \d{4}")


def find_pii(text: str) -> list[tuple[str, str]]:
    """[(kind, matched string)] for every e-mail address and phone number, in order."""
    found = [(m.start(), "email", m.group()) for m in EMAIL.finditer(text)]
    found += [(m.start(), "phone", m.group()) for m in PHONE.finditer(text)]
    return [(k, v) for _, k, v in sorted(found)]


def scrub_pii(text: str) -> str:
    """Replace e-mail addresses by ``[EMAIL]`` and phone numbers by ``[PHONE]``."""
    return PHONE.sub("[PHONE]", EMAIL.sub("[EMAIL]", text))


# -- scoring and the whole pipeline ------------------------------------------------------------

@dataclass
class StepScore:
    """How a step did against the planted truth."""

    flagged: int      # what the step removed (documents, lines or strings)
    correct: int      # of those, how many were planted defects
    planted: int      # how many planted defects it could have found

    @property
    def precision(self) -> float:
        return self.correct / self.flagged if self.flagged else 1.0

    @property
    def recall(self) -> float:
        return self.correct / self.planted if self.planted else 1.0

    def __str__(self) -> str:
        return (f"flagged {self.flagged:4d}, planted {self.planted:4d}, "
                f"precision {self.precision:.3f}, recall {self.recall:.3f}")


def score(flagged, planted) -> StepScore:
    """Precision and recall of a collection of flagged items against the planted ones
    (multisets: an item flagged twice counts twice)."""
    flagged, planted = list(flagged), list(planted)
    left = {}
    for p in planted:
        left[p] = left.get(p, 0) + 1
    correct = 0
    for f in flagged:
        if left.get(f, 0) > 0:
            left[f] -= 1
            correct += 1
    return StepScore(len(flagged), correct, len(planted))


@dataclass
class CleaningConfig:
    """Knobs of :func:`clean_corpus`."""

    boilerplate_min_docs: int = 20   # a line in this many documents is boilerplate
    n_hashes: int = 128              # MinHash signature length K
    bands: int = 32                  # LSH bands b (r = K / b rows each)
    near_threshold: float = 0.6      # estimated Jaccard to call a pair near duplicates
    shingle: int = 3                 # words per shingle
    seed: int = 0                    # seed of the hash family


@dataclass
class CleanResult:
    """What the pipeline kept and how each step scored."""

    kept: list[int]                           # ids of the documents kept, in order
    texts: list[str]                          # their cleaned, scrubbed texts
    scores: dict[str, StepScore] = field(default_factory=dict)

    def table(self) -> str:
        return "\n".join(f"{name:>12}: {s}" for name, s in self.scores.items())


def pii_in_output(text: str, truth_values: list[tuple[str, str]]) -> list[tuple[str, str]]:
    """The planted (kind, value) items still readable in ``text``."""
    return [(k, v) for k, v in truth_values if v in text]


def clean_corpus(corpus: WebCorpus, config: CleaningConfig | None = None) -> CleanResult:
    """Run the six steps on ``corpus`` and score each against ``corpus.truth``."""
    cfg = config or CleaningConfig()
    truth = corpus.truth
    ids = [d.id for d in corpus.docs]
    # 1. normalise
    texts = [normalise(d.text) for d in corpus.docs]
    # 2. boilerplate lines
    common = frequent_lines(texts, cfg.boilerplate_min_docs)
    removed_lines = [(i, line) for i, t in zip(ids, texts) for line in set(t.split("\n"))
                     if line in common]
    scores = {"boilerplate": score(removed_lines, truth.boilerplate)}
    texts = [drop_lines(t, common) for t in texts]
    # 3. quality filter
    ok = [quality_ok(t) for t in texts]
    scores["quality"] = score([i for i, good in zip(ids, ok) if not good], truth.garbled)
    ids = [i for i, good in zip(ids, ok) if good]
    texts = [t for t, good in zip(texts, ok) if good]
    # 4. exact duplicates
    dup = exact_duplicates(texts)
    scores["exact_dedup"] = score([ids[k] for k in dup],
                                  [i for i in truth.exact_of if i in set(ids)])
    ids = [i for k, i in enumerate(ids) if k not in dup]
    texts = [t for k, t in enumerate(texts) if k not in dup]
    # 5. near duplicates
    near = near_duplicates(texts, cfg.n_hashes, cfg.bands, cfg.near_threshold, cfg.shingle,
                           cfg.seed)
    kept_set = set(ids)
    scores["near_dedup"] = score([ids[k] for k in near],
                                 [i for i in truth.near_of if i in kept_set])
    ids = [i for k, i in enumerate(ids) if k not in near]
    texts = [t for k, t in enumerate(texts) if k not in near]
    # 6. personal data: what was replaced vs what was planted in the kept documents
    kept_set = set(ids)
    planted = [(i, k, v) for i, k, v in truth.pii if i in kept_set]
    found = [(i, k, v) for i, t in zip(ids, texts) for k, v in find_pii(t)]
    scores["pii"] = score(found, planted)
    texts = [scrub_pii(t) for t in texts]
    return CleanResult(ids, texts, scores)
