"""Provenance for training data: licence and source tags, a data card and a model card
(lesson 17).

Every training document carries where it came from and under which licence; the data
card is computed from the documents a run actually trained on (not written from memory),
and the model card (Mitchell et al. 2019, "Model cards for model reporting") from the run
and the measurements taken on it.

    docs = tag(stories, source="coursekit StoryWorld (generated)", licence="MIT")
    card = data_card(docs, removed=dropped, tokenizer=tok)
    print(card.markdown())
"""
from __future__ import annotations

import hashlib
from collections import Counter
from dataclasses import dataclass, field

# What each licence's own text grants and asks, in brief. Whether training a model on a
# work is a use the licence governs at all is a separate, open question (see lesson 17).
LICENCES = {
    "MIT": "copy, change and redistribute, commercially too, if the copyright and licence notice is kept",
    "CC0-1.0": "dedicated to the public domain as far as the law allows: no conditions",
    "CC-BY-4.0": "share and adapt, commercially too, with credit to the author and the licence named",
    "CC-BY-SA-4.0": "as CC BY, and adaptations that are shared must carry the same licence",
    "CC-BY-NC-4.0": "as CC BY, but not for commercial purposes",
    "PSF-2.0": "the Python licence: use, change and redistribute, keeping the copyright notice",
    "unlicensed": "no licence: all rights reserved by the owner; copying needs their permission",
    "personal-data": "about a person: data-protection law (e.g. the EU GDPR) applies, whatever the copyright",
}


@dataclass(frozen=True)
class Document:
    text: str
    source: str      # where it came from (a site, a data set, a generator)
    licence: str     # a key of LICENCES

    def __post_init__(self):
        if self.licence not in LICENCES:
            raise ValueError(f"unknown licence {self.licence!r}: use one of {', '.join(LICENCES)} "
                             "(add it to coursekit.cards.LICENCES with what its text allows)")
        if not self.source:
            raise ValueError("every document needs a source: say where its text came from")


def tag(texts: list[str], source: str, licence: str) -> list[Document]:
    """The same ``source`` and ``licence`` on each text."""
    return [Document(t, source, licence) for t in texts]


def corpus_digest(docs: list[Document]) -> str:
    """sha256 of the documents in order: names exactly the data a run trained on."""
    h = hashlib.sha256()
    for d in docs:
        h.update(d.text.encode("utf-8"))
        h.update(b"\x00")
    return h.hexdigest()


@dataclass
class DataCard:
    """What a training corpus holds, computed from its tagged documents."""

    name: str
    n_docs: int
    n_chars: int
    n_tokens: int | None
    by_source: dict[str, tuple[int, int]]      # source -> (documents, characters)
    by_licence: dict[str, tuple[int, int]]     # licence -> (documents, characters)
    removed: dict[str, int]                    # cleaning step -> documents removed
    digest: str
    notes: list[str] = field(default_factory=list)

    def markdown(self) -> str:
        lines = [f"### Data card: {self.name}", "",
                 f"- **Documents**: {self.n_docs:,}; **characters**: {self.n_chars:,}"
                 + (f"; **tokens**: {self.n_tokens:,}" if self.n_tokens is not None else ""),
                 f"- **sha256 of the corpus**: `{self.digest[:16]}...`",
                 "- **Removed in cleaning**: " + (", ".join(f"{k}: {v:,}" for k, v in self.removed.items())
                                                  or "nothing"),
                 "", "| source | documents | characters |", "|---|---|---|"]
        lines += [f"| {s} | {d:,} | {c:,} |" for s, (d, c) in self.by_source.items()]
        lines += ["", "| licence | documents | share of characters | what the licence text allows |",
                  "|---|---|---|---|"]
        lines += [f"| {k} | {d:,} | {c / max(self.n_chars, 1):.1%} | {LICENCES[k]} |"
                  for k, (d, c) in self.by_licence.items()]
        if self.notes:
            lines += ["", *[f"- {n}" for n in self.notes]]
        return "\n".join(lines)


def data_card(docs: list[Document], name: str, removed: dict[str, int] | None = None,
              tokenizer=None, notes: list[str] | None = None) -> DataCard:
    """The card of the documents a run trains on (after cleaning; ``removed`` says what went)."""
    if not docs:
        raise ValueError("no documents: a data card describes the documents a model trained on")
    bad = [i for i, d in enumerate(docs) if not isinstance(d, Document)]
    if bad:
        raise TypeError(f"documents {bad[:5]} are not tagged: wrap texts with coursekit.cards.tag(...)")
    by_source, by_licence = Counter(), Counter()
    chars_source, chars_licence = Counter(), Counter()
    for d in docs:
        by_source[d.source] += 1
        chars_source[d.source] += len(d.text)
        by_licence[d.licence] += 1
        chars_licence[d.licence] += len(d.text)
    n_tokens = sum(len(tokenizer.encode(d.text)) for d in docs) if tokenizer is not None else None
    return DataCard(name=name, n_docs=len(docs), n_chars=sum(len(d.text) for d in docs),
                    n_tokens=n_tokens,
                    by_source={s: (by_source[s], chars_source[s]) for s in by_source},
                    by_licence={k: (by_licence[k], chars_licence[k]) for k in by_licence},
                    removed=dict(removed or {}), digest=corpus_digest(docs), notes=list(notes or []))


def model_card(name: str, run, data: DataCard, metrics: dict[str, str], intended_use: str,
               out_of_scope: str, risks: list[str], caveats: list[str]) -> str:
    """A model card in Markdown, its facts read from ``run`` (model, config, history) and
    ``data``; ``metrics`` maps a measurement's name to its value as text."""
    model, cfg = run.model, run.config
    n_params = sum(p.numel() for p in model.parameters())
    logged = [step for rows in run.history.records.values() for step, _ in rows]
    steps = 1 + max(logged) if logged else None                 # steps are logged from 0
    details = [f"- **Architecture**: decoder-only Transformer, {cfg.n_layer} blocks, width {cfg.n_embd}, "
               f"{cfg.n_head} heads, context {cfg.block_size} tokens, {n_params:,} parameters",
               f"- **Training**: {steps if steps is not None else 'unknown'} steps on the data below "
               f"(corpus sha256 `{data.digest[:16]}...`)"]
    lines = [f"### Model card: {name}", "", "**Model details**", "", *details, "",
             "**Intended use**", "", intended_use, "", "**Out of scope**", "", out_of_scope, "",
             "**Training data**", "", f"{data.name}: {data.n_docs:,} documents, licences "
             + ", ".join(f"{k} ({d:,})" for k, (d, _) in data.by_licence.items()), "",
             "**Measurements**", "", "| measure | value |", "|---|---|",
             *[f"| {k} | {v} |" for k, v in metrics.items()], "",
             "**Ethical considerations**", "", *[f"- {r}" for r in risks], "",
             "**Caveats and recommendations**", "", *[f"- {c}" for c in caveats]]
    return "\n".join(lines)
