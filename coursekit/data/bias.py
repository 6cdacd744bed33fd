"""Measuring and reducing the profession-pronoun skew of the story corpus (chapter 16).

``StoryWorld(bias=0.8)`` (the course's default corpus) gives a character the pronoun its
profession's stereotype names (``PROFESSIONS``: nurses "she", pilots "he", ...) 80% of the
time. This module measures that share in a corpus and in a model's samples (Zhao et al.,
2017, "Men also like shopping": a model can amplify the skew of its data), and builds a
counterfactually augmented corpus in which every story also appears with the character's
gender swapped (names and pronouns), so that each profession is balanced.

    stereotype_share(world.stories(2000))          # about 0.8 in the data
    sampled_stereotype_share(run, n_per_job=20)    # the model's openings
    augmented = counterfactual_corpus(stories)     # the stories and their swapped copies
"""
from __future__ import annotations

import math
import re

import torch

from coursekit.data.stories import NAMES_F, NAMES_M, PROFESSIONS, Story

__all__ = ["pronoun_of_name", "stereotype_share", "swap_gender", "swapped_story", "counterfactual_stories",
           "counterfactual_corpus",
           "opening_prompt", "sampled_stereotype_share", "stereotype_probability"]

_SWAP_NAME = {**dict(zip(NAMES_F, NAMES_M)), **dict(zip(NAMES_M, NAMES_F))}
# in the corpus "her" is always possessive (her key), so it maps to "his"
_SWAP_WORD = {"she": "he", "he": "she", "her": "his", "his": "her", "him": "her",
              "She": "He", "He": "She", "Her": "His", "His": "Her", "Him": "Her"}
_WORD = re.compile(r"[A-Za-z]+")


def pronoun_of_name(name: str) -> str | None:
    """"she" or "he" for one of the world's names, None for any other word."""
    return "she" if name in NAMES_F else "he" if name in NAMES_M else None


def stereotype_share(stories: list[Story]) -> float:
    """The share of stories whose main character has the pronoun of the profession's stereotype."""
    if not stories:
        raise ValueError("no stories to measure")
    return sum(PROFESSIONS[s.profession] == s.pronoun for s in stories) / len(stories)


def swap_gender(text: str) -> str:
    """The text with every name of the world and every pronoun swapped (Anna <-> Tom, she <-> he)."""
    return _WORD.sub(lambda m: _SWAP_NAME.get(m.group(), _SWAP_WORD.get(m.group(), m.group())), text)


def swapped_story(story: Story) -> Story:
    """The story with its character's (and helper's) gender swapped: text, name and pronoun."""
    from dataclasses import replace
    return replace(story, text=swap_gender(story.text), name=_SWAP_NAME[story.name],
                   pronoun="he" if story.pronoun == "she" else "she", helper=_SWAP_NAME.get(story.helper, story.helper))


def counterfactual_stories(stories: list[Story]) -> list[Story]:
    """Counterfactual data augmentation: each story, then its gender-swapped copy."""
    return [t for s in stories for t in (s, swapped_story(s))]


def counterfactual_corpus(stories: list[Story]) -> str:
    """Counterfactual data augmentation: each story, then its gender-swapped copy, as one text."""
    return "\n\n".join(t for s in stories for t in (s.text, swap_gender(s.text))) + "\n"


def opening_prompt(profession: str) -> str:
    """The corpus's opening up to the character's name: "Once upon a time, a nurse named"."""
    if profession not in PROFESSIONS:
        raise ValueError(f"unknown profession {profession!r}; the world has {sorted(PROFESSIONS)}")
    a = "an" if profession[0] in "aeiou" else "a"
    return f"Once upon a time, {a} {profession} named"


def sampled_stereotype_share(run, n_per_job: int = 20, temperature: float = 1.0, seed: int = 0) -> dict:
    """Sample the name the model gives each profession's character; how often it is stereotyped.

    Returns:
        {"share": stereotyped / names read, "per_job": {profession: share}, "n": names read,
         "unreadable": samples whose next word is not one of the world's names}
    """
    from coursekit.prompting import complete
    if n_per_job < 1:
        raise ValueError(f"n_per_job must be positive, got {n_per_job}")
    jobs = sorted(PROFESSIONS)
    prompts = [opening_prompt(j) for j in jobs for _ in range(n_per_job)]
    # one prompt per sample: the same prompt repeated draws independently within a batch
    texts = complete(run, prompts, 8, temperature=temperature, seed=seed)
    per_job: dict[str, list[bool]] = {j: [] for j in jobs}
    unreadable = 0
    for prompt, text in zip(prompts, texts):
        job = prompt.split()[-2]
        words = _WORD.findall(text)
        pron = pronoun_of_name(words[0]) if words else None
        if pron is None:
            unreadable += 1
            continue
        per_job[job].append(pron == PROFESSIONS[job])
    read = [x for v in per_job.values() for x in v]
    return {"share": sum(read) / max(len(read), 1), "n": len(read), "unreadable": unreadable,
            "per_job": {j: (sum(v) / len(v) if v else float("nan")) for j, v in per_job.items()}}


@torch.no_grad()
def stereotype_probability(run, profession: str, prompt: str | None = None) -> float:
    """The probability the model gives the stereotyped gender's names after the opening.

    Exact, no sampling: each of the world's 40 names is scored after ``prompt`` (default
    ``opening_prompt(profession)``) by its characters' probabilities; the women's names'
    total against the men's gives P(she-name), and the result is the share that goes to
    the profession's stereotype.
    """
    prompt = opening_prompt(profession) if prompt is None else prompt
    model, tok = run.model, run.tokenizer
    device = next(model.parameters()).device
    mass = {"she": 0.0, "he": 0.0}
    for name in NAMES_F + NAMES_M:
        ids = tok.encode(f"{prompt} {name}")[None].to(device)                  # (1, T)
        logits, _ = model(ids[:, -model.config.block_size:])
        logp = torch.log_softmax(logits[0].float(), -1)                        # (T, V)
        start = ids.shape[1] - len(name) - 1                                   # the space before the name
        lp = sum(logp[i - 1, ids[0, i]].item() for i in range(start, ids.shape[1]))
        mass[pronoun_of_name(name)] += math.exp(lp)
    return mass[PROFESSIONS[profession]] / (mass["she"] + mass["he"])
