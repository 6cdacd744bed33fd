"""Folk tunes as text (chapter 15): ABC from music21's corpus, cleaned into one plain form,
and a reader that turns that form back into notes.

The canonical form a model learns, one tune per paragraph::

    M:6/8 K:G
    D|GAB c2A|B2G A2F|...

``M`` is the metre, ``K`` the key; the unit note is an eighth (``L:1/8`` for every tune; tunes
written in sixteenths are converted), so a number after a note multiplies its length (``c2`` a
quarter, ``A/2`` a sixteenth, ``B3/2`` a dotted eighth). ``^`` sharpens, ``_`` flattens, ``=``
cancels; an accidental lasts to the end of its bar (the ABC rule). Ornaments, chords (the first
note is kept), chord symbols, grace notes, slurs, ties and repeat signs are dropped; broken
rhythm (``A>B``) and triplets are written out as lengths. folk-rnn (Sturm et al., 2016) trained
on the same kind of text.
"""
from __future__ import annotations

import re
from dataclasses import dataclass, field
from fractions import Fraction
from pathlib import Path

METRES = {"2/4": Fraction(4), "3/4": Fraction(6), "4/4": Fraction(8), "C": Fraction(8), "C|": Fraction(8),
          "2/2": Fraction(8), "6/8": Fraction(6), "9/8": Fraction(9), "12/8": Fraction(12), "3/2": Fraction(12)}
"""Bar length of each metre the reader accepts, in eighths (the unit note)."""

_FIFTHS = {"C": 0, "G": 1, "D": 2, "A": 3, "E": 4, "B": 5, "F#": 6, "C#": 7,
           "F": -1, "Bb": -2, "Eb": -3, "Ab": -4, "Db": -5, "Gb": -6, "Cb": -7}
_MODES = {"": 0, "maj": 0, "ion": 0, "m": -3, "min": -3, "aeo": -3, "mix": -1, "dor": -2, "phr": -4,
          "loc": -5, "lyd": 1}
_STEP = {"C": 0, "D": 2, "E": 4, "F": 5, "G": 7, "A": 9, "B": 11}
_SHARP_ORDER, _FLAT_ORDER = "FCGDAEB", "BEADGCF"
_KEY = re.compile(r"^([A-G])([#b]?)\s*([A-Za-z]*)$")


def key_signature(key: str) -> dict[str, int]:
    """The key signature of an ABC key ("G", "Am", "Dmix", "Bb", "F#m"...): {letter: +1 / -1}."""
    m = _KEY.match(key.strip())
    mode = m and m.group(3).lower()[:3]
    mode = "m" if m and m.group(3) == "m" else mode
    if not m or mode not in _MODES or (m.group(1) + m.group(2)) not in _FIFTHS:
        raise ValueError(f"not a key this reader knows: {key!r} (e.g. 'G', 'Am', 'Dmix', 'Edor')")
    fifths = _FIFTHS[m.group(1) + m.group(2)] + _MODES[mode]
    if not -7 <= fifths <= 7:
        raise ValueError(f"the key {key!r} needs more than 7 sharps or flats")
    return ({c: 1 for c in _SHARP_ORDER[:fifths]} if fifths >= 0 else {c: -1 for c in _FLAT_ORDER[:-fifths]})


def key_pitch_classes(key: str) -> set[int]:
    """The seven pitch classes (0 = C ... 11 = B) of ``key``'s scale."""
    sig = key_signature(key)
    return {(_STEP[c] + sig.get(c, 0)) % 12 for c in _STEP}


# ---------------------------------------------------------------------------------------
# Reading the canonical form
# ---------------------------------------------------------------------------------------
@dataclass
class Tune:
    """A tune read from the canonical form."""

    metre: str                                   # "6/8", "C", ...
    key: str                                     # "G", "Am", ...
    notes: list[tuple[int | None, Fraction]]     # (MIDI pitch, or None for a rest; length in eighths)
    bars: list[Fraction] = field(default_factory=list)   # length of each bar in eighths, in order

    @property
    def bar_length(self) -> Fraction:
        return METRES[self.metre]


_TOKEN = re.compile(r"(?P<bar>\|)|(?P<note>(?P<acc>\^\^|\^|__|_|=)?(?P<letter>[A-Ga-g])(?P<oct>[,']*)"
                    r"|(?P<rest>z))(?P<num>\d*)(?P<slash>/?)(?P<den>\d*)|(?P<space>\s+)")


def _length(num: str, slash: str, den: str) -> Fraction:
    n = Fraction(int(num)) if num else Fraction(1)
    if slash:
        n /= int(den) if den else 2
    elif den:
        raise ValueError("a length has digits after no slash")
    if n <= 0:
        raise ValueError("a note of length zero")
    return n


def read_tune(text: str) -> Tune:
    """Read one tune in the canonical form (header line, then the body); raise ValueError if it is not one.

    Returns a ``Tune`` whose notes carry MIDI pitches (middle C, ``C``, is 60) and whose ``bars``
    holds the length of every bar closed by a ``|``.
    """
    lines = text.strip("\n").split("\n")
    head = re.fullmatch(r"M:(\S+) K:(\S+)", lines[0].strip()) if lines else None
    if not head or head.group(1) not in METRES:
        raise ValueError(f"the first line must be 'M:<metre> K:<key>' with a metre in {sorted(METRES)}, "
                         f"got {lines[0][:30]!r}" if lines else "an empty tune")
    metre, key = head.group(1), head.group(2)
    sig = key_signature(key)
    body = " ".join(lines[1:])
    notes, bars, bar, accidentals, pos = [], [], Fraction(0), {}, 0
    while pos < len(body):
        m = _TOKEN.match(body, pos)
        if not m or m.end() == pos:
            raise ValueError(f"cannot read {body[pos:pos + 10]!r} at character {pos} of the body")
        pos = m.end()
        if m.group("bar"):
            bars.append(bar)
            bar, accidentals = Fraction(0), {}
        elif m.group("note"):
            length = _length(m.group("num"), m.group("slash"), m.group("den"))
            bar += length
            if m.group("rest"):
                notes.append((None, length))
                continue
            letter, octave = m.group("letter"), m.group("oct")
            step = letter.upper()
            pitch = 60 + _STEP[step] + (12 if letter.islower() else 0) + 12 * octave.count("'") - 12 * octave.count(",")
            acc = m.group("acc")
            if acc:
                accidentals[(step, octave, letter.islower())] = {"^": 1, "^^": 2, "_": -1, "__": -2, "=": 0}[acc]
            shift = accidentals.get((step, octave, letter.islower()), sig.get(step, 0))
            notes.append((pitch + shift, length))
    if not notes:
        raise ValueError("a tune without notes")
    return Tune(metre, key, notes, bars)


def split_tunes(text: str) -> list[str]:
    """Tunes of a text in the canonical form: paragraphs separated by a blank line."""
    return [t.strip("\n") for t in re.split(r"\n\s*\n", text) if t.strip()]


# ---------------------------------------------------------------------------------------
# The corpus: music21's ABC collections in the canonical form
# ---------------------------------------------------------------------------------------
_DROP = [re.compile(p) for p in (r'"[^"]*"', r"![^!]*!", r"\+[^+\s]*\+", r"\{[^}]*\}", r"%.*")]
_RAW = re.compile(r"(?P<bar>:*\|+[\]:]*\d*|:*\[?\|[\]:]*\d*|::|\[\d)|(?P<chord>\[[^\]|:]*\])"
                  r"|(?P<trip>\(\d)|(?P<note>(?:\^\^|\^|__|_|=)?[A-Ga-gz][,']*)(?P<len>\d*/*\d*)"
                  r"|(?P<broken>[<>]+)|(?P<skip>(?:[\s)\-.~uvTHLMOPSJR\\`$*]|\((?!\d))+)")


def _raw_length(s: str) -> Fraction:
    if not s:
        return Fraction(1)
    num, _, rest = s.partition("/")
    n = Fraction(int(num)) if num else Fraction(1)
    if "/" in s:
        slashes = s.count("/")
        den = rest.strip("/")
        n /= int(den) if den else 2 ** slashes
    return n


def _fmt(length: Fraction) -> str:
    if length == 1:
        return ""
    if length.denominator == 1:
        return str(length.numerator)
    return (str(length.numerator) if length.numerator != 1 else "") + f"/{length.denominator}"


def clean_tune(abc: str) -> str | None:
    """One raw ABC tune in the canonical form, or None if it uses what the reader leaves out
    (another unit note than 1/8, a metre or key it does not know, a change of either inside the tune)."""
    head, body = {}, []
    for line in abc.split("\n"):
        if re.match(r"^[A-Za-z]:", line) and not body or (re.match(r"^[A-Za-z]:", line) and line[0] in "MLK"):
            if body and line[0] in "MLK":
                return None                                # a change of metre, unit or key
            head.setdefault(line[0], line[2:].strip())
            continue
        if re.match(r"^[A-Za-z]:", line):                  # other fields in the body (W:, N:...)
            continue
        body.append(line)
    metre, key = head.get("M", "").replace(" ", ""), head.get("K", "").split(" ")[0]
    if metre not in METRES or not key:
        return None
    default_unit = "1/16" if metre in ("2/4", "3/8") else "1/8"          # the ABC standard's default
    scale = {"1/8": Fraction(1), "1/16": Fraction(1, 2), "1/4": Fraction(2)}.get(
        head.get("L", default_unit).replace(" ", ""))
    if scale is None:
        return None
    try:
        key_signature(key)
    except ValueError:
        return None
    text = " ".join(body)
    for pattern in _DROP:
        text = pattern.sub(" ", text)
    if "[" in text and re.search(r"\[[A-Za-z]:", text):
        return None
    pending, pos = None, 0                      # pending: index of the note before a broken-rhythm sign
    tuplet_left, tuplet_ratio = 0, Fraction(1)  # (3abc: 3 notes in the time of 2
    notes: list[list] = []                       # [symbol, length] or ["|"]
    broken = ""
    while pos < len(text):
        m = _RAW.match(text, pos)
        if not m or m.end() == pos:
            return None
        pos = m.end()
        if m.group("bar"):
            notes.append(["|"])
        elif m.group("trip"):
            p = int(m.group("trip")[1:])
            tuplet_left, tuplet_ratio = p, Fraction({2: 3, 3: 2, 4: 3, 6: 2}.get(p, p), p)
        elif m.group("broken"):
            broken = m.group("broken")
        elif m.group("chord") or m.group("note"):
            if m.group("chord"):
                inner = re.match(r"((?:\^\^|\^|__|_|=)?[A-Ga-g][,']*)(\d*/*\d*)", m.group("chord")[1:])
                if not inner:
                    return None
                tail = re.match(r"\d*/*\d*", text[pos:]).group(0)
                pos += len(tail)
                symbol, length = inner.group(1), _raw_length(tail or inner.group(2))
            else:
                symbol, length = m.group("note"), _raw_length(m.group("len"))
            if tuplet_left:
                length *= tuplet_ratio
                tuplet_left -= 1
            if broken and pending is not None:
                dots = len(broken)
                longer, shorter = 2 - Fraction(1, 2 ** dots), Fraction(1, 2 ** dots)
                first, second = (longer, shorter) if broken[0] == ">" else (shorter, longer)
                notes[pending][1] *= first
                length *= second
            broken = ""
            notes.append([symbol, length * scale])
            pending = len(notes) - 1
    body_out = "".join("|" if n[0] == "|" else n[0] + _fmt(n[1]) for n in notes)
    body_out = re.sub(r"\|+", "|", body_out).strip("|")
    if len(re.findall(r"[A-Ga-g]", body_out)) < 8:
        return None
    tune = f"M:{metre} K:{key}\n{body_out}|"
    try:
        read_tune(tune)
    except ValueError:
        return None
    return tune


def load_tunes(collection: str | tuple[str, ...] = ("ryansMammoth", "oneills1850"), max_chars: int = 600) -> list[str]:
    """The tunes of music21's ABC collections ("ryansMammoth", "oneills1850", or both as a tuple) in
    the canonical form, those at most ``max_chars`` long, in file order (tunes the cleaner
    cannot write in the canonical form are left out)."""
    from music21 import corpus
    collections = (collection,) if isinstance(collection, str) else tuple(collection)
    paths = []
    for name in collections:
        found = sorted(Path(p) for p in corpus.getComposer(name))
        if not found:
            raise FileNotFoundError(f"music21's corpus has no collection {name!r}")
        paths += found
    out = []
    for path in paths:
        for raw in re.split(r"\n(?=X:)", path.read_text(encoding="latin-1")):
            tune = clean_tune(raw)
            if tune and len(tune) <= max_chars:
                out.append(tune)
    return out


def tune_corpus(tunes: list[str]) -> str:
    """Tunes as one training text: each followed by a blank line (where a sample's tune ends)."""
    return "".join(t.strip("\n") + "\n\n" for t in tunes)
