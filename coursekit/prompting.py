"""Conditioning a language model with its prompt, and measuring whether it listens (chapter 14).

The course's story model (``ck.zoo.load("story-gpt")``) was trained without any control
codes: the only way to ask it for something is to write the start of the text we want.
This module holds the pieces lesson 14 measures that with:

* ``complete``: greedy or sampled continuations of many prompts at once (prompts of the
  same length share one batch), cut at the end of the story;
* ``StoryRequest``, ``story_requests``, ``request_prompt``, ``field_compliance``: ask for a
  story about a named character with a job in a town, and check which requested fields
  the story honours;
* ``fact_prompt``, ``fact_correct``: the world's facts ("<town> is known for ___") as a
  small task for prompt engineering: wording, examples in the prompt, their order and format.

    run = ck.zoo.load("story-gpt")
    req = StoryRequest("Tom", "nurse", "Ashford")
    text = complete(run, [request_prompt(req)], 240, temperature=0.8)[0]
    field_compliance(text, req)        # {'name': True, 'town': True, 'pronoun': False, 'all': False}
"""
from __future__ import annotations

import random
import re
from dataclasses import dataclass

import torch

from coursekit.data.stories import NAMES_F, NAMES_M, PROFESSIONS, TOWNS, StoryWorld

__all__ = ["complete", "StoryRequest", "story_requests", "request_prompt", "REQUEST_FORMS",
           "field_compliance", "compliance_rates", "fact_prompt", "fact_correct", "FACT_FORMS"]


@torch.no_grad()
def complete(run, prompts: list[str], max_new_tokens: int, *, temperature: float = 0.0,
             top_p: float | None = None, seed: int = 0, stop: str | None = "\n") -> list[str]:
    """The continuation of each prompt (without the prompt), cut before ``stop``.

    1. encode the prompts and group them by length (no padding needed inside a group);
    2. continue each group with ``coursekit.sampling.generate`` (a generator seeded by
       ``seed`` and the group's length, so a prompt's draw does not depend on the others'
       order);
    3. decode the new tokens and cut each text at the first ``stop`` (the stories of the
       corpus end with a newline).

    Args:
        run: an ``LMRun`` (model and tokenizer).
        prompts: the texts to continue.
        max_new_tokens: tokens (characters) to add to each.
        temperature: 0 for greedy decoding.
    Returns:
        One string per prompt, in the order given.
    """
    from coursekit.sampling import generate

    model, tok = run.model, run.tokenizer
    device = next(model.parameters()).device
    encoded = [tok.encode(p) for p in prompts]
    groups: dict[int, list[int]] = {}
    for i, ids in enumerate(encoded):
        groups.setdefault(len(ids), []).append(i)
    out: list[str] = [""] * len(prompts)
    for length, members in sorted(groups.items()):
        idx = torch.stack([encoded[i] for i in members]).to(device)                  # (G, T0)
        gen = torch.Generator().manual_seed(seed * 1000 + length)
        new = generate(model, idx, max_new_tokens, temperature=temperature, top_p=top_p,
                       generator=gen)[:, length:]                                    # (G, max_new)
        for row, i in zip(new.tolist(), members):
            text = tok.decode(row)
            out[i] = text.split(stop, 1)[0] if stop else text
    return out


# --- stories on request ---------------------------------------------------------------------------

@dataclass(frozen=True)
class StoryRequest:
    """What a prompt asks for: a character's name, profession and home town."""

    name: str
    profession: str
    town: str

    @property
    def pronoun(self) -> str:
        """The pronoun the story world gives the name ("she" or "he")."""
        return "she" if self.name in NAMES_F else "he"

    @property
    def stereotyped(self) -> bool:
        """Whether the name's pronoun is the one the corpus over-represents for the profession."""
        return PROFESSIONS[self.profession] == self.pronoun


def story_requests(n: int, seed: int = 0) -> list[StoryRequest]:
    """``n`` requests drawn uniformly: any name with any profession in any town.

    Half the names are women's and half men's whatever the profession, so about half of
    the requests go against the pronoun the corpus ties to the profession.
    """
    rng = random.Random(seed)
    return [StoryRequest(rng.choice(NAMES_F + NAMES_M), rng.choice(sorted(PROFESSIONS)), rng.choice(TOWNS))
            for _ in range(n)]


REQUEST_FORMS = {
    # the corpus's own opening sentence, fields in its order
    "opening": "Once upon a time, {a} {profession} named {name} lived in {town}.",
    # the same fields as a header the model never saw
    "header": "Story about {name}, {a} {profession}, in {town}.",
}


def request_prompt(request: StoryRequest, form: str = "opening") -> str:
    """The prompt that asks for ``request`` in one of ``REQUEST_FORMS``."""
    a = "an" if request.profession[0] in "aeiou" else "a"
    return REQUEST_FORMS[form].format(a=a, name=request.name, profession=request.profession,
                                      town=request.town) + " "


_PRONOUNS = {"she": {"she", "her", "hers", "herself"}, "he": {"he", "his", "him", "himself"}}
_WORD = re.compile(r"[A-Za-z]+")


def field_compliance(text: str, request: StoryRequest) -> dict[str, bool]:
    """Which requested fields a generated story (the text after the prompt) honours.

    * name: the requested name appears again (as a whole word), so the story stays about them;
    * town: the story names at least one town, and every town it names is the requested one;
    * pronoun: it uses at least one pronoun (she/her or he/his/him) and all of them are the
      name's; in the corpus every pronoun of a story refers to its main character;
    * all: the three together.
    (The profession is never repeated in the corpus's stories, so it is not scored here.)
    """
    words = _WORD.findall(text)
    lower = [w.lower() for w in words]
    towns = {w for w in words if w in TOWNS}
    used = {p for p, forms in _PRONOUNS.items() if any(w in forms for w in lower)}
    out = {"name": request.name in words,
           "town": towns == {request.town},
           "pronoun": used == {request.pronoun}}
    out["all"] = all(out.values())
    return out


def compliance_rates(texts: list[str], requests: list[StoryRequest]) -> dict[str, float]:
    """The share of ``texts`` honouring each field (``field_compliance`` averaged)."""
    scores = [field_compliance(t, r) for t, r in zip(texts, requests, strict=True)]
    return {k: sum(s[k] for s in scores) / len(scores) for k in ("name", "town", "pronoun", "all")}


# --- facts as a prompting task ------------------------------------------------------------------

FACT_FORMS = {
    # how one fact is written: the corpus's sentence, one per line, or a terse list the
    # corpus never uses (the character vocabulary has no "?" or ":" for a question-and-answer form)
    "sentence": ("{town} is known for {answer}.", " "),
    "lines": ("{town} is known for {answer}.", "\n"),
    "terse": ("{town}, {answer}.", " "),
}
FACT_WORDINGS = {
    "plain": "{town} is known for",
    "everyone knows": "Everyone knows that {town} is known for",
    "famous (unseen)": "{town} is famous for",
    "the town of (unseen)": "The town of {town} is known for",
}


def fact_prompt(town: str, examples: list[str], world: StoryWorld, form: str = "sentence",
                wording: str = "plain") -> str:
    """A prompt asking what ``town`` is known for, after worked ``examples`` (other towns).

    Args:
        town: the town asked about.
        examples: towns whose (true) fact is written before the question, in this order.
        form: how each fact is written (``FACT_FORMS``).
        wording: how the question is worded when there are no examples (``FACT_WORDINGS``);
            with examples the question takes the examples' form.
    Returns:
        The prompt; the model's continuation should begin with the answer ("its cheese").
    """
    fact, sep = FACT_FORMS[form]
    shots = [fact.format(town=t, answer=world.known_for[t]) for t in examples]
    if examples or form != "sentence":
        question = fact.format(town=town, answer="@").split(" @", 1)[0]
    else:
        question = FACT_WORDINGS[wording].format(town=town)
    return sep.join(shots + [question])


def fact_correct(continuation: str, town: str, world: StoryWorld) -> bool:
    """Whether the continuation of a fact prompt starts with the town's true specialty."""
    return continuation.strip().startswith(world.known_for[town])
