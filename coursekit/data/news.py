"""A second text style about the same story world: short town news reports (chapter 10).

The stories of ``coursekit.data.stories`` are told in the past tense, one character at a
time. These reports use the same names, professions and towns, and the same facts (each
town's landmark and what it is known for), but another register: a headline in capitals,
the present tense, numbers written as words, reported speech, and a weather line. A model trained on the
stories has met every character and every word of the world, yet not this way of writing,
which is what fine-tuning has to teach it.

Every report is written with the characters of the story corpus only (no digits, no
colon, none of the capitals the stories never use), so the story model's character
tokenizer can read it: ``news_corpus`` checks this.

    text = news_corpus(n_reports=300, seed=0)          # reports split by blank lines
"""
from __future__ import annotations

import random

from coursekit.data.stories import TOWNS, StoryWorld

NUMBERS = ["two", "three", "four", "five", "six", "seven", "eight", "nine", "ten", "twelve",
           "twenty", "thirty", "forty", "fifty", "a hundred"]
DAYS = ["Monday", "Tuesday", "Thursday", "Friday", "Saturday", "Sunday"]
EVENTS = [("fair", "stalls"), ("market", "stalls"), ("race", "runners"), ("concert", "singers"),
          ("festival", "lanterns"), ("boat show", "boats")]
GOODS = ["jars of honey", "loaves of bread", "baskets of apples", "rounds of cheese", "bales of wool",
         "crates of fish", "blue pots", "kites", "lanterns", "bunches of roses"]
WEATHER = ["rain in the morning, sun by noon", "strong winds from the sea", "a cold and clear night",
           "fog on the river until late", "warm sun all day", "light snow on the hills"]
QUOTES = ["it is the best day of the year", "everyone should come and see it",
          "the town has never seen so many people", "the whole town helped", "next year it will be bigger",
          "the town can be proud"]


def _person(world: StoryWorld, rng: random.Random) -> tuple[str, str]:
    """A name and a profession, drawn as the stories draw their characters (``StoryWorld.story``)."""
    character = world.story(rng)
    return character.name, character.profession


def news_report(world: StoryWorld, rng: random.Random) -> str:
    """One report of four to six sentences, drawn with ``rng``."""
    town = rng.choice(TOWNS)
    name, profession = _person(world, rng)
    other, other_prof = _person(world, rng)
    event, crowd = rng.choice(EVENTS)
    day = rng.choice(DAYS)
    n1, n2 = rng.choice(NUMBERS), rng.choice(NUMBERS)
    landmark = world.landmark[town]
    headline = rng.choice([f"REPORT FROM {town}.", f"THE {town} POST.", f"{town} BRIEF."])
    lead = rng.choice([
        f"The {event} opens on {day} beside {landmark}, with {n1} {crowd}.",
        f"This week the town of {town} holds its {event}, and {n1} {crowd} are ready.",
        f"On {day} the {event} returns to {town}, next to {landmark}.",
    ])
    trade = rng.choice([
        f"The {profession} {name} sells {n2} {rng.choice(GOODS)} before noon.",
        f"Local {profession} {name} reports {n2} {rng.choice(GOODS)} sold in one hour.",
        f"{name} the {profession} brings {n2} {rng.choice(GOODS)} to the square.",
    ])
    known = f"The town is known for {world.known_for[town]}, and prices are fair this year."
    quote = f"{other}, the {other_prof}, says that {rng.choice(QUOTES)}."
    weather = f"Forecast for {day}, {rng.choice(WEATHER)}."
    body = [lead, trade]
    if rng.random() < 0.6:
        body.append(known)
    body.append(quote)
    return " ".join([headline] + body + [weather])


def news_corpus(n_reports: int = 300, seed: int = 0, world: StoryWorld | None = None,
                alphabet: str | None = None) -> str:
    """``n_reports`` news reports joined by blank lines.

    Args:
        n_reports: how many reports.
        seed: seed of the draw (the world's facts come from ``world``).
        world: the story world (default ``StoryWorld()``, the one the story model knows).
        alphabet: if given, every character of the corpus must be in it (ValueError if not):
            pass the story model's vocabulary to be sure it can read the reports.
    Returns:
        One string; about 320 characters per report.
    """
    if not isinstance(n_reports, int) or n_reports <= 0:
        raise ValueError(f"n_reports must be a positive int, got {n_reports!r}")
    world = world or StoryWorld()
    rng = random.Random(seed)
    text = "\n\n".join(news_report(world, rng) for _ in range(n_reports)) + "\n"
    if alphabet is not None:
        missing = sorted(set(text) - set(alphabet))
        if missing:
            raise ValueError(f"characters {missing} are not in the alphabet given")
    return text
