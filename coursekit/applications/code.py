"""Generated Python measured: does it parse, and does it pass unit tests (chapter 15).

* ``parse_rate`` / ``statement_parse_rate``: ``ast.parse`` on whole samples and on their
  top-level statements, applied to the model's samples and to windows of real code alike;
* ``TASKS``: function-completion problems (a signature and a docstring, then unit tests);
* ``run_tests``: one candidate program in a separate, confined Python process with a timeout;
* ``pass_at_k``: the unbiased estimator of Chen et al. (2021), in its product form.
"""
from __future__ import annotations

import ast
import math
import os
import random
import subprocess
import sys
import tempfile
from dataclasses import dataclass


# ---------------------------------------------------------------------------------------
# Parsing
# ---------------------------------------------------------------------------------------
def complete_lines(text: str) -> str:
    """The complete lines of ``text``, dedented: from its first line at the text's smallest
    indentation to its last newline, with that indentation removed. A cut-off last line and a
    start in the middle of a deeper block belong to the window, not the code, so both go; a
    window inside a class (every line indented) keeps its methods."""
    lines = text.split("\n")[:-1]                     # the part after the last newline is cut off
    indents = [len(line) - len(line.lstrip(" ")) for line in lines if line.strip()]
    if not indents:
        return ""
    least = min(indents)
    for i, line in enumerate(lines):
        if line.strip() and len(line) - len(line.lstrip(" ")) == least:
            return "\n".join(l[least:] for l in lines[i:]) + "\n"
    return ""


def parses(text: str) -> bool:
    """True if ``text`` is valid Python for ``ast.parse`` (a syntax error, a null byte or an
    overflow of the parser's nesting count as not parsing)."""
    try:
        ast.parse(text)
    except (SyntaxError, ValueError, MemoryError, RecursionError):
        return False
    return True


def _scan(line: str, state: tuple[int, str]) -> tuple[int, str]:
    """Bracket depth and open triple quote (or "") after ``line``, given the two before it."""
    depth, quote = state
    i = 0
    while i < len(line):
        if quote:
            if line[i] == "\\":
                i += 2
                continue
            if line.startswith(quote, i):
                i, quote = i + len(quote), ""
                continue
            i += 1
            continue
        ch = line[i]
        if ch == "#":
            break
        if ch in "\"'":
            quote = ch * 3 if line.startswith(ch * 3, i) else ch
            i += len(quote)
            continue
        depth += (ch in "([{") - (ch in ")]}")
        i += 1
    if quote in ("'", '"'):                  # a one-line string cannot run on to the next line
        quote = ""
    return max(depth, 0), quote


def top_level_statements(text: str) -> list[str]:
    """``complete_lines(text)`` cut before each unindented line that starts a new statement.

    A line starts one when no bracket or triple-quoted string is open before it (a bracket left
    open is forgotten after a blank line, so that one broken statement does not swallow the
    rest), it is not a continuation (``else``, ``elif``, ``except``, ``finally``) and the
    statement before it holds more than comments and decorators. The last piece is dropped
    unless ``text`` ends after a blank line: the window may have cut it short.
    """
    body = complete_lines(text)
    pieces, current, state = [], [], (0, "")
    continuation = ("else", "elif", "except", "finally")
    for line in body.split("\n"):
        after_blank = state[1] == "" and bool(current) and not current[-1].strip()
        starts = ((state == (0, "") or after_blank) and line.strip() and not line[0].isspace()
                  and not line.startswith(continuation) and not current_ends_open(current)
                  and any(c.strip() and not c.lstrip().startswith(("#", "@")) for c in current))
        if starts:
            pieces.append("\n".join(current))
            current, state = [], (0, "")
        current.append(line)
        state = _scan(line, state)
    if current and body.endswith("\n\n") and state == (0, ""):
        pieces.append("\n".join(current))
    return [p for p in pieces if any(l.strip() and not l.lstrip().startswith("#") for l in p.split("\n"))]


def current_ends_open(lines: list[str]) -> bool:
    """True if the last line ends with a backslash (the statement goes on)."""
    return bool(lines) and lines[-1].rstrip().endswith("\\")


def parse_rate(texts: list[str]) -> float:
    """Share of ``texts`` whose ``complete_lines`` parse as a whole (an empty remainder counts as not)."""
    if not texts:
        raise ValueError("parse_rate needs at least one text")
    return sum(bool(body.strip()) and parses(body) for body in map(complete_lines, texts)) / len(texts)


def statement_parse_rate(texts: list[str]) -> tuple[float, int]:
    """Share of the top-level statements of ``texts`` that parse on their own, and how many there were."""
    pieces = [p for t in texts for p in top_level_statements(t)]
    if not pieces:
        return float("nan"), 0
    return sum(map(parses, pieces)) / len(pieces), len(pieces)


def data_windows(text: str, n: int, length: int, seed: int = 0) -> list[str]:
    """``n`` windows of ``length`` characters of ``text``, each starting at a random blank line
    (what a sample that continues the prompt "\\n\\n" starts from)."""
    if len(text) <= length + 1:
        raise ValueError(f"the text has {len(text)} characters, too few for windows of {length}")
    rng = random.Random(seed)
    out = []
    for _ in range(n):
        start = text.find("\n\n", rng.randrange(len(text) - length - 1))
        start = start + 2 if 0 <= start < len(text) - length - 2 else 0
        out.append(text[start:start + length])
    return out


# ---------------------------------------------------------------------------------------
# Function completion
# ---------------------------------------------------------------------------------------
@dataclass(frozen=True)
class Task:
    """A function to complete: the prompt the model continues, and the tests it must pass."""

    name: str     # the function's name
    prompt: str   # "def name(args):\n    \"\"\"docstring\"\"\"\n": the model writes the body
    tests: str    # assert statements that call the function


def _task(name: str, args: str, doc: str, tests: list[str]) -> Task:
    return Task(name, f'def {name}({args}):\n    """{doc}"""\n', "\n".join(f"assert {t}" for t in tests) + "\n")


TASKS = [
    _task("add", "a, b", "Return the sum of a and b.", ["add(2, 3) == 5", "add(-1, 1) == 0"]),
    _task("is_empty", "items", "Return True if items has no elements.",
          ["is_empty([]) is True", "is_empty([1]) is False"]),
    _task("first", "items", "Return the first element of items.", ["first([4, 5]) == 4", "first('xy') == 'x'"]),
    _task("square", "x", "Return x multiplied by itself.", ["square(3) == 9", "square(-2) == 4"]),
    _task("to_upper", "s", "Return the string s in upper case.", ["to_upper('ab') == 'AB'"]),
    _task("count", "items, value", "Return how many times value occurs in items.",
          ["count([1, 2, 1], 1) == 2", "count([], 3) == 0"]),
    _task("last", "items", "Return the last element of items.", ["last([4, 5]) == 5", "last('xy') == 'y'"]),
    _task("negate", "x", "Return minus x.", ["negate(3) == -3", "negate(-2) == 2"]),
]


def function_body(completion: str) -> str:
    """The part of a completion that belongs to the function: up to the first unindented line."""
    lines = []
    for line in completion.split("\n"):
        if line.strip() and not line[0].isspace():
            break
        lines.append(line)
    return "\n".join(lines).rstrip() + "\n"


def _confine() -> None:                                # runs in the child before Python starts
    import resource
    resource.setrlimit(resource.RLIMIT_CPU, (2, 2))                       # seconds of CPU
    resource.setrlimit(resource.RLIMIT_AS, (512 * 2**20, 512 * 2**20))   # bytes of memory
    resource.setrlimit(resource.RLIMIT_FSIZE, (0, 0))                     # no file may be written
    resource.setrlimit(resource.RLIMIT_NOFILE, (16, 16))
    os.setsid()


def run_tests(program: str, timeout: float = 5.0) -> bool:
    """Run ``program`` (a candidate function and its asserts) in a separate confined Python process.

    The child runs isolated (``python -I -S``: no site packages, no user paths, no environment
    variables), in an empty temporary folder that is deleted afterwards, with 2 s of CPU, 512 MB
    of memory, files limited to 0 bytes (a write fails when the file is flushed) and a
    wall-clock ``timeout``. Returns True if it exits with status 0. This limits damage from
    generated code on one machine; it is not a security boundary for untrusted code.
    """
    with tempfile.TemporaryDirectory() as folder:
        try:
            done = subprocess.run([sys.executable, "-I", "-S", "-c", program], cwd=folder, env={},
                                  stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                                  stderr=subprocess.DEVNULL, timeout=timeout,
                                  preexec_fn=_confine if os.name == "posix" else None)
        except subprocess.TimeoutExpired:
            return False
    return done.returncode == 0


def check_completion(task: Task, completion: str, timeout: float = 5.0) -> bool:
    """True if ``task.prompt + function_body(completion)`` passes ``task.tests``."""
    return run_tests(task.prompt + function_body(completion) + "\n\n" + task.tests, timeout=timeout)


# ---------------------------------------------------------------------------------------
# pass@k
# ---------------------------------------------------------------------------------------
def pass_at_k(n: int, c: int, k: int) -> float:
    """The unbiased estimate of pass@k from ``n`` samples of which ``c`` passed (Chen et al., 2021).

    pass@k = 1 - C(n - c, k) / C(n, k): the chance that k samples drawn without replacement from
    the n contain at least one that passes. Written as 1 - prod_{i = n - c + 1}^{n} (1 - k / i), which
    needs no large binomial coefficients.
    """
    for name, v in (("n", n), ("c", c), ("k", k)):
        if int(v) != v or v < 0:
            raise ValueError(f"{name} must be a whole number >= 0, got {v!r}")
    if not 0 <= c <= n or not 1 <= k <= n:
        raise ValueError(f"need 0 <= c <= n and 1 <= k <= n, got n={n}, c={c}, k={k}")
    if n - c < k:
        return 1.0
    return 1.0 - math.prod(1.0 - k / i for i in range(n - c + 1, n + 1))


# ---------------------------------------------------------------------------------------
# Sampling
# ---------------------------------------------------------------------------------------
def sample_code(run, n: int, length: int = 300, temperature: float = 0.8, seed: int = 0) -> list[str]:
    """``n`` samples of ``length`` characters from a code model, each continuing a blank line."""
    from coursekit.prompting import complete
    if n < 1 or length < 1:
        raise ValueError(f"n and length must be positive, got {n} and {length}")
    return complete(run, ["\n\n"] * n, length, temperature=temperature, seed=seed, stop=None)


def complete_tasks(run, tasks: list[Task], n: int, length: int = 100, temperature: float = 0.8,
                   seed: int = 0) -> dict[str, list[str]]:
    """``n`` sampled completions of each task's prompt (the function bodies), by task name."""
    from coursekit.prompting import complete
    out = {}
    for i, task in enumerate(tasks):
        out[task.name] = complete(run, [task.prompt] * n, length, temperature=temperature,
                                  seed=seed + 7919 * i, stop=None)
    return out
