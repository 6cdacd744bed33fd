"""What an answer may not use, enforced on its code and while it runs.

An exercise that asks for ReLU is not answered by ``torch.relu``; one that asks for a
backward rule is not answered by handing the work to coursekit's own ``Value``. Each
check lists its bans (:func:`ban`) and runs the learner's code through :func:`scan`
(before it runs) and :func:`no_banned_calls` (while it runs)::

    BANS = [ban("torch.relu", "torch.Tensor.relu", "torch.nn.functional.relu",
                ops=["aten::relu"], reason="the exercise is to write ReLU yourself")]
    got = call(name, relu, z, bans=BANS)   # scan + run-time guard + plain tensors

1. **On the code** (:func:`scan`). The learner's function, the functions and classes it
   reaches through its globals, closures and defaults, and every nested function, are
   read from their bytecode (so it also works on a copy that ``coursekit grade`` made
   with cloudpickle, which has no source file). A global or closure variable that *is*
   a banned object (an alias such as ``r = torch.relu``) is found by identity; a chain
   of attribute loads (``torch.nn.functional.relu``) is resolved on modules and classes;
   a method loaded from an unknown object (``z.relu()``) is matched by its name.
2. **While it runs** (:func:`no_banned_calls`). Each banned Python attribute is swapped
   for a tripwire, and a ``TorchDispatchMode`` watches the ATen operators, so that
   ``getattr(torch, "re" + "lu")``, ``torch.ops.aten.relu`` or a call deep inside a
   helper is caught too. The tripwire raises :class:`BannedCall`, a ``BaseException``
   that ``except Exception`` does not swallow; and the guard remembers what it saw, so
   a bare ``except:`` in the answer does not hide it either.

Either way the learner gets the check's usual four-part message naming the call and the
reason, in the notebook and in ``coursekit grade`` alike.
"""
from __future__ import annotations

import contextlib
import dis
import functools
import importlib
import inspect
import types
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from typing import Any

import torch
from torch.utils._python_dispatch import TorchDispatchMode


@dataclass(frozen=True)
class Ban:
    """Things an answer may not use, and why.

    Attributes:
        targets: dotted paths of Python objects (``"torch.relu"``,
            ``"coursekit.autograd.Value.tanh"``); the first names the ban in messages.
        reason: why the exercise refuses them, said to the learner.
        ops: ATen operator names (``"aten::relu"``) refused while the answer runs,
            whichever Python name reached them.
    """

    targets: tuple[str, ...]
    reason: str
    ops: tuple[str, ...] = ()

    @property
    def label(self) -> str:
        return self.targets[0] if self.targets else self.ops[0]


def ban(*targets: str, reason: str, ops: Iterable[str] = ()) -> Ban:
    """A :class:`Ban` of ``targets`` (dotted paths) and ATen ``ops``, with its reason."""
    if not targets and not ops:
        raise ValueError("ban() needs at least one dotted path or ATen operator")
    return Ban(tuple(targets), reason, tuple(ops))


class BannedCall(BaseException):
    """Raised inside the learner's code when it reaches something its exercise bans.

    A ``BaseException`` so that the answer's own ``except Exception`` cannot swallow it.
    """

    def __init__(self, ban_: Ban, what: str):
        super().__init__(f"{what} is not allowed here: {ban_.reason}")
        self.ban = ban_
        self.what = what


@dataclass
class Finding:
    """One banned use found in the learner's code."""

    ban: Ban
    what: str          # how it was reached, e.g. "torch.nn.functional.relu"
    where: str         # "line 3 of relu" or "" when unknown


# -- resolving dotted paths ---------------------------------------------------------------

@functools.lru_cache(maxsize=None)
def _resolve(path: str) -> tuple[Any, Any, str] | None:
    """``"torch.nn.functional.relu"`` -> (owner object, the object, attribute name)."""
    parts = path.split(".")
    for cut in range(len(parts) - 1, 0, -1):
        try:
            owner: Any = importlib.import_module(".".join(parts[:cut]))
        except ImportError:
            continue
        try:
            for attr in parts[cut:-1]:
                owner = getattr(owner, attr)
            return owner, getattr(owner, parts[-1]), parts[-1]
        except AttributeError:
            return None
    return None


def _banned_objects(bans: Iterable[Ban]) -> dict[int, tuple[Ban, str, Any]]:
    found: dict[int, tuple[Ban, str, Any]] = {}
    for b in bans:
        for path in b.targets:
            hit = _resolve(path)
            if hit is not None:
                obj = hit[1]
                found[id(obj)] = (b, path, obj)
                raw = inspect.getattr_static(hit[0], hit[2], None)   # the function behind a method
                if raw is not None and raw is not obj:
                    found[id(raw)] = (b, path, raw)
    return found


def _method_names(bans: Iterable[Ban]) -> dict[str, tuple[Ban, str]]:
    """Banned methods of classes (``torch.Tensor.relu``), by attribute name."""
    names: dict[str, tuple[Ban, str]] = {}
    for b in bans:
        for path in b.targets:
            hit = _resolve(path)
            if hit is not None and isinstance(hit[0], type):
                names[hit[2]] = (b, path)
    return names


# -- 1. reading the answer's code ---------------------------------------------------------

_OURS = ("torch", "coursekit", "einops", "numpy", "math", "builtins", "functools",
         "collections", "typing", "abc", "matplotlib", "sklearn", "tqdm")


def _is_library(obj: Any) -> bool:
    module = getattr(obj, "__module__", None) or ""
    return module.split(".")[0] in _OURS


def _code_objects(code: types.CodeType) -> Iterator[types.CodeType]:
    yield code
    for const in code.co_consts:
        if isinstance(const, types.CodeType):
            yield from _code_objects(const)


def _line_of(code: types.CodeType, offset: int) -> int | None:
    for start, end, line in code.co_lines():
        if start <= offset < end:
            return line
    return None


class _Scanner:
    def __init__(self, bans: list[Ban]):
        self.objects = _banned_objects(bans)
        self.methods = _method_names(bans)
        self.findings: list[Finding] = []
        self.seen: set[int] = set()

    def value(self, value: Any, where: str, depth: int = 0) -> None:
        """A value the answer holds (a global, a closure cell, a default)."""
        hit = self.objects.get(id(value))
        if hit is not None and hit[2] is value:
            self.findings.append(Finding(hit[0], hit[1], where))
            return
        if isinstance(value, functools.partial):
            self.value(value.func, where, depth)
        elif isinstance(value, types.MethodType):
            self.value(value.__func__, where, depth)
        elif isinstance(value, (types.FunctionType, type)) and not _is_library(value):
            self.thing(value, depth + 1)
        elif isinstance(value, torch.nn.Module) and not _is_library(type(value)):
            self.thing(type(value), depth + 1)
        elif isinstance(value, (list, tuple, set, frozenset)) and depth < 2:
            for item in list(value)[:50]:
                self.value(item, where, depth + 1)
        elif isinstance(value, dict) and depth < 2:
            for item in list(value.values())[:50]:
                self.value(item, where, depth + 1)

    def thing(self, obj: Any, depth: int = 0) -> None:
        """A function or class of the learner's, and what it reaches."""
        if id(obj) in self.seen or depth > 6:
            return
        self.seen.add(id(obj))
        if isinstance(obj, type):
            for base in obj.__mro__:
                if base is object or _is_library(base):
                    continue
                for attr in vars(base).values():
                    if isinstance(attr, (staticmethod, classmethod)):
                        attr = attr.__func__
                    if isinstance(attr, property):
                        for f in (attr.fget, attr.fset):
                            if f is not None:
                                self.thing(f, depth + 1)
                    elif isinstance(attr, types.FunctionType):
                        self.thing(attr, depth + 1)
            return
        if isinstance(obj, functools.partial):
            self.value(obj, f"{getattr(obj.func, '__name__', 'partial')}", depth)
            return
        fn = getattr(obj, "__func__", obj)
        if not isinstance(fn, types.FunctionType):
            self.value(fn, "", depth)
            return
        label = fn.__name__
        for d in (fn.__defaults__ or ()) + tuple((fn.__kwdefaults__ or {}).values()):
            self.value(d, f"a default argument of {label}", depth)
        for cell in fn.__closure__ or ():
            try:
                self.value(cell.cell_contents, f"a variable {label} closes over", depth)
            except ValueError:   # an empty cell
                pass
        self.code(fn.__code__, fn.__globals__, label, fn, depth)

    def code(self, code: types.CodeType, env: dict, label: str, fn, depth: int) -> None:
        builtins = env.get("__builtins__", {})
        builtins = builtins if isinstance(builtins, dict) else vars(builtins)
        for sub in _code_objects(code):
            free = sub.co_cellvars + sub.co_freevars
            current: Any = None        # the object an attribute chain has reached
            path = ""
            for ins in dis.get_instructions(sub):
                where = ""
                line = _line_of(sub, ins.offset)
                if line is not None:
                    rel = line - code.co_firstlineno + 1
                    where = f"line {rel} of {label}" if rel > 0 else f"{label}"
                if ins.opname in ("LOAD_GLOBAL", "LOAD_NAME"):
                    name = ins.argval
                    if name in env:
                        current, path = env[name], name
                    elif name in builtins:
                        current, path = builtins[name], name
                    else:
                        current, path = None, ""
                    if current is not None:
                        self.value(current, where, depth)
                elif ins.opname == "LOAD_DEREF" and fn is not None and ins.argval in free:
                    current, path = None, ""        # closure cells were read in thing()
                elif ins.opname in ("LOAD_ATTR", "LOAD_METHOD"):
                    name = ins.argval
                    if current is not None and isinstance(current, (types.ModuleType, type)):
                        try:
                            nxt = inspect.getattr_static(current, name)
                        except AttributeError:
                            nxt = getattr(current, name, None)
                        path = f"{path}.{name}"
                        hit = self.objects.get(id(nxt))
                        if hit is not None and hit[2] is nxt:
                            self.findings.append(Finding(hit[0], path, where))
                        if isinstance(nxt, (staticmethod, classmethod)):
                            nxt = nxt.__func__
                        current = nxt if isinstance(nxt, (types.ModuleType, type)) else None
                        if current is None and nxt is not None:
                            self.value(nxt, where, depth)
                    else:
                        if name in self.methods:
                            b, target = self.methods[name]
                            self.findings.append(Finding(b, f".{name}() (that is {target})", where))
                        current, path = None, ""
                else:
                    current, path = None, ""


def scan(obj: Any, bans: Iterable[Ban]) -> list[Finding]:
    """Every banned use that ``obj`` (a function, class or module instance) reaches."""
    bans = list(bans)
    if not bans:
        return []
    scanner = _Scanner(bans)
    target = type(obj) if isinstance(obj, torch.nn.Module) else obj
    scanner.thing(target)
    unique: dict[tuple[str, str], Finding] = {}
    for f in scanner.findings:
        unique.setdefault((f.ban.label, f.what), f)
    return list(unique.values())


# -- 2. watching the answer run -----------------------------------------------------------

@dataclass
class Guard:
    """What the run-time guard saw (the first banned call, if any)."""

    bans: list[Ban]
    hits: list[BannedCall] = field(default_factory=list)

    def trip(self, b: Ban, what: str) -> None:
        err = BannedCall(b, what)
        self.hits.append(err)
        raise err


class _OpWatch(TorchDispatchMode):
    def __init__(self, guard: Guard, ops: dict[str, Ban]):
        super().__init__()
        self.guard, self.ops = guard, ops

    def __torch_dispatch__(self, func, types_, args=(), kwargs=None):
        name = func._schema.name
        if name in self.ops:
            self.guard.trip(self.ops[name], f"the operator {name.replace('::', '.')}")
        return func(*args, **(kwargs or {}))


def _tripwire(guard: Guard, b: Ban, path: str, original: Any):
    @functools.wraps(original)
    def tripwire(*args, **kwargs):
        guard.trip(b, path)
    return tripwire


@contextlib.contextmanager
def no_banned_calls(bans: Iterable[Ban]) -> Iterator[Guard]:
    """Run the block with every banned attribute and ATen operator turned into a tripwire.

    Yields the :class:`Guard`; after the block, ``guard.hits`` lists what was reached
    (even when the answer swallowed the :class:`BannedCall`).
    """
    bans = list(bans)
    guard = Guard(bans)
    swapped: list[tuple[Any, str, Any]] = []
    ops: dict[str, Ban] = {}
    try:
        for b in bans:
            for op in b.ops:
                ops[op] = b
            for path in b.targets:
                hit = _resolve(path)
                if hit is None:
                    continue
                owner, obj, attr = hit
                raw = inspect.getattr_static(owner, attr)
                wire = _tripwire(guard, b, path, obj)
                if isinstance(raw, staticmethod):
                    wire = staticmethod(wire)
                elif isinstance(raw, classmethod):
                    wire = classmethod(wire)
                try:
                    setattr(owner, attr, wire)
                except (AttributeError, TypeError):
                    continue
                swapped.append((owner, attr, raw))
        if ops:
            with _OpWatch(guard, ops):
                yield guard
        else:
            yield guard
    finally:
        for owner, attr, raw in reversed(swapped):
            setattr(owner, attr, raw)
