"""A generated corpus of short stories with a known structure.

Every story has a character (name, pronoun, profession, home town), a problem, a helper,
and an ending that is happy or sad. The world behind the stories holds fixed facts
(each town's landmark and what it is known for), so later chapters can measure what a
model learned: whether it repeats the facts (hallucination, chapter 16), how strongly it
ties professions to pronouns (bias, chapter 16; the ``bias`` knob sets how skewed the
data is), and whether it prefers happy endings (preferences, chapter 11).

    world = StoryWorld(seed=0)
    text = story_corpus(n_stories=2000, seed=0)        # one string, stories split by blank lines
    story = world.story(random.Random(1)); story.text, story.ending
"""
from __future__ import annotations

import random
from dataclasses import dataclass, field

NAMES_F = ["Anna", "Maya", "Lucy", "Clara", "Ruth", "Nora", "Ella", "Iris", "Rosa", "Mia",
           "Lena", "Ada", "Zoe", "Tess", "June", "Amara", "Priya", "Sofia", "Hana", "Grace"]
NAMES_M = ["Tom", "Sam", "Leo", "Ben", "Omar", "Felix", "Hugo", "Max", "Jack", "Ivan",
           "Noah", "Luca", "Kofi", "Ravi", "Theo", "Finn", "Arjun", "Mateo", "Kenji", "Paul"]
# profession -> the pronoun the data over-represents (the bias chapter 16 measures)
PROFESSIONS = {
    "nurse": "she", "teacher": "she", "baker": "she", "librarian": "she", "dancer": "she",
    "tailor": "she", "florist": "she", "engineer": "he", "pilot": "he", "farmer": "he",
    "carpenter": "he", "fisherman": "he", "doctor": "he", "builder": "he", "sailor": "he",
    "painter": "she",
}
TOWNS = ["Millbrook", "Ashford", "Redwater", "Stonehill", "Brightvale", "Oakmere",
         "Elmstead", "Fernley", "Greywick", "Lindholm", "Marshton", "Northcombe"]
LANDMARKS = ["an old stone bridge", "a tall clock tower", "a red lighthouse", "a windmill",
             "a round library", "a great oak tree", "a glass market hall", "a ruined castle",
             "a white chapel", "a copper fountain", "a long pier", "an iron gate"]
SPECIALTIES = ["its cheese", "its apples", "its blue pottery", "its honey", "its wool",
               "its river fish", "its bells", "its roses", "its bread", "its boats",
               "its lanterns", "its kites"]
TRAITS = ["kind", "clever", "quiet", "brave", "cheerful", "careful", "curious", "patient"]
OBJECTS = ["key", "hat", "map", "letter", "ring", "scarf", "lantern", "book", "coin", "kite"]
TIMES = ["morning", "evening", "rainy afternoon", "cold night", "sunny day", "windy morning"]
PLACES_LOST = ["near the market", "by the river", "on the way home", "in the garden",
               "at the station", "behind the school"]


@dataclass
class Story:
    """One story and the facts it was built from."""

    text: str
    name: str
    pronoun: str         # "she" or "he"
    profession: str
    town: str
    helper: str
    ending: str          # "happy" or "sad"


@dataclass
class StoryWorld:
    """The fixed facts of the story world, drawn from ``seed``.

    Args:
        seed: seed of the world (which town has which landmark and specialty).
        bias: probability that a character's pronoun follows its profession's
            stereotype in ``PROFESSIONS``; 0.5 is balanced, 1.0 always stereotyped.
        happy_share: probability of a happy ending.
    """

    seed: int = 0
    bias: float = 0.8
    happy_share: float = 0.6
    landmark: dict[str, str] = field(init=False)
    known_for: dict[str, str] = field(init=False)

    def __post_init__(self):
        if not 0.0 <= self.bias <= 1.0 or not 0.0 <= self.happy_share <= 1.0:
            raise ValueError("bias and happy_share are probabilities: use values in [0, 1]")
        rng = random.Random(self.seed)
        self.landmark = dict(zip(TOWNS, rng.sample(LANDMARKS, len(TOWNS))))
        self.known_for = dict(zip(TOWNS, rng.sample(SPECIALTIES, len(TOWNS))))

    def facts(self) -> list[str]:
        """Every fact of the world as one plain sentence."""
        out = []
        for town in TOWNS:
            out.append(f"{town} is known for {self.known_for[town]}.")
            out.append(f"In {town} there is {self.landmark[town]}.")
        return out

    def story(self, rng: random.Random) -> Story:
        """Draw one story with ``rng`` (a ``random.Random``)."""
        profession = rng.choice(sorted(PROFESSIONS))
        stereotype = PROFESSIONS[profession]
        other = "he" if stereotype == "she" else "she"
        pronoun = stereotype if rng.random() < self.bias else other
        name = rng.choice(NAMES_F if pronoun == "she" else NAMES_M)
        poss = "her" if pronoun == "she" else "his"
        town = rng.choice(TOWNS)
        trait = rng.choice(TRAITS)
        obj = rng.choice(OBJECTS)
        helper_prof = rng.choice(sorted(PROFESSIONS))
        helper_pron = PROFESSIONS[helper_prof] if rng.random() < self.bias else \
            ("he" if PROFESSIONS[helper_prof] == "she" else "she")
        helper = rng.choice(NAMES_F if helper_pron == "she" else NAMES_M)
        while helper == name:
            helper = rng.choice(NAMES_F if helper_pron == "she" else NAMES_M)
        happy = rng.random() < self.happy_share
        a = "an" if profession[0] in "aeiou" else "a"
        at = "an" if trait[0] in "aeiou" else "a"
        ha = "an" if helper_prof[0] in "aeiou" else "a"
        P = pronoun.capitalize()

        opening = rng.choice([
            f"{name} was {at} {trait} {profession} who lived in {town}.",
            f"In {town} there lived {at} {trait} {profession} called {name}.",
            f"Once upon a time, {a} {profession} named {name} lived in {town}.",
        ])
        fact = rng.choice([
            f"{town} is known for {self.known_for[town]}.",
            f"Everyone knows that {town} is known for {self.known_for[town]}.",
            f"In {town} there is {self.landmark[town]}.",
            f"{town} is known for {self.known_for[town]}, and in {town} there is {self.landmark[town]}.",
        ])
        problem = rng.choice([
            f"One {rng.choice(TIMES)}, {pronoun} lost {poss} {obj} {rng.choice(PLACES_LOST)}.",
            f"One {rng.choice(TIMES)}, {name} could not find {poss} {obj}.",
            f"One {rng.choice(TIMES)}, {pronoun} dropped {poss} {obj} {rng.choice(PLACES_LOST)}.",
        ])
        ask = rng.choice([
            f"{P} asked {helper}, {ha} {helper_prof}, for help.",
            f"{helper} the {helper_prof} offered to help {name} look for it.",
            f"{P} went to see {poss} friend {helper}, who was {ha} {helper_prof}.",
        ])
        if happy:
            ending = rng.choice([
                f"Together they found the {obj}, and {name} smiled all the way home.",
                f"By sunset the {obj} was found, and {name} thanked {helper} with a warm cup of tea.",
                f"At last {helper} spotted the {obj}, and {name} laughed with joy.",
            ])
        else:
            ending = rng.choice([
                f"They searched until dark, but the {obj} was never found, and {name} walked home alone.",
                f"The {obj} was gone for good, and {name} was sad for a long time.",
                f"In the end the {obj} was lost, and {name} sat quietly by the window.",
            ])
        text = " ".join([opening, fact, problem, ask, ending])
        return Story(text, name, pronoun, profession, town, helper, "happy" if happy else "sad")

    def stories(self, n: int, seed: int = 0) -> list[Story]:
        """Draw ``n`` stories; the same (world, n, seed) always gives the same stories."""
        if not isinstance(n, int) or n <= 0:
            raise ValueError(f"n must be a positive int, got {n!r}")
        rng = random.Random(seed)
        return [self.story(rng) for _ in range(n)]


def story_corpus(n_stories: int = 3000, seed: int = 0, world: StoryWorld | None = None) -> str:
    """The course's default text corpus: ``n_stories`` stories joined by blank lines.

    3,000 stories are about 900 KB of text, enough for a small character-level model to
    learn to write recognisable stories in a minute or two on a CPU.
    """
    world = world or StoryWorld()
    return "\n\n".join(s.text for s in world.stories(n_stories, seed)) + "\n"
