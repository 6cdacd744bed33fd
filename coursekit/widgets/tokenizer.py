"""The tokeniser explorer (chapter 08): type text, see how each tokenizer cuts it.

Each token is a coloured chunk with its id underneath; unknown pieces (a character or
word outside the vocabulary) are shown in red. The view updates as you type.

    w = ck.widgets.tokenizer_explorer()              # char / word / BPE on the story corpus
    w.set(text="Zoë found her kite 🪁", tokenizer="bpe")
    w.pieces, w.ids                                  # what the tests read
"""
from __future__ import annotations

import html
from typing import Any

import ipywidgets as W

COLOURS = ["#fde2e4", "#e2ece9", "#dbe7f7", "#fff1c1", "#e8def8", "#d7f2d0", "#fcd9bd"]


def _pieces(tok: Any, text: str) -> list[tuple[str, int | None]]:
    """[(shown text, id or None for unknown)] for any tokenizer of the course."""
    if hasattr(tok, "pieces"):
        return [(p, None if i == 0 and type(tok).__name__ == "WordTokenizer" else i)
                for p, i in tok.pieces(text)]
    if hasattr(tok, "stoi"):                                  # CharTokenizer: one per character
        return [(c, tok.stoi.get(c)) for c in text]
    return [(tok.decode([i]), i) for i in tok.encode(text).tolist()]


def _default_tokenizers() -> dict[str, Any]:
    from coursekit.data.stories import story_corpus
    from coursekit.data.text import CharTokenizer
    from coursekit.tokenizers import BPETokenizer, WordTokenizer
    text = story_corpus(n_stories=300, seed=0)
    return {"char": CharTokenizer(text), "word": WordTokenizer(text, max_words=400),
            "bpe": BPETokenizer.train(text, vocab_size=512)}


class TokenizerExplorer:
    """A text box, a tokenizer menu and the tokens as coloured chunks.

    Attributes (updated at every redraw): ``pieces`` [(text, id or None)], ``ids``,
    ``n_unknown``, ``html`` (the chunks' markup), ``n_draws``.
    """

    def __init__(self, tokenizers: dict[str, Any] | None = None, text: str = "",
                 tokenizer: str | None = None):
        self.tokenizers = dict(tokenizers) if tokenizers else _default_tokenizers()
        if not self.tokenizers:
            raise ValueError("tokenizer_explorer needs at least one tokenizer")
        first = tokenizer or next(iter(self.tokenizers))
        if first not in self.tokenizers:
            raise KeyError(f"no tokenizer named {first!r}; have {list(self.tokenizers)}")
        self.controls = {
            "text": W.Textarea(value=text or "Once upon a time, Zoë lost her kite 🪁 in Millbrook.",
                               continuous_update=True, description="text",
                               layout=W.Layout(width="95%", height="70px")),
            "tokenizer": W.ToggleButtons(options=list(self.tokenizers), value=first,
                                         description="tokenizer"),
        }
        self.output = W.HTML()
        self.n_draws = 0
        self.pieces: list[tuple[str, int | None]] = []
        for c in self.controls.values():
            c.observe(lambda change: self.redraw(), names="value")
        self.ui = W.VBox([self.controls["tokenizer"], self.controls["text"], self.output])
        self.redraw()

    @property
    def ids(self) -> list[int | None]:
        return [i for _, i in self.pieces]

    @property
    def n_unknown(self) -> int:
        return sum(i is None for i in self.ids)

    @property
    def html(self) -> str:
        return self.output.value

    def set(self, **values: Any) -> None:
        """Set controls by name (``text``, ``tokenizer``); the view redraws."""
        for name, value in values.items():
            if name not in self.controls:
                raise KeyError(f"no control named {name!r}; controls: {list(self.controls)}")
            self.controls[name].value = value
        self.redraw()

    def redraw(self) -> None:
        name, text = self.controls["tokenizer"].value, self.controls["text"].value
        tok = self.tokenizers[name]
        self.pieces = _pieces(tok, text)
        n_bytes = len(text.encode("utf-8"))
        chunks = []
        for k, (piece, i) in enumerate(self.pieces):
            colour = "#f4a3a3" if i is None else COLOURS[k % len(COLOURS)]
            shown = html.escape(piece).replace(" ", "&middot;").replace("\n", "&#8629;")
            label = "unk" if i is None else str(i)
            chunks.append(f"<span style='display:inline-block;background:{colour};margin:1px;"
                          f"padding:1px 2px;border-radius:3px;font-family:monospace;"
                          f"text-align:center'>{shown}<br><small>{label}</small></span>")
        summary = (f"<b>{name}</b> (vocabulary {tok.vocab_size}): {len(self.pieces)} tokens "
                   f"for {n_bytes} bytes ({len(self.pieces) / max(n_bytes, 1):.2f} tokens per byte)"
                   + (f", <span style='color:#b00'>{self.n_unknown} unknown</span>"
                      if self.n_unknown else ""))
        self.output.value = f"<div>{summary}</div><div>{''.join(chunks)}</div>"
        self.n_draws += 1

    def _repr_mimebundle_(self, **kwargs):
        bundle = self.ui._repr_mimebundle_(**kwargs)
        if isinstance(bundle, dict):
            bundle["text/html"] = self.html      # what a static page shows
        return bundle


def tokenizer_explorer(tokenizers: dict[str, Any] | None = None, text: str = "",
                       tokenizer: str | None = None) -> TokenizerExplorer:
    """A :class:`TokenizerExplorer` over ``tokenizers`` ({name: tokenizer}); by default a
    character, a word and a byte-level BPE tokenizer trained on 300 generated stories."""
    return TokenizerExplorer(tokenizers, text, tokenizer)
