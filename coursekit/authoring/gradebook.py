"""The grader's reports: one row per submission, written as ``gradebook.csv``,
``summary.md``, ``feedback/<learner>/<chapter>.md`` and ``rows.json`` (the rows as data).

``rows.json`` is what ``coursekit gradebook merge`` reads: a class graded in shards
(``coursekit grade --shard K/N``, one job per machine) merges into the same bytes that
one unsharded run writes, because both go through ``finish_rows`` and ``write_reports``.
"""
from __future__ import annotations

import csv
import hashlib
import io
import json
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

    @property
    def total(self) -> float:
        return sum(self.points.values())

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
    buf = io.StringIO()
    writer = csv.writer(buf, lineterminator="\n")
    writer.writerow(["learner", "notebook", *columns, "total", "max", "sandbox", "reasons"])
    for row in rows:
        writer.writerow([_cell(row.learner), _cell(row.notebook),
                         *[_fmt(row.points[c]) if c in row.points else "" for c in columns],
                         _fmt(row.total), _fmt(row.max_total), _cell(row.sandbox or "not run"),
                         _cell("; ".join(r.replace("\n", " ") for r in row.reasons))])
    (out / "gradebook.csv").write_text(buf.getvalue(), encoding="utf-8")

    ran = [r for r in rows if r.sandbox]
    sealed = sum(1 for r in ran if r.sealed)
    sandbox = (f"Sandbox: {sealed} of {len(ran)} notebook(s) that ran were sealed in namespaces "
               "(read-only files, no network)" + ("." if sealed == len(ran) else
               f"; {len(ran) - sealed} ran with the audit hook only (see the sandbox column of "
               "gradebook.csv and docs/grading.md)."))
    lines = ["# Grading summary", "", f"{len(rows)} submission(s).", "", sandbox, "",
             "| learner | notebook | points | lost points |", "|---|---|---|---|"]
    for row in rows:
        lost = "<br>".join(_md(r) for r in row.reasons) or "none"
        lines.append(f"| {_md(row.learner)} | {_md(row.notebook)} | {_fmt(row.total)} / "
                     f"{_fmt(row.max_total)} | {lost} |")
    if columns:
        lines += ["", "| exercise | passed | of |", "|---|---|---|"]
        for gid in columns:
            having = [r for r in rows if gid in r.max_points]
            passed = sum(1 for r in having if r.points.get(gid, 0) > 0)
            lines.append(f"| {gid} | {passed} | {len(having)} |")
    (out / "summary.md").write_text("\n".join(lines) + "\n", encoding="utf-8")

    feedback_root = out / "feedback"
    if feedback_root.exists():
        shutil.rmtree(feedback_root)
    for row in rows:
        folder = feedback_root / row.learner
        folder.mkdir(parents=True, exist_ok=True)
        text = [f"# {row.notebook}: {_fmt(row.total)} / {_fmt(row.max_total)} points", ""]
        for gid, possible in row.max_points.items():
            got = row.points.get(gid, 0.0)
            text.append(f"## {gid}: {_fmt(got)} / {_fmt(possible)}")
            text.append("")
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


def merge(shard_dirs: list[Path], out: Path) -> list[GradeRow]:
    """Join the ``rows.json`` of shards into one gradebook in ``out``.

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
    write_reports(rows, Path(out))
    write_rows(raw, Path(out), "", None)
    data = json.loads((Path(out) / "rows.json").read_text(encoding="utf-8"))
    data["secret"] = tags.pop() if tags else data["secret"]
    (Path(out) / "rows.json").write_text(json.dumps(data, indent=1, sort_keys=True) + "\n", encoding="utf-8")
    return rows
