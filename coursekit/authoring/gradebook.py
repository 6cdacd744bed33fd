"""The grader's reports: one row per submission, written as ``gradebook.csv``,
``summary.md``, ``feedback/<learner>/<chapter>.md``, ``marks-template.csv`` (when the
chapters have written answers) and ``rows.json`` (the rows as data).

Written answers (nbgrader's manually graded answers) wait for a person: their points are
in ``max`` and in the ``awaiting`` column until the instructor records them in a marks
file (``read_marks``: columns learner, notebook, grade_id, points, comment), which
``coursekit grade --manual`` and ``coursekit gradebook merge --manual`` apply to the
rows (``apply_marks``) before the reports are written. ``rows.json`` keeps the rows as
graded, without marks, so a marks file can be corrected and applied again.

``rows.json`` is what ``coursekit gradebook merge`` reads: a class graded in shards
(``coursekit grade --shard K/N``, one job per machine) merges into the same bytes that
one unsharded run writes, because both go through ``finish_rows`` and ``write_reports``.
"""
from __future__ import annotations

import csv
import hashlib
import io
import json
import math
import shutil
from dataclasses import asdict, dataclass, field
from pathlib import Path

ROWS_FORMAT = "coursekit-gradebook/1"


@dataclass
class GradeRow:
    """One submission's grades."""

    learner: str
    notebook: str
    points: dict[str, float] = field(default_factory=dict)      # grade_id -> points earned
    max_points: dict[str, float] = field(default_factory=dict)  # grade_id -> points possible
    reasons: list[str] = field(default_factory=list)            # lost points and flags
    feedback: dict[str, str] = field(default_factory=dict)      # grade_id -> check's message
    path: str = ""                                              # the submitted file
    sealed: bool = False        # ran with a read-only file system and no network (Linux)
    sandbox: str = ""           # which confinement ran (said in the gradebook)
    manual: dict[str, float] = field(default_factory=dict)      # written answer -> points a person gives
    answers: dict[str, str] = field(default_factory=dict)       # written answer -> the learner's text
    comments: dict[str, str] = field(default_factory=dict)      # written answer -> the marker's comment

    @property
    def total(self) -> float:
        return sum(self.points.values())

    @property
    def awaiting(self) -> list[str]:
        """The written answers no person has marked yet (their points are not in total)."""
        return [g for g in self.manual if g not in self.points]

    @property
    def awaiting_points(self) -> float:
        return sum(self.manual[g] for g in self.awaiting)

    @property
    def max_total(self) -> float:
        return sum(self.max_points.values())


def _fmt(x: float) -> str:
    return f"{x:g}"


def _cell(text: str) -> str:
    """A CSV value a spreadsheet will not run as a formula."""
    return "'" + text if text[:1] in ("=", "+", "-", "@", "\t", "\r") else text


def write_reports(rows: list[GradeRow], out: Path) -> None:
    """Write gradebook.csv, summary.md and feedback/ (same inputs -> same bytes)."""
    out.mkdir(parents=True, exist_ok=True)
    columns: list[str] = []
    for row in rows:
        columns.extend(g for g in row.max_points if g not in columns)
    written = any(row.manual for row in rows)        # the "awaiting" column, only then
    buf = io.StringIO()
    writer = csv.writer(buf, lineterminator="\n")
    writer.writerow(["learner", "notebook", *columns, "total", "max",
                     *(["awaiting"] if written else []), "sandbox", "reasons"])
    for row in rows:
        writer.writerow([_cell(row.learner), _cell(row.notebook),
                         *[_fmt(row.points[c]) if c in row.points else
                           AWAITING if c in row.manual else "" for c in columns],
                         _fmt(row.total), _fmt(row.max_total),
                         *([_fmt(row.awaiting_points)] if written else []),
                         _cell(row.sandbox or "not run"),
                         _cell("; ".join(r.replace("\n", " ") for r in row.reasons))])
    (out / "gradebook.csv").write_text(buf.getvalue(), encoding="utf-8")
    if written:
        write_marks_template(rows, out / MARKS_TEMPLATE)

    ran = [r for r in rows if r.sandbox]
    viewed = sum(1 for r in ran if "allow-listed" in r.sandbox)
    sealed = sum(1 for r in ran if r.sealed) - viewed
    sandbox = (f"Sandbox: {viewed} of {len(ran)} notebook(s) that ran saw only the allow-listed "
               "files, with no network" + ("." if viewed == len(ran) else
               f"; {sealed} saw every file read-only, {len(ran) - viewed - sealed} ran with the "
               "audit hook only (see the sandbox column of gradebook.csv and docs/grading.md)."))
    lines = ["# Grading summary", "", f"{len(rows)} submission(s).", "", sandbox, ""]
    if written:
        waiting = sum(len(r.awaiting) for r in rows)
        marked = sum(1 for r in rows for g in r.manual if g in r.points and g in r.answers)
        lines += [f"Written answers: {waiting} wait for a person "
                  f"({_fmt(sum(r.awaiting_points for r in rows))} points, not in the totals); "
                  f"{marked} marked. Fill in the points column of {MARKS_TEMPLATE} (the "
                  "answers are in feedback/) and pass it with --manual (docs/grading.md).", ""]
    lines += ["| learner | notebook | points | lost points |", "|---|---|---|---|"]
    for row in rows:
        lost = "<br>".join(_md(r) for r in row.reasons) or "none"
        waiting = f" ({_fmt(row.awaiting_points)} awaiting a person)" if row.awaiting else ""
        lines.append(f"| {_md(row.learner)} | {_md(row.notebook)} | {_fmt(row.total)} / "
                     f"{_fmt(row.max_total)}{waiting} | {lost} |")
    if columns:
        lines += ["", "| exercise | passed | of |", "|---|---|---|"]
        for gid in columns:
            having = [r for r in rows if gid in r.max_points]
            passed = sum(1 for r in having if r.points.get(gid, 0) > 0)
            if any(gid in r.manual for r in having):
                waiting = sum(1 for r in having if gid in r.awaiting)
                lines.append(f"| {gid} (written) | {passed} ({waiting} awaiting a person) "
                             f"| {len(having)} |")
            else:
                lines.append(f"| {gid} | {passed} | {len(having)} |")
    (out / "summary.md").write_text("\n".join(lines) + "\n", encoding="utf-8")

    feedback_root = out / "feedback"
    if feedback_root.exists():
        shutil.rmtree(feedback_root)
    for row in rows:
        folder = feedback_root / row.learner
        folder.mkdir(parents=True, exist_ok=True)
        text = [f"# {row.notebook}: {_fmt(row.total)} / {_fmt(row.max_total)} points", ""]
        if row.awaiting:
            text[0] += f" ({_fmt(row.awaiting_points)} awaiting a person)"
        for gid, possible in row.max_points.items():
            got = row.points.get(gid, 0.0)
            if gid in row.awaiting:
                text.append(f"## {gid}: awaiting an instructor / {_fmt(possible)}")
            elif gid in row.manual and gid in row.comments:
                text.append(f"## {gid}: {_fmt(got)} / {_fmt(possible)} (marked by an instructor)")
            else:
                text.append(f"## {gid}: {_fmt(got)} / {_fmt(possible)}")
            text.append("")
            if gid in row.comments and row.comments[gid]:
                text.append(f"Instructor's comment: {row.comments[gid]}")
                text.append("")
            if gid in row.answers:
                text.extend(["Written answer:", "", "```",
                             row.answers[gid].rstrip().replace("```", "'''"), "```", ""])
                continue
            text.append("```")
            text.append(row.feedback.get(gid, "not graded").rstrip().replace("```", "'''"))
            text.append("```")
            text.append("")
        other = [r for r in row.reasons if not any(r.startswith(g + ":") for g in row.max_points)
                 or "restored" in r or "tamper" in r or "saved output" in r]
        if other:
            text.append("## Notes")
            text.extend(f"- {r}" for r in other)
        (folder / (Path(row.notebook).stem + ".md")).write_text("\n".join(text) + "\n",
                                                                encoding="utf-8")


AWAITING = "awaiting"                 # gradebook.csv's value for an unmarked written answer
MARKS_TEMPLATE = "marks-template.csv"
MARKS_COLUMNS = ["learner", "notebook", "grade_id", "points", "comment"]


def write_marks_template(rows: list[GradeRow], path: Path) -> None:
    """A marks file to fill in: one line per written answer a learner wrote (the points of
    those already marked filled in), with the maximum and the answer's start to read."""
    buf = io.StringIO()
    writer = csv.writer(buf, lineterminator="\n")
    writer.writerow([*MARKS_COLUMNS, "max", "answer"])
    for row in rows:
        for gid, possible in row.manual.items():
            if gid not in row.answers:
                continue
            got = _fmt(row.points[gid]) if gid in row.points else ""
            answer = " ".join(row.answers[gid].split())
            writer.writerow([_cell(row.learner), _cell(row.notebook), _cell(gid), got,
                             _cell(row.comments.get(gid, "")), _fmt(possible),
                             _cell(answer[:300] + ("..." if len(answer) > 300 else ""))])
    path.write_text(buf.getvalue(), encoding="utf-8")


@dataclass
class Mark:
    """One line of a marks file: the points a person gave one written answer."""

    line: int
    learner: str
    notebook: str
    grade_id: str
    points: float
    comment: str


def read_marks(path: Path) -> list[Mark]:
    """Read a marks file: CSV with columns learner, notebook, grade_id, points and an
    optional comment (other columns are ignored; a line with no points is skipped).

    Raises:
        ValueError: the file cannot be read or lacks a column, a points value is not a
            number >= 0, or one answer is marked twice. The message names the line.
    """
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8-sig")
    except (OSError, UnicodeDecodeError) as err:
        raise ValueError(f"cannot read the marks file {path}: {err}") from None
    reader = csv.DictReader(io.StringIO(text))
    missing = [c for c in MARKS_COLUMNS[:4] if c not in (reader.fieldnames or [])]
    if missing:
        raise ValueError(f"{path}: a marks file has the columns {', '.join(MARKS_COLUMNS)} "
                         f"(comment may be left out); missing: {', '.join(missing)}")
    marks: list[Mark] = []
    seen: dict[tuple[str, str, str], int] = {}
    for number, record in enumerate(reader, 2):
        value = {k: (record.get(k) or "").strip() for k in MARKS_COLUMNS}
        if not value["points"]:
            continue                                  # not marked yet
        try:
            points = float(value["points"])
        except ValueError:
            points = math.nan
        if not math.isfinite(points) or points < 0:
            raise ValueError(f"{path}, line {number}: points must be a number >= 0, "
                             f"got {value['points']!r}")
        key = (value["learner"], value["notebook"], value["grade_id"])
        if not all(key):
            raise ValueError(f"{path}, line {number}: learner, notebook and grade_id are "
                             "all needed")
        if key in seen:
            raise ValueError(f"{path}, line {number}: {key[0]}'s {key[2]} in {key[1]} is "
                             f"already marked on line {seen[key]}")
        seen[key] = number
        marks.append(Mark(number, *key, points, value["comment"]))
    return marks


def apply_marks(rows: list[GradeRow], marks: list[Mark], source: str = "marks file") -> list[GradeRow]:
    """The rows with the marks recorded (points and comments of written answers). A
    learner with several submissions of one notebook gets the mark on each.

    Raises:
        ValueError: a mark names a learner, notebook or written answer the rows do not
            have, or gives more points than the answer is worth.
    """
    rows = [GradeRow(**{**asdict(r), "reasons": list(r.reasons)}) for r in rows]
    for mark in marks:
        where = f"{source}, line {mark.line}"
        mine = [r for r in rows if mark.learner in (r.learner, _cell(r.learner))]
        if not mine:
            raise ValueError(f"{where}: no submission by a learner {mark.learner!r}")
        mine = [r for r in mine if mark.notebook in (r.notebook, _cell(r.notebook))]
        if not mine:
            raise ValueError(f"{where}: {mark.learner} submitted no {mark.notebook!r}")
        for row in mine:
            if mark.grade_id not in row.manual:
                kind = ("an automatically graded check" if mark.grade_id in row.max_points
                        else "not a cell of this notebook")
                raise ValueError(f"{where}: {mark.grade_id!r} is {kind}; the written answers "
                                 f"of {row.notebook} are: {', '.join(row.manual) or 'none'}")
            if mark.points > row.manual[mark.grade_id] + 1e-9:
                raise ValueError(f"{where}: {mark.points:g} points for {mark.grade_id}, which "
                                 f"is worth at most {row.manual[mark.grade_id]:g}")
            row.points[mark.grade_id] = mark.points
            row.comments[mark.grade_id] = mark.comment
            row.reasons = [r for r in row.reasons if not r.startswith(mark.grade_id + ":")]
    return rows


def _md(text: str) -> str:
    return text.replace("|", "\\|").replace("\n", " ")


def finish_rows(rows: list[GradeRow]) -> list[GradeRow]:
    """Sort the rows and note learners with several submissions of one notebook.

    Works on the raw rows of a whole class (so a merge of shards gets the same notes)."""
    rows = [GradeRow(**{**asdict(r), "reasons": list(r.reasons)}) for r in rows]
    seen: dict[tuple[str, str], int] = {}
    for row in rows:
        seen[(row.learner, row.notebook)] = seen.get((row.learner, row.notebook), 0) + 1
    for row in rows:
        if seen[(row.learner, row.notebook)] > 1:
            row.reasons.insert(0, f"note: {seen[(row.learner, row.notebook)]} submissions of "
                                  f"{row.notebook} for {row.learner}; each has a row")
    rows.sort(key=lambda r: (r.learner, r.notebook, r.path))
    return rows


def secret_tag(secret: str) -> str:
    """A short fingerprint of the grading secret: shards must share one to be merged."""
    return hashlib.sha256(("coursekit-shard\0" + secret).encode()).hexdigest()[:16]


def write_rows(raw: list[GradeRow], out: Path, secret: str, shard: tuple[int, int] | None) -> None:
    """Write ``rows.json``: the raw rows (before ``finish_rows``) and where they came from."""
    out.mkdir(parents=True, exist_ok=True)
    data = {"format": ROWS_FORMAT, "secret": secret_tag(secret),
            "shard": list(shard) if shard else None,
            "rows": [asdict(r) for r in sorted(raw, key=lambda r: (r.learner, r.notebook, r.path))]}
    (out / "rows.json").write_text(json.dumps(data, indent=1, sort_keys=True) + "\n", encoding="utf-8")


def merge(shard_dirs: list[Path], out: Path, marks: Path | None = None) -> list[GradeRow]:
    """Join the ``rows.json`` of shards into one gradebook in ``out``, with the written
    answers' marks from the file ``marks`` when given (see ``read_marks``).

    Raises ValueError when a folder holds no gradebook, when the shards were graded with
    different secrets (their hidden cases differ), or when a shard is missing or repeated.
    """
    raw: list[GradeRow] = []
    tags, shards = set(), []
    for folder in shard_dirs:
        file = Path(folder) / "rows.json"
        try:
            data = json.loads(file.read_text(encoding="utf-8"))
        except (OSError, ValueError) as err:
            raise ValueError(f"{file}: not a coursekit gradebook ({err}); pass the --out "
                             "folders of `coursekit grade --shard K/N`") from None
        if data.get("format") != ROWS_FORMAT:
            raise ValueError(f"{file}: unknown format {data.get('format')!r}")
        tags.add(data["secret"])
        shards.append(tuple(data["shard"]) if data["shard"] else None)
        raw.extend(GradeRow(**r) for r in data["rows"])
    if len(tags) > 1:
        raise ValueError("the shards were graded with different secrets, so their hidden cases "
                         "differ; grade every shard with the same --secret")
    if None not in shards and shards:
        n = {s[1] for s in shards}
        got = sorted(s[0] for s in shards)
        if len(n) != 1 or got != list(range(1, n.pop() + 1)):
            raise ValueError(f"shards {sorted(shards)} do not make one whole class: pass every "
                             "shard's folder once")
    rows = finish_rows(raw)
    if marks is not None:
        rows = apply_marks(rows, read_marks(marks), str(marks))
    write_reports(rows, Path(out))
    write_rows(raw, Path(out), "", None)
    data = json.loads((Path(out) / "rows.json").read_text(encoding="utf-8"))
    data["secret"] = tags.pop() if tags else data["secret"]
    (Path(out) / "rows.json").write_text(json.dumps(data, indent=1, sort_keys=True) + "\n", encoding="utf-8")
    return rows
