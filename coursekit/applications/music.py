"""Measuring generated tunes and hearing them (chapter 15): the share that parses, bars that
fill their metre, notes in the key's scale, music21's reading, and a small additive synthesiser.
The corpus and the reader of the canonical ABC form are in ``coursekit.data.tunes``.
"""
from __future__ import annotations

import re

from coursekit.data.tunes import Tune, key_pitch_classes, read_tune  # noqa: F401 (read_tune: the widget)

# ---------------------------------------------------------------------------------------
# Measures
# ---------------------------------------------------------------------------------------
def tune_measures(texts: list[str]) -> dict[str, float]:
    """What share of tunes parse; of their inner bars (the first, a pickup, and the open end left out),
    what share last exactly one bar of the metre; of their notes, what share lie in the key's scale."""
    if not texts:
        raise ValueError("tune_measures needs at least one tune")
    tunes = []
    for t in texts:
        try:
            tunes.append(read_tune(t))
        except ValueError:
            pass
    inner = [(b, tune.bar_length) for tune in tunes for b in tune.bars[1:]]
    pitched = [(p % 12, key_pitch_classes(tune.key)) for tune in tunes for p, _ in tune.notes if p is not None]
    return {"parse": len(tunes) / len(texts),
            "bars_in_metre": sum(b == L for b, L in inner) / len(inner) if inner else float("nan"),
            "in_key": sum(pc in scale for pc, scale in pitched) / len(pitched) if pitched else float("nan"),
            "n_tunes": len(texts), "n_bars": len(inner), "n_notes": len(pitched)}


def to_abc(text: str, title: str = "generated") -> str:
    """A canonical tune as a full ABC tune (X, T, M, L, K headers) that music21 or abcm2ps can read."""
    lines = text.strip("\n").split("\n")
    head = re.fullmatch(r"M:(\S+) K:(\S+)", lines[0].strip())
    if not head:
        raise ValueError(f"the first line must be 'M:<metre> K:<key>', got {lines[0][:30]!r}")
    return (f"X:1\nT:{title}\nM:{head.group(1)}\nL:1/8\nK:{head.group(2)}\n" + "\n".join(lines[1:]) + "\n")


def music21_parses(text: str) -> bool:
    """True if music21 reads the tune (as ABC) into a score with at least one note."""
    from music21 import converter
    try:
        score = converter.parse(to_abc(text), format="abc")
        return len(score.recurse().notes) > 0
    except Exception:                                     # music21 raises many kinds on bad input
        return False


# ---------------------------------------------------------------------------------------
# Sound
# ---------------------------------------------------------------------------------------
def synthesize(tune: Tune, tempo: float = 240.0, sample_rate: int = 16_000, harmonics=(1.0, 0.5, 0.25)):
    """The tune as a mono waveform: each note a sum of sine harmonics under a short attack and a decay.

    Args:
        tune: a ``Tune``; tempo: eighths per minute; sample_rate: samples per second;
        harmonics: the amplitude of the 1st, 2nd, ... harmonic.
    Returns:
        A float32 numpy array in [-1, 1].
    """
    import numpy as np
    if tempo <= 0 or sample_rate <= 0:
        raise ValueError("tempo and sample_rate must be positive")
    seconds_per_eighth = 60.0 / tempo
    pieces = []
    for pitch, length in tune.notes:
        n = max(1, int(round(float(length) * seconds_per_eighth * sample_rate)))
        t = np.arange(n) / sample_rate
        if pitch is None:
            pieces.append(np.zeros(n))
            continue
        f0 = 440.0 * 2 ** ((pitch - 69) / 12)
        wave = sum(a * np.sin(2 * np.pi * f0 * (h + 1) * t) for h, a in enumerate(harmonics))
        envelope = np.minimum(1.0, t / 0.01) * np.exp(-3.0 * t)
        pieces.append(wave * envelope)
    audio = np.concatenate(pieces)
    return (audio / max(np.abs(audio).max(), 1e-9) * 0.9).astype(np.float32)


def sample_tunes(run, n: int, length: int = 300, temperature: float = 0.8, seed: int = 0) -> list[str]:
    """``n`` tunes from a tune model: each continues a blank line and ends at the next blank line
    (or after ``length`` characters, unfinished)."""
    from coursekit.prompting import complete
    if n < 1 or length < 1:
        raise ValueError(f"n and length must be positive, got {n} and {length}")
    return [t.strip("\n") for t in complete(run, ["\n\n"] * n, length, temperature=temperature, seed=seed,
                                             stop="\n\n")]
