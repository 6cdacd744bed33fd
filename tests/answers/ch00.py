"""Answer table of chapter 00 (warm-up): right answers written another way than the
check's references, and the typical mistakes and dodges each check must refuse."""
from __future__ import annotations

import torch
from torch.nn import functional as F

from answers import Case

# -- right answers, each by another route than coursekit.checks.ch00's references ------------


def checkerboard_parity(h, w):
    i, j = torch.meshgrid(torch.arange(h), torch.arange(w), indexing="ij")
    return (1 - (i + j) % 2).to(torch.float32)


def standardise_by_hand(x):
    n = x.shape[0]
    mean = x.sum(0) / n
    var = ((x - mean) ** 2).sum(0) / n
    return (x - mean) / (var.sqrt() + 1e-8)


def one_hot_compare(labels, n_classes):
    return (labels[:, None] == torch.arange(n_classes)[None, :]).float()


def accuracy_count(logits, labels):
    right = sum(int(row.argmax()) == int(y) for row, y in zip(logits, labels))
    return right / len(labels)


# -- lies: a tensor subclass whose comparisons always say "equal" ------------------------------


class Agreeable(torch.Tensor):
    """A tensor subclass whose equal / allclose always answer True."""

    @classmethod
    def __torch_function__(cls, func, types, args=(), kwargs=None):
        if func in (torch.equal, torch.allclose, torch.Tensor.equal, torch.Tensor.allclose):
            return True
        return super().__torch_function__(func, types, args, kwargs or {})


def checkerboard_lying(h, w):
    return torch.zeros(h, w).as_subclass(Agreeable)


def one_hot_lying(labels, n_classes):
    return torch.zeros(len(labels), n_classes).as_subclass(Agreeable)


# -- typical mistakes --------------------------------------------------------------------------


def checkerboard_swapped(h, w):
    return 1 - checkerboard_parity(h, w)


def checkerboard_long(h, w):
    return checkerboard_parity(h, w).long()


def checkerboard_transposed(h, w):
    return checkerboard_parity(w, h)


def checkerboard_list(h, w):
    return checkerboard_parity(h, w).tolist()


def checkerboard_square(h, w):   # only right when h == w: the learner used h twice
    return checkerboard_parity(h, h)


def standardise_rows(x):
    return (x - x.mean(1, keepdim=True)) / (x.std(1, correction=0, keepdim=True) + 1e-8)


def standardise_unbiased(x):
    return (x - x.mean(0)) / (x.std(0) + 1e-8)


def standardise_no_centre(x):
    return x / (x.std(0, correction=0) + 1e-8)


def standardise_no_eps(x):
    return (x - x.mean(0)) / x.std(0, correction=0)


def standardise_in_place(x):
    x -= x.mean(0)
    x /= x.std(0, correction=0) + 1e-8
    return x


def standardise_batch_norm(x):
    return F.batch_norm(x, None, None, training=True, eps=0.0)


def standardise_batch_norm_getattr(x):
    norm = getattr(F, "batch" + "_norm")
    return norm(x, None, None, training=True, eps=0.0)


def one_hot_builtin(labels, n_classes):
    return F.one_hot(labels, n_classes).float()


_oh = F.one_hot


def one_hot_alias(labels, n_classes):
    return _oh(labels, n_classes).float()


def one_hot_max_width(labels, n_classes):
    return one_hot_compare(labels, int(labels.max()) + 1)


def one_hot_transposed(labels, n_classes):
    return one_hot_compare(labels, n_classes).T


def one_hot_ones(labels, n_classes):
    return torch.ones(len(labels), n_classes)


def one_hot_bool(labels, n_classes):
    return labels[:, None] == torch.arange(n_classes)[None, :]


def accuracy_count_right(logits, labels):
    return (logits.argmax(1) == labels).sum()


def accuracy_percent(logits, labels):
    return 100 * (logits.argmax(1) == labels).float().mean()


def accuracy_per_row(logits, labels):
    return (logits.argmax(1) == labels).float()


def accuracy_argmin(logits, labels):
    return (logits.argmin(1) == labels).float().mean()


def accuracy_wrong_dim(logits, labels):   # the argmax over the batch, not over the classes
    return (logits.argmax(0)[: len(labels)] == labels[: logits.shape[1]]).float().mean()


C = Case
RIGHT = [
    C("check_checkerboard", checkerboard_parity, why="meshgrid parity"),
    C("check_checkerboard", checkerboard_parity, why="meshgrid parity, seed 6", kwargs={"seed": 6}),
    C("check_standardise", standardise_by_hand, why="sums by hand"),
    C("check_standardise", standardise_by_hand, why="sums by hand, seed 2", kwargs={"seed": 2}),
    C("check_one_hot", one_hot_compare, why="comparison"),
    C("check_one_hot", one_hot_compare, why="comparison, seed 8", kwargs={"seed": 8}),
    C("check_accuracy", accuracy_count, why="counting in Python"),
    C("check_accuracy", accuracy_count, why="counting in Python, seed 4", kwargs={"seed": 4}),
]

WRONG = [
    C("check_checkerboard", checkerboard_swapped, "colours are swapped", "colours swapped"),
    C("check_checkerboard", checkerboard_long, "should hold floats", "integers"),
    C("check_checkerboard", checkerboard_transposed, "wrong shape", "h and w swapped"),
    C("check_checkerboard", checkerboard_square, "wrong shape", "w ignored"),
    C("check_checkerboard", lambda h, w: torch.ones(h, w), "i + j", "all ones"),
    C("check_checkerboard", checkerboard_list, "torch.Tensor", "a list"),
    C("check_checkerboard", checkerboard_lying, "i + j", "tensor subclass that lies"),
    C("check_checkerboard", checkerboard_parity(2, 3), "should be a function", "a tensor"),

    C("check_standardise", standardise_rows, "each row", "rows not columns"),
    C("check_standardise", standardise_unbiased, "correction=0", "N - 1"),
    C("check_standardise", standardise_no_centre, "subtract each column's mean", "not centred"),
    C("check_standardise", standardise_no_eps, "NaN", "no epsilon"),
    C("check_standardise", standardise_in_place, "in place", "changes x"),
    C("check_standardise", lambda x: x.std(0), "wrong shape", "returns the stds"),
    C("check_standardise", standardise_batch_norm, "torch.nn.functional.batch_norm",
      "batch norm"),
    C("check_standardise", standardise_batch_norm_getattr, "batch_norm", "batch norm by getattr"),

    C("check_one_hot", one_hot_builtin, "torch.nn.functional.one_hot", "built-in one_hot"),
    C("check_one_hot", one_hot_alias, "torch.nn.functional.one_hot", "built-in by alias"),
    C("check_one_hot", one_hot_max_width, "labels.max() + 1", "width from the labels"),
    C("check_one_hot", one_hot_transposed, "transposed", "classes as rows"),
    C("check_one_hot", one_hot_ones, "single 1", "all ones"),
    C("check_one_hot", one_hot_bool, "should hold floats", "booleans"),
    C("check_one_hot", one_hot_lying, "single 1", "tensor subclass that lies"),

    C("check_accuracy", accuracy_count_right, "number of right answers", "count"),
    C("check_accuracy", accuracy_percent, "not a percentage", "percentage"),
    C("check_accuracy", accuracy_per_row, "one number", "per-row values"),
    C("check_accuracy", accuracy_argmin, "largest logit", "argmin"),
    C("check_accuracy", accuracy_wrong_dim, "largest logit", "argmax over the batch"),
]
