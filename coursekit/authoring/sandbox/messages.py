"""The messages of the grading sandbox, typed.

Three conversations, each with its own types:

- grader -> worker: a :class:`Job` (one submission: its cells, its checks, limits,
  the view), one JSON line;
- children -> worker: frames on a pipe (:func:`send`, :class:`FrameReader`), each a
  JSON header naming one of :data:`FRAMES` plus raw bytes (the copied objects). The
  worker never unpickles what a child sent, and a frame of the wrong shape is a
  protocol violation (the submission tampered with the grader);
- worker -> grader: a :class:`JobResult`, one JSON line.
"""
from __future__ import annotations

import dataclasses
import json
import os
import struct
from dataclasses import dataclass, field

_HEADER = struct.Struct("!II")        # frame: JSON length, payload length
_MAX_JSON = 1 << 20                   # bytes; a bigger frame header is a protocol violation


@dataclass(frozen=True)
class Error:
    """An exception, as the grader keeps it: its type's name and its text."""

    ename: str
    evalue: str

    @classmethod
    def of(cls, err: BaseException | None) -> "Error | None":
        if err is None:
            return None
        try:
            value = str(err)
        except BaseException:
            value = "(the error's message could not be shown)"
        return cls(type(err).__name__, value[:4000])

    @classmethod
    def parse(cls, data) -> "Error | None":
        if data is None:
            return None
        if not isinstance(data, dict) or not isinstance(data.get("ename"), str) \
                or not isinstance(data.get("evalue"), str):
            raise ValueError("bad error record")
        return cls(data["ename"], data["evalue"])


# -- grader -> worker ---------------------------------------------------------------------
@dataclass
class CheckSpec:
    """One check cell: its code (from the solutions), the names it reads from the
    notebook, the names the solution's imports bind, the check modules it loads."""

    gid: str
    code: str
    names: list[str]
    bound: list[str]
    modules: list[str]
    cell: int = -1                   # index among the notebook's code cells


@dataclass
class Cell:
    source: str
    check: int | None = None         # index into Job.checks when this is a check cell


@dataclass
class Job:
    """One submission to grade."""

    cells: list[Cell]
    checks: list[CheckSpec]
    imports: list[str]               # the solution's import statements (warmed up once)
    root: str                        # the submission's folder: the only place written
    work: str                        # its working folder (the notebook's cwd)
    home: str
    tmp: str
    env: dict[str, str]
    deny: list[str]                  # never read (the audit hook's second line)
    allow_read: list[str]
    private: list[str]
    cell_timeout: float
    notebook_timeout: float
    memory_mb: int
    snapshot_mb: int
    threads: int = 1
    file_mb: int = 256               # largest file the notebook may write
    isolate: bool = True
    view: dict | None = None         # coursekit.authoring.view.view(), base set by the worker
    secret: str = ""

    def to_json(self) -> str:
        return json.dumps(dataclasses.asdict(self))

    @classmethod
    def from_dict(cls, data: dict) -> "Job":
        data = dict(data)
        data["cells"] = [Cell(**c) for c in data["cells"]]
        data["checks"] = [CheckSpec(**c) for c in data["checks"]]
        return cls(**data)


# -- worker -> grader ---------------------------------------------------------------------
@dataclass
class Stop:
    """Why a notebook (or a check) was stopped."""

    why: str                         # timeout | notebook-timeout | memory | sandbox | exit | died | protocol
    cell: int | None = None
    detail: str = ""


@dataclass
class CellResult:
    ran: bool = False
    error: Error | None = None


@dataclass
class CheckResult:
    outcome: str                     # passed | failed | not-run | stopped
    error: Error | None = None
    tampered: list[str] = field(default_factory=list)
    copy_errors: dict[str, str] = field(default_factory=dict)
    kernel: Error | None = None      # what the check cell raised inside the notebook
    stop: Stop | None = None


@dataclass
class JobResult:
    cells: list[CellResult]
    stop: Stop | None
    checks: list[CheckResult]
    confinement: str = ""            # "view", "read-only" or "" (see confine.isolate)
    bubblewrap: bool = False         # the worker ran inside bubblewrap
    seconds: float = 0.0

    @property
    def sealed(self) -> bool:
        """Files shut (a view or read-only) and no network."""
        return bool(self.confinement) or self.bubblewrap

    def to_json(self) -> str:
        return json.dumps(dataclasses.asdict(self))

    @classmethod
    def from_dict(cls, data: dict) -> "JobResult":
        def stop(d):
            return Stop(**d) if d else None
        return cls(cells=[CellResult(c["ran"], Error.parse(c["error"])) for c in data["cells"]],
                   stop=stop(data["stop"]),
                   checks=[CheckResult(c["outcome"], Error.parse(c["error"]), c["tampered"],
                                       c["copy_errors"], Error.parse(c["kernel"]), stop(c["stop"]))
                           for c in data["checks"]],
                   confinement=data["confinement"], bubblewrap=data["bubblewrap"],
                   seconds=data["seconds"])


# -- children -> worker: frames -----------------------------------------------------------
@dataclass(frozen=True)
class Hello:
    """The child has shut itself in; ``confinement`` says how."""
    confinement: str


@dataclass(frozen=True)
class CellStart:
    cell: int


@dataclass(frozen=True)
class CellEnd:
    cell: int
    error: Error | None


@dataclass(frozen=True)
class Snapshot:
    """The objects check ``check`` reads: name -> [offset, length] in the payload, or
    {"error": why} where a copy failed; the random state under "\\0state"."""
    check: int
    index: dict


@dataclass(frozen=True)
class Exit:
    """The notebook asked its kernel to exit (``exit()``)."""
    cell: int


@dataclass(frozen=True)
class Done:
    """The notebook ran to its end."""


@dataclass(frozen=True)
class Verdict:
    """A check process's answer."""
    passed: bool
    error: Error | None
    tampered: list
    copy_errors: dict


FRAMES = {cls.__name__: cls for cls in (Hello, CellStart, CellEnd, Snapshot, Exit, Done, Verdict)}
_FIELD_TYPES = {"str": str, "int": int, "bool": bool, "dict": dict, "list": list}


def send(fd: int, message, payload: bytes = b"") -> None:
    """Write one frame (a message's JSON header + raw payload) to a pipe."""
    header = {"type": type(message).__name__, **dataclasses.asdict(message)}
    data = json.dumps(header).encode()
    view = memoryview(_HEADER.pack(len(data), len(payload)) + data + payload)
    while view:
        view = view[os.write(fd, view):]


def parse(header) -> object:
    """The typed message a frame's header holds; ValueError when it is not one."""
    if not isinstance(header, dict) or header.get("type") not in FRAMES:
        raise ValueError("bad frame")
    cls = FRAMES[header["type"]]
    values = {}
    for f in dataclasses.fields(cls):
        value = header.get(f.name)
        if f.type.startswith("Error"):
            value = Error.parse(value)
        elif not isinstance(value, _FIELD_TYPES[f.type]) or \
                (f.type == "int" and isinstance(value, bool)):
            raise ValueError(f"bad frame field {f.name}")
        values[f.name] = value
    return cls(**values)


class FrameReader:
    """Parse frames from a child without ever unpickling what it sent."""

    def __init__(self, max_payload: int):
        self.buf = bytearray()
        self.max_payload = max_payload

    def feed(self, data: bytes) -> list[tuple[object, bytes]]:
        self.buf += data
        frames = []
        while len(self.buf) >= _HEADER.size:
            n_json, n_payload = _HEADER.unpack_from(self.buf)
            if n_json > _MAX_JSON or n_payload > self.max_payload:
                raise ValueError("frame too large")
            end = _HEADER.size + n_json + n_payload
            if len(self.buf) < end:
                break
            header = json.loads(bytes(self.buf[_HEADER.size:_HEADER.size + n_json]))
            frames.append((parse(header), bytes(self.buf[_HEADER.size + n_json:end])))
            del self.buf[:end]
        return frames
