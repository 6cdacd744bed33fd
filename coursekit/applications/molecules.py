"""Generated molecules measured (chapter 15): canonical SMILES, SELFIES decoded back to SMILES,
and validity, uniqueness and novelty as MOSES defines them (Polykovskiy et al., 2020):
validity = valid / generated, uniqueness = distinct canonical / valid, novelty = distinct ones not
in the training set / distinct. The molecules themselves are in ``coursekit.data.smiles``.
"""
from __future__ import annotations

from coursekit.data.smiles import quiet_rdkit

def canonical(smiles: str) -> str | None:
    """RDKit's canonical SMILES of ``smiles``, or None if RDKit cannot read it (or it is empty)."""
    from rdkit import Chem
    quiet_rdkit()
    if not isinstance(smiles, str) or not smiles.strip():
        return None
    mol = Chem.MolFromSmiles(smiles)
    return Chem.MolToSmiles(mol) if mol is not None and mol.GetNumAtoms() > 0 else None


def from_selfies(selfies_strings: list[str]) -> list[str]:
    """SMILES of each SELFIES string ("" where it decodes to nothing)."""
    import selfies as sf
    out = []
    for s in selfies_strings:
        try:
            out.append(sf.decoder(s) or "")
        except sf.DecoderError:
            out.append("")
    return out


def moses_metrics(generated: list[str], training: list[str]) -> dict[str, float]:
    """Validity, uniqueness and novelty of generated SMILES, as MOSES defines them.

    validity = valid / len(generated); uniqueness = distinct canonical SMILES / valid;
    novelty = distinct canonical SMILES not in ``training`` (canonicalised too) / distinct.
    A rate with a zero denominator is NaN.
    """
    if not generated:
        raise ValueError("moses_metrics needs at least one generated string")
    valid = [c for c in map(canonical, generated) if c is not None]
    unique = set(valid)
    train = {c for c in map(canonical, training) if c is not None}
    nan = float("nan")
    return {"validity": len(valid) / len(generated),
            "uniqueness": len(unique) / len(valid) if valid else nan,
            "novelty": len(unique - train) / len(unique) if unique else nan}


def sample_molecules(run, n: int, temperature: float = 1.0, seed: int = 0, length: int = 70) -> list[str]:
    """``n`` molecules from a SMILES or SELFIES model, as SMILES strings (a SELFIES model's samples
    are decoded: its run carries the alphabet in ``run.extra["selfies_symbols"]``)."""
    from coursekit.data.smiles import SelfiesAlphabet
    from coursekit.prompting import complete
    if n < 1:
        raise ValueError(f"n must be positive, got {n}")
    raw = complete(run, ["\n"] * n, length, temperature=temperature, seed=seed, stop="\n")
    symbols = getattr(run, "extra", {}).get("selfies_symbols")
    if symbols is None:
        return raw
    alphabet = SelfiesAlphabet(symbols)
    return from_selfies([alphabet.decode(s) for s in raw])
