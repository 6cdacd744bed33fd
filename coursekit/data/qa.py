"""Question-and-answer pairs built from the story world's facts (chapter 15's chat fine-tune).

The world of ``coursekit.data.stories`` fixes two facts per town: what it is known for and
which landmark it has. The stories state them in sentences such as "Ashford is known for its
honey." Here each fact becomes a question and its answer, in the stories' own words::

    Q: What is Ashford known for?
    A: Ashford is known for its honey.

``split_towns`` divides the towns in two: a model is fine-tuned on the pairs of one half and
asked the questions of the other half, whose facts it saw only inside stories.
"""
from __future__ import annotations

import random
from dataclasses import dataclass

from coursekit.data.stories import TOWNS, StoryWorld

KINDS = ("known_for", "landmark")
"""The two facts each town has."""


@dataclass(frozen=True)
class QA:
    """One question about one town, and the answer the world gives."""

    town: str       # the town asked about
    kind: str       # "known_for" or "landmark"
    question: str   # "What is Ashford known for?"
    answer: str     # "Ashford is known for its honey."
    value: str      # the fact itself: "its honey"

    @property
    def prompt(self) -> str:
        """What a model is given: the question, then "A:" (it writes the answer)."""
        return f"Q: {self.question}\nA:"

    @property
    def opening(self) -> str:
        """The fact's opening in the stories' own words, for asking without the chat format:
        "Ashford is known for" or "In Ashford there is" (the model continues with the value)."""
        return f"{self.town} is known for" if self.kind == "known_for" else f"In {self.town} there is"

    @property
    def text(self) -> str:
        """The pair as training text, one line each, ending with a newline."""
        return f"Q: {self.question}\nA: {self.answer}\n"


def qa_pairs(world: StoryWorld | None = None, towns: list[str] | None = None) -> list[QA]:
    """Both questions about each town of ``towns`` (default all), in town order."""
    world = world or StoryWorld()
    towns = list(TOWNS) if towns is None else list(towns)
    unknown = [t for t in towns if t not in world.known_for]
    if unknown:
        raise ValueError(f"not towns of the story world: {unknown}; the towns are {TOWNS}")
    out = []
    for town in towns:
        value = world.known_for[town]
        out.append(QA(town, "known_for", f"What is {town} known for?", f"{town} is known for {value}.", value))
        value = world.landmark[town]
        out.append(QA(town, "landmark", f"What is there in {town}?", f"In {town} there is {value}.", value))
    return out


def split_towns(n_train: int = 6, seed: int = 0) -> tuple[list[str], list[str]]:
    """The towns cut at random in two: ``n_train`` for fine-tuning, the rest held out."""
    if not 0 < n_train < len(TOWNS):
        raise ValueError(f"n_train must be between 1 and {len(TOWNS) - 1}, got {n_train}")
    towns = list(TOWNS)
    random.Random(seed).shuffle(towns)
    return sorted(towns[:n_train], key=TOWNS.index), sorted(towns[n_train:], key=TOWNS.index)


def qa_corpus(pairs: list[QA], repeats: int = 40, seed: int = 0, stories: list[str] | None = None) -> str:
    """The pairs as one training text: ``repeats`` passes, each in a new random order; with
    ``stories``, one story (cycling through them) after each pair, so that training on the
    format keeps reminding the model of the stories it knew."""
    if not pairs or repeats < 1:
        raise ValueError("qa_corpus needs at least one pair and one repeat")
    rng = random.Random(seed)
    parts, k = [], 0
    for _ in range(repeats):
        order = list(pairs)
        rng.shuffle(order)
        for p in order:
            parts.append(p.text)
            if stories:
                parts.append(stories[k % len(stories)].strip("\n") + "\n")
                k += 1
    return "".join(parts)


def answer_correct(completion: str, pair: QA) -> bool:
    """True if the first line of ``completion`` (what follows "A:") states the pair's fact,
    and names no town but the one asked about ("Redwater is known for its wool", asked about
    Millbrook's wool, gives the fact to the wrong town: wrong)."""
    line = completion.split("\n", 1)[0]
    others = [t for t in TOWNS if t != pair.town and t in line]
    return pair.value in line and not others
