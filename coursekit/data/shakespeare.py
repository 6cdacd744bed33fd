"""The Tiny Shakespeare text (1,115,394 bytes): an opt-in data set, checked by SHA-256.

Nothing is downloaded unless a learner asks for it with ``download=True``. The file is
looked for, in order, at ``path``, at ``$COURSEKIT_SHAKESPEARE``, and in the cache
folder (``$COURSEKIT_CACHE`` or ``~/.cache/coursekit``).
"""
from __future__ import annotations

import hashlib
import os
import shutil
import tempfile
import urllib.error
import urllib.request
from pathlib import Path

URL = "https://raw.githubusercontent.com/karpathy/char-rnn/master/data/tinyshakespeare/input.txt"
SHA256 = "86c4e6aa9db7c042ec79f339dcb96d42b0075e16b8fc2e86bf0ca57e2dc565ed"
N_BYTES = 1_115_394
FILENAME = "tinyshakespeare.txt"


class DataError(RuntimeError):
    """A data file is missing, corrupt, or could not be downloaded."""


def cache_dir() -> Path:
    """Folder where opt-in data sets are kept: ``$COURSEKIT_CACHE`` or ``~/.cache/coursekit``."""
    return Path(os.environ.get("COURSEKIT_CACHE", Path.home() / ".cache" / "coursekit"))


def _verify(path: Path) -> None:
    data = path.read_bytes()
    digest = hashlib.sha256(data).hexdigest()
    if len(data) != N_BYTES or digest != SHA256:
        raise DataError(
            f"{path} is corrupt or not the Tiny Shakespeare text: {len(data):,} bytes with "
            f"sha256 {digest[:12]}..., expected {N_BYTES:,} bytes with sha256 {SHA256[:12]}... "
            f"Delete it and load again with download=True, or copy a good file there.")


def load_shakespeare(path: str | os.PathLike | None = None, download: bool = False) -> str:
    """Return the Tiny Shakespeare text, verified against its known size and SHA-256.

    Args:
        path: a local copy to use (it is verified, never changed).
        download: fetch the text into the cache folder when no local copy is found.
    Raises:
        DataError: the file is missing (with how to get it), corrupt, or the download
            failed (for example when offline).
    """
    candidates = [Path(p) for p in (path, os.environ.get("COURSEKIT_SHAKESPEARE")) if p]
    candidates.append(cache_dir() / FILENAME)
    for candidate in candidates:
        if candidate.is_file():
            _verify(candidate)
            return candidate.read_text(encoding="utf-8")
        if candidate != candidates[-1]:
            raise DataError(f"no file at {candidate}; check the path")
    target = candidates[-1]
    if not download:
        raise DataError(
            f"Tiny Shakespeare is an opt-in data set and is not in {target.parent}. "
            "Call load_shakespeare(download=True) once with internet access, or pass "
            "path=... to a copy you have.")
    target.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.NamedTemporaryFile(dir=target.parent, delete=False, suffix=".part") as tmp:
        try:
            with urllib.request.urlopen(URL, timeout=30) as response:
                shutil.copyfileobj(response, tmp)
        except (urllib.error.URLError, OSError) as err:
            os.unlink(tmp.name)
            raise DataError(
                f"could not download Tiny Shakespeare ({err}); are you offline? The course "
                "runs without it: the default text corpus is coursekit.data.story_corpus().") from err
    try:
        _verify(Path(tmp.name))
    except DataError:
        os.unlink(tmp.name)
        raise
    os.replace(tmp.name, target)
    return target.read_text(encoding="utf-8")
