"""Chapter 17's answer table: right answers written apart from the checks' references,
and the typical mistakes and dodges each check must refuse (see answers/__init__.py)."""
from __future__ import annotations

import math

import torch

import coursekit.detect as D
import coursekit.memorise as M
import coursekit.watermark as W
from answers import Case

# --- right answers (another coding than the checks' references) ---------------------------


def rate_at_fpr(null_scores, scores, fpr):
    ordered = torch.sort(null_scores, descending=True).values
    threshold = ordered[int(math.floor(fpr * len(ordered)))].item()
    return threshold, (scores > threshold).float().mean().item()


def rate_at_fpr_python(null_scores, scores, fpr):              # plain lists, a count
    ordered = sorted(null_scores.tolist())
    allowed = int(fpr * len(ordered))                 # negatives that may lie above the threshold
    threshold = ordered[len(ordered) - 1 - allowed]
    return threshold, sum(s > threshold for s in scores.tolist()) / len(scores)


def watermark_z(tokens, green, gamma, start):
    tokens = torch.as_tensor(tokens)
    V = green.shape[0]
    codes = torch.unique(tokens[start - 1:-1] * V + tokens[start:])       # distinct pairs
    hits = green[codes // V, codes % V].sum().item()
    n = len(codes)
    return (hits - gamma * n) / math.sqrt(n * gamma * (1 - gamma))


def watermark_z_loop(tokens, green, gamma, start):
    seen = set()
    for i in range(start, len(tokens)):
        seen.add((int(tokens[i - 1]), int(tokens[i])))
    n = len(seen)
    share = sum(bool(green[a, b]) for a, b in seen) / n
    return (share - gamma) * math.sqrt(n) / math.sqrt(gamma * (1 - gamma))


def exposure(scores, secret_index):
    rank = int((scores >= scores[secret_index]).sum())       # counts the secret itself
    return math.log2(len(scores)) - math.log2(rank)


def exposure_sorted(scores, secret_index):
    order = sorted(range(len(scores)), key=lambda i: (-float(scores[i]), i != secret_index))
    # ties against the secret: it goes after every candidate with the same score
    mine = float(scores[secret_index])
    rank = sum(1 for i in order if float(scores[i]) >= mine)
    return math.log(len(scores), 2) - math.log(rank, 2)


RIGHT = [
    Case("check_rate_at_fpr", rate_at_fpr, why="torch.sort"),
    Case("check_rate_at_fpr", rate_at_fpr_python, why="sorted list", kwargs={"seed": 5}),
    Case("check_watermark_z", watermark_z, why="unique pair codes"),
    Case("check_watermark_z", watermark_z_loop, why="a set of tuples", kwargs={"seed": 2}),
    Case("check_exposure", exposure, why="count at least as likely"),
    Case("check_exposure", exposure_sorted, why="sorted ranks", kwargs={"seed": 9}),
]


# --- wrong answers --------------------------------------------------------------------------

def _quantile(null_scores, scores, fpr):
    threshold = torch.quantile(null_scores.double(), 1 - fpr).item()
    return threshold, (scores > threshold).float().mean().item()


def _at_least(null_scores, scores, fpr):
    threshold, _ = rate_at_fpr(null_scores, scores, fpr)
    return threshold, (scores >= threshold).float().mean().item()


def _from_positives(null_scores, scores, fpr):
    return rate_at_fpr(scores, scores, fpr)


def _from_bottom(null_scores, scores, fpr):
    threshold = torch.sort(null_scores).values[int(fpr * len(null_scores))].item()
    return threshold, (scores > threshold).float().mean().item()


def _kth_largest(null_scores, scores, fpr):                  # floor(fpr N)-th: one too strict
    ordered = torch.sort(null_scores, descending=True).values
    threshold = ordered[max(int(fpr * len(ordered)) - 1, 0)].item()
    return threshold, (scores > threshold).float().mean().item()


def _rate_on_null(null_scores, scores, fpr):
    threshold, _ = rate_at_fpr(null_scores, scores, fpr)
    return threshold, (null_scores > threshold).float().mean().item()


def _sorts_null_in_place(null_scores, scores, fpr):
    null_scores.copy_(null_scores.sort(descending=True).values)
    return rate_at_fpr(null_scores, scores, fpr)


def _every_pair(tokens, green, gamma, start):
    hits = sum(bool(green[int(tokens[i - 1]), int(tokens[i])]) for i in range(start, len(tokens)))
    n = len(tokens) - start
    return (hits - gamma * n) / math.sqrt(n * gamma * (1 - gamma))


def _own_row(tokens, green, gamma, start):
    return watermark_z(tokens, green.T.contiguous(), gamma, start)


def _from_one(tokens, green, gamma, start):
    return watermark_z(tokens, green, gamma, 1)


def _no_one_minus(tokens, green, gamma, start):
    z = watermark_z(tokens, green, gamma, start)
    return z * math.sqrt(1 - gamma)


def _share(tokens, green, gamma, start):
    z = watermark_z(tokens, green, gamma, start)
    pairs = {(int(tokens[i - 1]), int(tokens[i])) for i in range(start, len(tokens))}
    n = len(pairs)
    return (z * math.sqrt(n * gamma * (1 - gamma)) + gamma * n) / n


def _package_z(tokens, green, gamma, start):
    wm = W.Watermark(green.shape[0], gamma=gamma, delta=1.0)
    wm.table = green
    return wm.z_score(tokens, start)


def _ties_for(scores, secret_index):
    rank = 1 + int((scores > scores[secret_index]).sum())
    return math.log2(len(scores)) - math.log2(rank)


def _zero_based(scores, secret_index):
    rank = int((scores > scores[secret_index]).sum())
    return math.log2(len(scores)) - math.log2(max(rank, 1e-12))


def _ascending(scores, secret_index):
    rank = int((scores <= scores[secret_index]).sum())
    return math.log2(len(scores)) - math.log2(rank)


def _natural(scores, secret_index):
    rank = int((scores >= scores[secret_index]).sum())
    return math.log(len(scores)) - math.log(rank)


def _sorts_in_place(scores, secret_index):
    mine = scores[secret_index].item()
    scores.copy_(scores.sort(descending=True).values)
    return math.log2(len(scores)) - math.log2(int((scores >= mine).sum()))


WRONG = [
    # rate_at_fpr
    Case("check_rate_at_fpr", _quantile, "torch.quantile interpolates", "interpolated quantile"),
    Case("check_rate_at_fpr", _at_least, "strictly above", "ties pass"),
    Case("check_rate_at_fpr", _from_positives, "calibrate it on the negatives", "threshold from the positives"),
    Case("check_rate_at_fpr", _from_bottom, "count from the largest", "counted from the bottom"),
    Case("check_rate_at_fpr", _kth_largest, "(floor(fpr N) + 1)-th largest", "one position too strict"),
    Case("check_rate_at_fpr", _rate_on_null, "measured on the positives", "rate of the negatives"),
    Case("check_rate_at_fpr", _sorts_null_in_place, "must not change", "sorts in place"),
    Case("check_rate_at_fpr", lambda n, s, f: D.rate_at_fpr(n, s, f), "coursekit.detect.rate_at_fpr",
         "the package's"),
    # watermark_z
    Case("check_watermark_z", _every_pair, "count each distinct pair once", "every pair counted"),
    Case("check_watermark_z", _own_row, "green[previous, token]", "the token's own row"),
    Case("check_watermark_z", _from_one, "from start on", "start ignored"),
    Case("check_watermark_z", _no_one_minus, "n gamma (1 - gamma)", "variance without (1 - gamma)"),
    Case("check_watermark_z", _share, "green share", "the share, not z"),
    Case("check_watermark_z", _package_z, "coursekit.watermark.Watermark.z_score", "the package's z"),
    # exposure
    Case("check_exposure", _ties_for, "ties count against", "ties in the secret's favour"),
    Case("check_exposure", _zero_based, "ranks start at 1", "zero-based rank"),
    Case("check_exposure", _ascending, "largest score", "lowest score ranks first"),
    Case("check_exposure", _natural, "base 2", "natural log"),
    Case("check_exposure", _sorts_in_place, "must not change", "sorts the scores in place"),
    Case("check_exposure", lambda s, k: M.exposure(s[k].item(), torch.cat([s[:k], s[k + 1:]])),
         "coursekit.memorise.exposure", "the package's exposure"),
]
