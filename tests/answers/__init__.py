"""Answer tables for the chapter checks: right answers, the stub, and wrong answers.

One module per chapter (``answers/ch02.py`` for ``coursekit.checks.ch02``) defines

- ``RIGHT``: a list of :class:`Case`, at least one per check, each an answer written
  independently of the check's own reference (another formula, another library call),
  that the check must pass;
- ``WRONG``: a list of :class:`Case`, the typical mistakes and the dodges (a banned call,
  an alias of it, an argument ignored, a shared noise draw, ...), each of which the check
  must refuse with a message that contains ``expect``.

``tests/test_check_contract.py`` runs every table against every check.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any


@dataclass
class Case:
    """One answer handed to a check.

    Attributes:
        check: the check's name, ``"check_relu"``.
        answer: what the learner passes: one object, or a tuple for a check that takes
            several (``check_split_heads(split_heads, merge_heads)``).
        expect: for a wrong answer, a phrase its failure message must contain.
        why: a few words on what the answer gets wrong (the test's id).
        kwargs: keyword arguments for the check (``{"seed": 7}``).
    """

    check: str
    answer: Any
    expect: str = ""
    why: str = ""
    kwargs: dict = field(default_factory=dict)

    def args(self) -> tuple:
        return self.answer if isinstance(self.answer, tuple) else (self.answer,)

    @property
    def id(self) -> str:
        return f"{self.check}-{self.why or 'answer'}".replace(" ", "_")
