"""Chapter 15, applications: the measurements each domain needs around one character-level model.

* ``code``: parse rates with ``ast``, function-completion tasks run in a confined
  subprocess, pass@k (Chen et al., 2021);
* ``music``: folk tunes as ABC text, a small ABC reader, metre and key measures, a synthesiser;
* ``molecules``: SMILES from RDKit's own data files, SELFIES as one character per symbol,
  validity, uniqueness and novelty (MOSES, Polykovskiy et al., 2020);
* ``inpaint``: filling a masked digit with the conditional diffusion model by replacement.

Each module imports its heavy dependency (RDKit, selfies, music21) only when it needs it.
"""
