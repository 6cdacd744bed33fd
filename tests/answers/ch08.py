"""Answer table of chapter 08 (data): right answers written without coursekit's
references, and the typical mistakes and dodges each check must refuse."""
from __future__ import annotations

import re
from collections import Counter

import torch

from answers import Case
from coursekit.data import cleaning as CL
from coursekit.tokenizers import bpe as BPE

C = Case


# -- 1. update_pair_counts -------------------------------------------------------------------

def _merge(word, pair, new_id):
    out, i = [], 0
    while i < len(word):
        if i + 1 < len(word) and (word[i], word[i + 1]) == tuple(pair):
            out.append(new_id)
            i += 2
        else:
            out.append(word[i])
            i += 1
    return out


def update_right(counts, word, freq, pair, new_id):
    """Neighbour by neighbour, as in a linked-list implementation."""
    new = _merge(list(word), pair, new_id)
    change = Counter(zip(new, new[1:]))
    change.subtract(Counter(zip(word, word[1:])))
    for p, d in change.items():
        if d:
            counts[p] = counts.get(p, 0) + d * freq
            if counts[p] == 0:
                del counts[p]
    return tuple(new)


def update_subtract_all(counts, word, freq, pair, new_id):
    """Subtract every pair of the old word, add every pair of the new one."""
    new = _merge(list(word), pair, new_id)
    for p in zip(word, word[1:]):
        counts[p] -= freq
    for p in zip(new, new[1:]):
        counts[p] = counts.get(p, 0) + freq
    for p in [p for p, c in counts.items() if c == 0]:
        del counts[p]
    return new


def update_no_freq(counts, word, freq, pair, new_id):
    return update_right(counts, word, 1, pair, new_id)


def update_keep_zero(counts, word, freq, pair, new_id):
    new = _merge(list(word), pair, new_id)
    for p in zip(word, word[1:]):
        counts[p] -= freq
    for p in zip(new, new[1:]):
        counts[p] = counts.get(p, 0) + freq
    return new


def update_only_pair(counts, word, freq, pair, new_id):
    new = _merge(list(word), pair, new_id)
    counts[tuple(pair)] -= freq * (len(word) - len(new))
    if counts[tuple(pair)] == 0:
        del counts[tuple(pair)]
    return new


def update_copy(counts, word, freq, pair, new_id):
    counts = dict(counts)                      # updates a copy: the caller sees nothing
    return update_right(counts, word, freq, pair, new_id)


def update_right_to_left(counts, word, freq, pair, new_id):
    rev = _merge(list(reversed(word)), (pair[1], pair[0]), new_id)
    new = list(reversed(rev))
    change = Counter(zip(new, new[1:]))
    change.subtract(Counter(zip(word, word[1:])))
    for p, d in change.items():
        if d:
            counts[p] = counts.get(p, 0) + d * freq
            if counts[p] == 0:
                del counts[p]
    return new


def update_package(counts, word, freq, pair, new_id):
    return BPE.update_pair_counts(counts, word, freq, pair, new_id)


def update_package_merge(counts, word, freq, pair, new_id):
    new = BPE.merge_word(word, pair, new_id)
    return update_right(counts, word, freq, pair, new_id) and new


# -- 2. lsh_probability ---------------------------------------------------------------------

def lsh_right(s, r, b):
    miss_band = 1 - torch.pow(s, r)
    return 1 - torch.exp(b * torch.log(miss_band.clamp_min(1e-300)))


def lsh_loop(s, r, b):
    p_none = torch.ones_like(s)
    for _ in range(b):
        p_none = p_none * (1 - s ** r)
    return 1 - p_none


def lsh_package(s, r, b):
    return CL.lsh_candidate_probability(s, r, b)


# -- 3. scrub_pii ---------------------------------------------------------------------------

_EMAIL = r"[A-Za-z0-9._+-]+@[A-Za-z0-9-]+(\.[A-Za-z0-9-]+)+"
_PHONES = [r"\+44 \d\d \d{4} \d{4}", r"\+1 \d{3} \d{3} \d{4}", r"\(\d{3}\) \d{3}-\d{4}",
           r"\b\d{3}-\d{3}-\d{4}\b", r"\b0\d{3} \d{3} \d{4}\b"]


def scrub_right(text):
    text = re.sub(_EMAIL, "[EMAIL]", text)
    for p in _PHONES:
        text = re.sub(p, "[PHONE]", text)
    return text


def scrub_email_only(text):
    return re.sub(_EMAIL, "[EMAIL]", text)


def scrub_one_phone_format(text):
    return re.sub(r"\d{3}-\d{3}-\d{4}", "[PHONE]", scrub_email_only(text))


def scrub_greedy_digits(text):
    return re.sub(r"\+?\(?\d[\d ()-]{8,}\d", "[PHONE]", scrub_email_only(text))


def scrub_angle_placeholders(text):
    return scrub_right(text).replace("[EMAIL]", "<EMAIL>").replace("[PHONE]", "<PHONE>")


def scrub_matches(text):
    return re.findall(_EMAIL, text)


def scrub_package(text):
    return CL.scrub_pii(text)


def scrub_package_find(text):
    for _, value in CL.find_pii(text):
        text = text.replace(value, "[PHONE]" if "@" not in value else "[EMAIL]")
    return text


RIGHT = [
    C("check_update_pair_counts", update_right, why="counter of changes"),
    C("check_update_pair_counts", update_subtract_all, why="subtract all then add, seed 3",
      kwargs={"seed": 3}),
    C("check_lsh_probability", lsh_right, why="exp-log form"),
    C("check_lsh_probability", lsh_loop, why="product over bands, seed 5", kwargs={"seed": 5}),
    C("check_scrub_pii", scrub_right, why="one pattern per format"),
    C("check_scrub_pii", scrub_right, why="one pattern per format, seed 4", kwargs={"seed": 4}),
]

WRONG = [
    C("check_update_pair_counts", update_no_freq, "frequency", "freq ignored"),
    C("check_update_pair_counts", update_keep_zero, "falls to 0", "zero counts kept"),
    C("check_update_pair_counts", update_only_pair, "neighbours", "only the merged pair"),
    C("check_update_pair_counts", update_copy, "in place", "updates a copy"),
    C("check_update_pair_counts", update_right_to_left, "from the left", "right to left"),
    C("check_update_pair_counts", lambda counts, word, freq, pair, new_id: None,
      "return the merged word", "returns None"),
    C("check_update_pair_counts", update_package, "coursekit.tokenizers.bpe.update_pair_counts",
      "package"),
    C("check_update_pair_counts", update_package_merge, "merge_word", "package merge_word"),

    C("check_lsh_probability", lambda s, r, b: 1 - (1 - s ** b) ** r, "swapped", "r and b swapped"),
    C("check_lsh_probability", lambda s, r, b: (1 - s ** r) ** b, "complement", "no outer 1 -"),
    C("check_lsh_probability", lambda s, r, b: s ** (r * b), "one whole band", "all rows agree"),
    C("check_lsh_probability", lambda s, r, b: 1 - (1 - s) ** (r * b), "s^r", "rows independent"),
    C("check_lsh_probability", lambda s, r, b: (b * s ** r).clamp(max=1), "not exclusive",
      "union bound"),
    C("check_lsh_probability", lambda s, r, b: (1 - (1 - s ** r) ** b).tolist(), "torch.Tensor",
      "returns a list"),
    C("check_lsh_probability", lsh_package, "coursekit.data.cleaning.lsh_candidate_probability",
      "package"),

    C("check_scrub_pii", scrub_email_only, "five formats", "no phone numbers"),
    C("check_scrub_pii", scrub_one_phone_format, "five formats", "one phone format"),
    C("check_scrub_pii", scrub_greedy_digits, "not personal data", "dates taken for phones"),
    C("check_scrub_pii", scrub_angle_placeholders, "placeholders", "wrong placeholders"),
    C("check_scrub_pii", scrub_matches, "return the scrubbed text", "returns the matches"),
    C("check_scrub_pii", scrub_package, "coursekit.data.cleaning.scrub_pii", "package"),
    C("check_scrub_pii", scrub_package_find, "find_pii", "package find_pii"),
]
