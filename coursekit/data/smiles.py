"""Molecules as strings (chapter 15): SMILES gathered from the files RDKit ships, and SELFIES
written one character per symbol so that a character-level model can learn them.

* ``load_smiles``: every SMILES and SDF file of ``DATA_FILES``, canonicalised and de-duplicated;
* ``SelfiesAlphabet``: each SELFIES symbol (``[C]``, ``[=O]``, ``[Ring1]``...) as one character
  (Krenn et al., 2020).
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

DATA_FILES = ("Data/NCI/first_5K.smi", "Contrib/fraggle/data/ChEMBL_11265_actives.smi", "Contrib/Fastcluster/cdk2.smi",
              "Contrib/FreeWilson/data/CHEMBL2321810.smi", "Contrib/mmpa/data/sample.smi",
              "Data/NCI/first_200.props.sdf", "Contrib/FreeWilson/data/cmet_ligands.sdf", "Contrib/PBF/testData/egfr.sdf")
"""The files of the RDKit wheel read by ``load_smiles`` (paths inside the ``rdkit`` package)."""


def quiet_rdkit() -> None:
    """Silence RDKit's warnings about SMILES it cannot read (a model writes many)."""
    from rdkit import RDLogger
    RDLogger.DisableLog("rdApp.*")


def load_smiles(max_len: int = 60) -> list[str]:
    """The molecules of ``DATA_FILES``: largest fragment only, canonical SMILES, at most ``max_len``
    characters, that SELFIES can encode under its default bond constraints (so that the SMILES and
    the SELFIES model learn the same molecules), de-duplicated, sorted. Raises FileNotFoundError if
    none of the files is there."""
    import rdkit
    import selfies as sf
    from rdkit import Chem
    quiet_rdkit()
    root = Path(rdkit.__file__).parent
    mols, found = [], 0
    for name in DATA_FILES:
        path = root / name
        if not path.exists():
            continue
        found += 1
        if path.suffix == ".sdf":
            mols += [m for m in Chem.SDMolSupplier(str(path)) if m is not None]
            continue
        for line in path.read_text(errors="replace").splitlines():
            parts = line.split()
            if parts and not parts[0].lower().startswith("smiles"):
                mol = Chem.MolFromSmiles(parts[0])
                if mol is not None:
                    mols.append(mol)
    if not found:
        raise FileNotFoundError(f"none of RDKit's data files {DATA_FILES} is installed under {root}")
    out = set()
    for mol in mols:
        frags = Chem.GetMolFrags(mol, asMols=True)
        big = max(frags, key=lambda m: m.GetNumHeavyAtoms()) if frags else mol
        smi = Chem.MolToSmiles(big)
        if 0 < len(smi) <= max_len and "." not in smi and smi not in out:
            try:
                sf.encoder(smi)
            except sf.EncoderError:
                continue
            out.add(smi)
    return sorted(out)


@dataclass
class SelfiesAlphabet:
    """SELFIES symbols <-> single characters, so that a character-level model reads one symbol per token."""

    symbols: list[str]           # the SELFIES symbols, in a fixed order

    FIRST = 0x4E00                # the characters used start here (CJK ideographs: never in a SMILES)

    @classmethod
    def of(cls, selfies_strings: list[str]) -> "SelfiesAlphabet":
        import selfies as sf
        return cls(sorted({s for x in selfies_strings for s in sf.split_selfies(x)}))

    def encode(self, selfies_string: str) -> str:
        """A SELFIES string as one character per symbol; KeyError names a symbol not in the alphabet."""
        import selfies as sf
        table = {s: chr(self.FIRST + i) for i, s in enumerate(self.symbols)}
        out = []
        for s in sf.split_selfies(selfies_string):
            if s not in table:
                raise KeyError(f"the SELFIES symbol {s} is not in this alphabet")
            out.append(table[s])
        return "".join(out)

    def decode(self, chars: str) -> str:
        """Characters back to a SELFIES string (characters outside the alphabet are skipped)."""
        n = len(self.symbols)
        return "".join(self.symbols[ord(c) - self.FIRST] for c in chars if 0 <= ord(c) - self.FIRST < n)


def to_selfies(smiles: list[str]) -> list[str]:
    """SELFIES of each SMILES (Krenn et al., 2020); raises ValueError naming one it cannot encode."""
    import selfies as sf
    out = []
    for s in smiles:
        try:
            out.append(sf.encoder(s))
        except sf.EncoderError as err:
            raise ValueError(f"SELFIES cannot encode {s!r}: {err}") from err
    return out


def smiles_corpus(strings: list[str]) -> str:
    """Molecules as one training text, one per line (a newline ends a sampled molecule)."""
    if any("\n" in s for s in strings):
        raise ValueError("a molecule string holds a newline")
    return "".join(s + "\n" for s in strings)
