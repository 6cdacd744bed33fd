"""How a failing check looks in a notebook: the teacher's message, not a stack trace.

A check that fails raises :class:`~coursekit.checks.assertions.CheckFailure` from deep
inside coursekit. IPython would print every frame on the way (the check module, the
helpers, the line that builds the reference value), thirty lines that bury the four-part
message and show how the reference is computed. ``ck.setup()`` installs
:func:`install`, an IPython handler for that one exception type, which shows:

1. the frames of the learner's own code only (their cell, and their function where it
   raised), with IPython's usual colours;
2. the check's message.

The cell still ends in an error (nbval and ``Run All`` stop there as before). For
instructors and authors, ``ck.checks.full_tracebacks()`` (or the environment variable
``COURSEKIT_FULL_TRACEBACKS=1``) brings the complete traceback back.
"""
from __future__ import annotations

import os
import types
from pathlib import Path

import coursekit
from coursekit.checks.assertions import CheckFailure

_PACKAGE = str(Path(coursekit.__file__).resolve().parent)
_SHOW_ALL = {"on": os.environ.get("COURSEKIT_FULL_TRACEBACKS", "") not in ("", "0")}


def full_tracebacks(on: bool = True) -> None:
    """Show (``on=True``) or hide coursekit's own frames when a check fails."""
    _SHOW_ALL["on"] = bool(on)


def _ours(frame: types.FrameType) -> bool:
    name = frame.f_code.co_filename
    try:
        path = str(Path(name).resolve())
    except (OSError, ValueError):
        return False
    return path.startswith(_PACKAGE) or "/IPython/" in path or "/torch/" in path


def learner_frames(tb: types.TracebackType | None) -> types.TracebackType | None:
    """The same traceback with coursekit's, torch's and IPython's frames taken out."""
    kept = []
    while tb is not None:
        if not _ours(tb.tb_frame):
            kept.append(tb)
        tb = tb.tb_next
    new = None
    for old in reversed(kept):
        new = types.TracebackType(new, old.tb_frame, old.tb_lasti, old.tb_lineno)
    return new


def _handler(shell, etype, value, tb, tb_offset=None):
    if _SHOW_ALL["on"]:
        stb = shell.InteractiveTB.structured_traceback(etype, value, tb, tb_offset=tb_offset)
        shell._showtraceback(etype, value, stb)
        return stb
    stb: list[str] = []
    cause = value.__cause__
    if cause is not None and not isinstance(cause, CheckFailure):
        mine = learner_frames(cause.__traceback__)
        if mine is not None:      # where the learner's own function raised
            cause.__cause__, cause.__context__ = None, None
            stb += shell.InteractiveTB.structured_traceback(type(cause), cause, mine)
            stb.append("\nThe check above caught that error:")
    cell = learner_frames(tb)
    if cell is not None:
        saved = value.__cause__, value.__context__, value.__suppress_context__
        value.__cause__, value.__context__, value.__suppress_context__ = None, None, True
        try:
            frames = shell.InteractiveTB.structured_traceback(etype, value, cell)
        finally:
            value.__cause__, value.__context__, value.__suppress_context__ = saved
        stb += frames[:-1]        # the last entry is the message, printed once below
    red, reset = ("\x1b[0;31m", "\x1b[0m") if getattr(shell, "colors", "nocolor").lower() != "nocolor" else ("", "")
    stb.append(f"{red}CheckFailure{reset}: {value}")
    stb.append("(only your own code is shown; ck.checks.full_tracebacks() shows coursekit's too)")
    shell._showtraceback(etype, value, stb)
    return stb


def install() -> bool:
    """Register the handler with the running IPython shell; False outside IPython."""
    try:
        from IPython import get_ipython
    except ImportError:
        return False
    shell = get_ipython()
    if shell is None:
        return False
    shell.set_custom_exc((CheckFailure,), _handler)
    return True
