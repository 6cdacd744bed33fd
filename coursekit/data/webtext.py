"""A small "web crawl" with known defects, for chapter 08's cleaning pipeline.

Real pre-training text comes from crawled pages: the same page many times, copies with
a word changed, menus and cookie banners, HTML left in, garbage, people's e-mail
addresses and phone numbers, and far more of some topics than of others. This module
builds such a corpus from generated documents and **records every defect it plants**,
so a cleaning step can be scored with precision and recall instead of by eye.

    corpus = make_web_corpus(WebTextConfig.preset("lesson"), seed=0)
    corpus.docs[0].text, corpus.docs[0].kind
    corpus.truth.exact_of      # {copy id: original id} for exact duplicates
    corpus.truth.near_of       # {copy id: original id} for near duplicates
    corpus.truth.pii           # [(doc id, "email" | "phone", the planted string)]

Document kinds (the uneven mix): stories from :class:`~coursekit.data.stories.StoryWorld`,
forum posts (with names, e-mail addresses and phone numbers), town notices and recipes.
"""
from __future__ import annotations

import random
import unicodedata
from dataclasses import dataclass, field, replace

from coursekit.data.stories import NAMES_F, NAMES_M, OBJECTS, PLACES_LOST, TOWNS, StoryWorld

SURNAMES = ["Smith", "Okafor", "Novak", "Garcia", "Lindqvist", "Moreau", "Tanaka", "Kowalski",
            "Haddad", "Brennan", "Costa", "Petrov", "Nakamura", "Reyes", "Fischer", "Adeyemi"]
DOMAINS = ["example.com", "mail.example.org", "post.example.net", "webmail.example.co.uk"]
WEEKDAYS = ["Monday", "Tuesday", "Wednesday", "Thursday", "Friday", "Saturday", "Sunday"]
# lines a crawler finds on every page of a site: what the boilerplate filter must remove
BOILERPLATE = [
    "Home | News | Forum | Recipes | Contact",
    "Subscribe to our newsletter for more stories from the valley!",
    "© 2024 Valley Web Ltd. All rights reserved.",
    "We use cookies to improve your experience. By using this site you accept our cookies.",
    "Share this page: Facebook | Twitter | E-mail a friend",
    "Skip to main content",
]
FOODS = ["crème brûlée", "apple tart", "honey cake", "fish soup", "café au lait",
         "rye bread", "plum jam", "pâté on toast", "cheese scones", "rosé jelly"]
SPAM_WORDS = ["cheap", "best", "price", "click", "here", "free", "win", "now", "buy", "deal"]
KINDS = ("story", "forum", "notice", "recipe")


@dataclass
class WebTextConfig:
    """How big the crawl is and how often each defect is planted."""

    n_docs: int = 1200                 # documents before copies are added
    mix: tuple[float, ...] = (0.70, 0.15, 0.10, 0.05)   # share of story, forum, notice, recipe
    exact_share: float = 0.06          # exact copies, as a share of n_docs
    near_share: float = 0.06           # near copies (a few words changed), share of n_docs
    garbled_share: float = 0.03        # garbage documents, share of n_docs
    markup_share: float = 0.15         # share of documents wrapped in HTML
    boilerplate_share: float = 0.35    # share of documents with menu / footer lines
    messy_share: float = 0.15          # share with odd whitespace and decomposed Unicode
    near_edits: int = 3                # words changed in a near copy

    @classmethod
    def preset(cls, name: str, **overrides) -> "WebTextConfig":
        """A named size: "tiny" (tests), "lesson" (chapter 08), "bench" (benchmark)."""
        if name not in PRESETS:
            raise KeyError(f"unknown preset {name!r}; presets: {sorted(PRESETS)}")
        return replace(PRESETS[name], **overrides)


PRESETS = {
    "tiny": WebTextConfig(n_docs=200),
    "lesson": WebTextConfig(n_docs=1200),
    "bench": WebTextConfig(n_docs=4000),
}


@dataclass
class Doc:
    """One crawled document."""

    id: int          # position in the corpus
    text: str
    kind: str        # "story", "forum", "notice", "recipe" or "garbled"


@dataclass
class Truth:
    """Every planted defect, by document id."""

    exact_of: dict[int, int] = field(default_factory=dict)   # exact copy -> original
    near_of: dict[int, int] = field(default_factory=dict)    # near copy -> original
    garbled: set[int] = field(default_factory=set)           # garbage documents
    markup: set[int] = field(default_factory=set)            # documents wrapped in HTML
    boilerplate: set[tuple[int, str]] = field(default_factory=set)  # (doc id, line)
    messy: set[int] = field(default_factory=set)             # odd whitespace / NFD Unicode
    pii: list[tuple[int, str, str]] = field(default_factory=list)   # (doc id, kind, value)
    names: list[tuple[int, str]] = field(default_factory=list)      # (doc id, full name)


@dataclass
class WebCorpus:
    """The crawled documents (in crawl order) and the record of their defects."""

    docs: list[Doc]
    truth: Truth
    config: WebTextConfig

    def kind_counts(self) -> dict[str, int]:
        """How many documents of each kind (copies included)."""
        out: dict[str, int] = {}
        for d in self.docs:
            out[d.kind] = out.get(d.kind, 0) + 1
        return out

    def __len__(self) -> int:
        return len(self.docs)


# -- personal data ---------------------------------------------------------------------------

def make_email(rng: random.Random, first: str, last: str) -> str:
    """An e-mail address in one of a few common shapes."""
    user = rng.choice([f"{first}.{last}", f"{first[0]}{last}", f"{first}_{rng.randint(1, 99)}",
                       f"{last}.{first}+news"]).lower()
    return f"{user}@{rng.choice(DOMAINS)}"


def make_phone(rng: random.Random) -> str:
    """A phone number in one of five formats (UK and North-American styles)."""
    d = lambda n: "".join(str(rng.randint(0, 9)) for _ in range(n))  # noqa: E731
    return rng.choice([
        f"+44 20 {d(4)} {d(4)}",                   # international, spaces
        f"+1 {rng.randint(2, 9)}{d(2)} {d(3)} {d(4)}",
        f"({rng.randint(2, 9)}{d(2)}) {d(3)}-{d(4)}",  # (555) 201-3344
        f"{rng.randint(2, 9)}{d(2)}-{d(3)}-{d(4)}",    # 555-201-3344
        f"0{d(3)} {d(3)} {d(4)}",                  # 0161 496 0123
    ])


def _distractor(rng: random.Random) -> str:
    """A sentence full of numbers that are not personal data (dates, prices, times...)."""
    return rng.choice([
        f"Posted on 2024-{rng.randint(1, 12):02d}-{rng.randint(1, 28):02d} at {rng.randint(7, 21)}:{rng.choice(['00', '15', '30', '45'])}.",
        f"There is a reward of £{rng.randint(5, 50)}.{rng.choice(['00', '50'])} for it.",
        f"It was a gift from {rng.randint(1950, 2020)}.",
        f"My order number was {rng.randint(1000, 9999)}-{rng.randint(10, 99)}.",
        f"It is about {rng.randint(2, 30)} cm long and weighs {rng.randint(20, 900)} g.",
    ])


# -- the four kinds of document --------------------------------------------------------------

def _forum(rng: random.Random, pii: list, names: list) -> str:
    first = rng.choice(NAMES_F + NAMES_M)
    last = rng.choice(SURNAMES)
    obj, town = rng.choice(OBJECTS), rng.choice(TOWNS)
    lines = [f"Re: lost {obj} in {town}", f"{first} {last} wrote:"]
    names.append(f"{first} {last}")
    body = [rng.choice([f"Has anyone seen my {obj}?", f"I am looking for a {obj} I lost.",
                        f"Please help me find my {obj}."]),
            f"I lost it {rng.choice(PLACES_LOST)} on {rng.choice(WEEKDAYS)} {rng.choice(['morning', 'evening', 'afternoon'])}.",
            rng.choice([f"It was a present from my {rng.choice(['aunt', 'brother', 'teacher', 'neighbour'])}.",
                        f"It is {rng.choice(['blue', 'old', 'small', 'red', 'green'])} and {rng.choice(['worn', 'shiny', 'heavy', 'light'])}.",
                        "I have walked the same way three times already."]),
            _distractor(rng)]
    email, phone = make_email(rng, first, last), make_phone(rng)
    contact = rng.choice([
        [("email", email)], [("phone", phone)], [("email", email), ("phone", phone)]])
    parts = []
    for kind, value in contact:
        pii.append((kind, value))
        parts.append(f"write to {value}" if kind == "email" else f"call me on {value}")
    body.append(f"If you find it, please {' or '.join(parts)}.")
    if rng.random() < 0.5:
        body.append(_distractor(rng))
    return "\n".join(lines + [" ".join(body)])


def _notice(rng: random.Random, world: StoryWorld, pii: list) -> str:
    town = rng.choice(TOWNS)
    what = world.landmark[town].split(" ", 1)[1]
    month, day = rng.randint(1, 12), rng.randint(1, 28)
    when = f"2025-{month:02d}-{day:02d}"
    event = rng.choice([
        f"The {what} will be closed on {when} from {rng.randint(8, 10)}:00 to {rng.randint(15, 18)}:00 for repairs.",
        f"A {rng.choice(['brass band', 'choir', 'string quartet', 'folk group'])} plays by the {what} on {when} at {rng.randint(17, 20)}:30.",
        f"The {rng.choice(['spring', 'summer', 'autumn', 'winter'])} market opens on {when}, with stalls selling {world.known_for[town][4:]}.",
        f"Volunteers are wanted to {rng.choice(['paint', 'clean', 'repair', 'light'])} the {what} before {when}.",
        f"The {rng.choice(['bus', 'ferry', 'night train'])} to {rng.choice(TOWNS)} leaves {rng.randint(5, 25)} minutes later from {when}.",
    ])
    extras = [f"The café next to the {what} serves {rng.choice(FOODS)} all {rng.choice(WEEKDAYS)}.",
              f"The market will move to the square, as it did in {rng.randint(1990, 2020)}.",
              f"Tickets cost £{rng.randint(2, 9)}.50 and children go free.",
              f"Please keep {rng.choice(['dogs', 'bicycles', 'cars'])} away from the {rng.choice(['river', 'square', 'school', 'station'])}.",
              f"The mayor, {rng.choice(NAMES_F + NAMES_M)} {rng.choice(SURNAMES)}, thanks everyone who {rng.choice(['helped', 'came', 'wrote in', 'gave money'])}.",
              f"{town} is known for {world.known_for[town]}."]
    text = [rng.choice([f"Town notice from {town}.", f"News from {town}:", f"{town} council says:"]),
            event] + rng.sample(extras, 2)
    if rng.random() < 0.5:
        email = f"{rng.choice(['office', 'events', 'info'])}@{town.lower()}.example.gov"
        pii.append(("email", email))
        text.append(f"Questions go to {email}.")
    return " ".join(text)


def _recipe(rng: random.Random) -> str:
    food = rng.choice(FOODS)
    return " ".join([
        f"How to make {food}.",
        f"Mix {rng.randint(100, 500)} g of flour with {rng.randint(1, 4)} eggs and {rng.randint(50, 300)} ml of milk.",
        f"Add a spoon of {rng.choice(['honey', 'sugar', 'butter', 'salt'])} and stir for {rng.randint(2, 10)} minutes.",
        f"Bake it for {rng.randint(15, 60)} minutes at {rng.choice([160, 180, 200, 220])} degrees.",
        rng.choice(["Serve it warm.", "Let it cool before eating.", "It keeps for three days."]),
    ] + rng.sample([f"My {rng.choice(['grandmother', 'uncle', 'neighbour', 'teacher'])} in {rng.choice(TOWNS)} taught me this one.",
                    f"Some cooks add {rng.choice(['a pinch of salt', 'lemon peel', 'raisins', 'nutmeg'])} at the end.",
                    f"It goes well with {rng.choice(FOODS)}.",
                    f"Children love it on {rng.choice(WEEKDAYS)}s.",
                    f"Use {rng.choice(['fresh', 'cold', 'soft', 'good'])} {rng.choice(['butter', 'eggs', 'milk', 'flour'])} if you can."], 2))


def _garbled(rng: random.Random) -> str:
    """Garbage a crawler brings home: symbol soup, keyword spam, an encoded blob."""
    style = rng.choice(["soup", "spam", "blob"])
    if style == "soup":
        chars = "#$%&*+=<>/\\|~^@!?0123456789qzxj"
        return " ".join("".join(rng.choice(chars) for _ in range(rng.randint(2, 8)))
                        for _ in range(rng.randint(20, 60)))
    if style == "spam":
        return " ".join(rng.choice(SPAM_WORDS[:4]).upper() if rng.random() < 0.3
                        else rng.choice(SPAM_WORDS[:5]) for _ in range(rng.randint(30, 80)))
    alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/"
    return "\n".join("".join(rng.choice(alphabet) for _ in range(76)) for _ in range(rng.randint(3, 8)))


# -- defects applied to a document ----------------------------------------------------------

def _near_copy(rng: random.Random, text: str, n_edits: int) -> str:
    """The same text with ``n_edits`` words replaced (what a re-post or an edit does)."""
    lines = text.split("\n")
    i = max(range(len(lines)), key=lambda k: len(lines[k]))   # edit the longest line
    words = lines[i].split(" ")
    fillers = ["very", "really", "old", "little", "also", "then", "still", "quite"]
    n_edits = max(1, min(n_edits, len(words) // 15))        # short texts get fewer edits
    plain = [k for k, w in enumerate(words) if w.isalpha()]  # leave numbers and addresses
    for pos in rng.sample(plain, min(n_edits, len(plain))):
        words[pos] = rng.choice(fillers)
    lines[i] = " ".join(words)
    return "\n".join(lines)


def _messy(rng: random.Random, text: str) -> str:
    """Odd whitespace (double spaces, tabs, no-break spaces, trailing blanks) and NFD accents."""
    out = unicodedata.normalize("NFD", text)
    words = out.split(" ")
    for k in rng.sample(range(len(words)), max(1, len(words) // 8)):
        words[k] = words[k] + rng.choice(["  ", "\t", "\u00a0", "   "])
    return " ".join(words) + rng.choice([" ", "  \n", "\t"])


def _markup(rng: random.Random, text: str) -> str:
    """Wrap a document in the HTML a careless crawler keeps."""
    body = "<br>\n".join(line.replace(" ", "&nbsp;", 1) for line in text.split("\n"))
    cls = rng.choice(["post", "content", "article-body"])
    return f'<div class="{cls}"><p>{body}</p></div>'


def make_web_corpus(config: WebTextConfig | None = None, seed: int = 0) -> WebCorpus:
    """Build the crawl: documents of four kinds, then plant the defects and record them.

    Args:
        config: sizes and defect rates (default ``WebTextConfig()``).
        seed: the same (config, seed) always gives the same corpus.
    Returns:
        A :class:`WebCorpus`; originals always come before their copies.
    """
    cfg = config or WebTextConfig()
    if cfg.n_docs < 10:
        raise ValueError(f"n_docs must be at least 10, got {cfg.n_docs}")
    rng = random.Random(seed)
    world = StoryWorld(seed=seed)
    # 1. clean documents of an uneven mix of kinds; each gets a crawl time in [0, 1)
    items = []   # (time, kind, text, pii, names, original index or None, copy type)
    for i in range(cfg.n_docs):
        kind = rng.choices(KINDS, weights=cfg.mix)[0]
        pii: list = []
        names: list = []
        if kind == "story":
            text = " ".join(world.story(rng).text for _ in range(2))
        elif kind == "forum":
            text = _forum(rng, pii, names)
        elif kind == "notice":
            text = _notice(rng, world, pii)
        else:
            text = _recipe(rng)
        items.append([rng.random(), kind, text, pii, names, None, ""])
    n_orig = len(items)
    # 2. garbage documents
    for _ in range(round(cfg.garbled_share * cfg.n_docs)):
        items.append([rng.random(), "garbled", _garbled(rng), [], [], None, ""])
    # 3. copies, crawled after their original: exact (sometimes with messy whitespace) and near
    copies = rng.sample(range(n_orig), round((cfg.exact_share + cfg.near_share) * cfg.n_docs))
    n_exact = round(cfg.exact_share * cfg.n_docs)
    for k, j in enumerate(copies):
        t0, kind, text, pii, names = items[j][:5]
        t = t0 + (1 - t0) * rng.random()
        if k < n_exact:
            items.append([t, kind, text, list(pii), list(names), j, "exact"])
        else:
            items.append([t, kind, _near_copy(rng, text, cfg.near_edits), list(pii),
                          list(names), j, "near"])
    # 4. crawl order; ids are positions
    order = sorted(range(len(items)), key=lambda k: items[k][0])
    new_id = {old: new for new, old in enumerate(order)}
    truth = Truth()
    docs = []
    for new, old in enumerate(order):
        _, kind, text, pii, names, orig, copy = items[old]
        if copy == "exact":
            truth.exact_of[new] = new_id[orig]
        elif copy == "near":
            truth.near_of[new] = new_id[orig]
        if kind == "garbled":
            truth.garbled.add(new)
        # 5. surface defects, applied independently to every document
        if kind != "garbled" and rng.random() < cfg.messy_share:
            text = _messy(rng, text)
            truth.messy.add(new)
        if rng.random() < cfg.markup_share:
            text = _markup(rng, text)
            truth.markup.add(new)
        if rng.random() < cfg.boilerplate_share:
            head = rng.sample(BOILERPLATE[:3] + BOILERPLATE[5:], rng.randint(1, 2))
            tail = rng.sample(BOILERPLATE[1:5], rng.randint(0, 2))
            truth.boilerplate.update((new, line) for line in head + tail)
            text = "\n".join(head + [text] + tail)
        truth.pii.extend((new, k, v) for k, v in pii)
        truth.names.extend((new, n) for n in names)
        docs.append(Doc(new, text, kind))
    return WebCorpus(docs, truth, cfg)
