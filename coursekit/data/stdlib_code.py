"""Python source from the standard library installed with this interpreter: chapter 15's code corpus.

No network: the files are read from ``sysconfig.get_paths()["stdlib"]``. The choice is
deterministic (sorted names, a fixed stride), so the same Python gives the same corpus.
"""
from __future__ import annotations

import sysconfig
from pathlib import Path

SEPARATOR = "\n\n"          # between two files in the corpus


def stdlib_files(min_chars: int = 2_000, max_chars: int = 40_000) -> list[Path]:
    """The standard library's top-level ``.py`` modules of a moderate size, sorted by name.

    Tests (``test_*``), private modules (``_*``) and files that are not plain ASCII are left out.
    """
    root = Path(sysconfig.get_paths()["stdlib"])
    if not root.is_dir():
        raise FileNotFoundError(f"the standard library's folder {root} is missing")
    out = []
    for path in sorted(root.glob("*.py")):
        if path.name.startswith(("_", "test")):
            continue
        size = path.stat().st_size
        if min_chars <= size <= max_chars:
            try:
                path.read_text(encoding="ascii")
            except (UnicodeDecodeError, OSError):
                continue
            out.append(path)
    return out


def stdlib_corpus(n_chars: int = 300_000, min_chars: int = 2_000, max_chars: int = 40_000) -> tuple[str, list[str]]:
    """About ``n_chars`` characters of standard-library source, whole files, and their names.

    Files are taken in name order at a fixed stride spread over the alphabet until the text holds
    ``n_chars`` characters; tabs become four spaces and trailing spaces are dropped.

    Returns:
        (text, names): the files joined by a blank line, and the file names used in order.
    """
    if n_chars < 1_000:
        raise ValueError(f"n_chars must be at least 1,000, got {n_chars}")
    files = stdlib_files(min_chars, max_chars)
    if not files:
        raise FileNotFoundError("no standard-library modules of the requested size were found")
    total = sum(f.stat().st_size for f in files)
    stride = max(1, round(total / n_chars))
    order = files[::stride] + [f for i, f in enumerate(files) if i % stride]      # spread, then the rest
    parts, names, size = [], [], 0
    for path in order:
        text = "\n".join(line.rstrip() for line in path.read_text(encoding="ascii").expandtabs(4).splitlines())
        parts.append(text.strip("\n"))
        names.append(path.name)
        size += len(text) + len(SEPARATOR)
        if size >= n_chars:
            break
    return SEPARATOR.join(parts) + "\n", names
