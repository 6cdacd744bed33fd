"""The ``coursekit`` command: release exercises, grade submissions, check the set-up."""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

COURSE_ROOT = Path(__file__).resolve().parents[1]


def _course_dir(name: str) -> Path:
    """``./name`` when it exists, else the folder beside an editable install of coursekit."""
    here = Path.cwd() / name
    return here if here.is_dir() else COURSE_ROOT / name


def cmd_release(args) -> int:
    import nbformat

    from coursekit.authoring.release import ReleaseError, nbgrader_problems, release

    solutions = Path(args.solutions) if args.solutions else _course_dir("solutions")
    for path in sorted(solutions.glob("*.ipynb")):
        for problem in nbgrader_problems(nbformat.read(path, as_version=4)):
            print(f"coursekit release: warning: {path.name}, {problem}", file=sys.stderr)
    exercises = Path(args.exercises) if args.exercises else solutions.parent / "exercises"
    try:
        stale = release(solutions, exercises, check=args.check)
    except ReleaseError as err:
        print(f"coursekit release: {err}", file=sys.stderr)
        return 2
    if args.check:
        if stale:
            print("exercises/ is out of date with solutions/; run `coursekit release`. Stale:",
                  file=sys.stderr)
            for name in stale:
                print(f"  {exercises / name}", file=sys.stderr)
            return 1
        print(f"exercises/ is up to date ({len(list(solutions.glob('*.ipynb')))} notebooks)")
        return 0
    for name in stale:
        print(f"wrote {exercises / name}")
    print(f"{len(stale)} exercise notebook(s) updated" if stale else "nothing to update")
    return 0


def cmd_grade(args) -> int:
    from coursekit.authoring.grade import Settings, grade

    solutions = Path(args.solutions) if args.solutions else _course_dir("solutions")
    settings = Settings(solutions=solutions, cell_timeout=args.cell_timeout,
                        notebook_timeout=args.timeout, jobs=args.jobs, fast=not args.full,
                        memory_mb=args.memory, device=args.device, secret=args.secret or "")
    missing = [p for p in args.submissions if not Path(p).exists()]
    for p in missing:
        print(f"coursekit grade: warning: {p} does not exist; it gets a row with that reason",
              file=sys.stderr)
    shard = None
    if args.shard:
        try:
            k, n = (int(v) for v in args.shard.split("/"))
        except ValueError:
            print(f"coursekit grade: --shard must look like 2/8 (shard 2 of 8), got {args.shard!r}",
                  file=sys.stderr)
            return 2
        shard = (k, n)
    try:
        rows = grade([Path(p) for p in args.submissions], Path(args.out), settings,
                     progress=not args.quiet, shard=shard,
                     marks=Path(args.manual) if args.manual else None)
    except ValueError as err:
        print(f"coursekit grade: {err}", file=sys.stderr)
        return 2
    for row in rows:
        waiting = f"  ({row.awaiting_points:g} awaiting a person)" if row.awaiting else ""
        print(f"{row.learner:>16}  {row.notebook:<40} {row.total:g} / {row.max_total:g}{waiting}")
    print(f"wrote {Path(args.out) / 'gradebook.csv'} and {Path(args.out) / 'summary.md'}")
    return 0


def cmd_merge(args) -> int:
    from coursekit.authoring.gradebook import merge

    try:
        rows = merge([Path(p) for p in args.shards], Path(args.out),
                     marks=Path(args.manual) if args.manual else None)
    except ValueError as err:
        print(f"coursekit gradebook merge: {err}", file=sys.stderr)
        return 2
    print(f"merged {len(rows)} rows from {len(args.shards)} shard(s) into "
          f"{Path(args.out) / 'gradebook.csv'} and {Path(args.out) / 'summary.md'}")
    return 0


def cmd_html(args) -> int:
    from coursekit.authoring.site import build_site

    notebooks = Path(args.notebooks) if args.notebooks else _course_dir("notebooks")
    pages = build_site(notebooks, Path(args.out), run=args.execute, fast=args.fast,
                       timeout=args.timeout)
    for page in pages:
        print(f"{page.number}  {page.title}")
    print(f"wrote {len(pages)} pages and {Path(args.out) / 'index.html'}")
    return 0


def cmd_doctor(args) -> int:
    from coursekit import doctor
    return doctor.main()


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="coursekit", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)

    p = sub.add_parser("release", help="write exercises/ from solutions/")
    p.add_argument("--check", action="store_true",
                   help="write nothing; exit 1 and name the stale notebooks if exercises/ is out of date")
    p.add_argument("--solutions", help="solutions folder (default ./solutions)")
    p.add_argument("--exercises", help="exercises folder (default beside solutions)")
    p.set_defaults(func=cmd_release)

    p = sub.add_parser("grade", help="grade submitted exercise notebooks in a sandbox",
                       description="Grade submissions laid out as SUBMISSIONS/<learner>/<chapter>.ipynb "
                                   "(the folder names the learner). See docs/grading.md.")
    p.add_argument("submissions", nargs="+", help="submitted .ipynb files")
    p.add_argument("--out", required=True, help="folder for gradebook.csv, summary.md, feedback/")
    p.add_argument("--solutions", help="solutions folder, the answer key (default ./solutions)")
    p.add_argument("--cell-timeout", type=int, default=120,
                   help="seconds per cell and per check (default 120)")
    p.add_argument("--timeout", type=int, default=900, help="seconds per notebook (default 900)")
    p.add_argument("--memory", type=int, default=2048,
                   help="MB of memory a notebook may use (default 2048)")
    p.add_argument("--device", default="cpu",
                   help="torch device the notebooks see (default cpu: the same grades anywhere)")
    p.add_argument("--jobs", type=int, default=0, help="parallel submissions (default: CPU cores)")
    p.add_argument("--full", action="store_true", help="grade with full training budgets, not fast mode")
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    p.add_argument("--secret", help="seeds the hidden tests' random cases (default: "
                                    "$COURSEKIT_GRADING_SECRET, else one kept in OUT/.grading-secret)")
    p.add_argument("--shard", help="grade shard K of N of the submissions, e.g. 2/8 (every shard "
                                   "gets the same list and --secret; merge with `coursekit gradebook merge`)")
    p.add_argument("--manual", metavar="MARKS.csv",
                   help="marks of the written answers: a CSV with columns learner, notebook, "
                        "grade_id, points, comment (start from OUT/marks-template.csv)")
    p.set_defaults(func=cmd_grade)

    p = sub.add_parser("gradebook", help="work with graded folders")
    gsub = p.add_subparsers(dest="action", required=True)
    m = gsub.add_parser("merge", help="join the --out folders of sharded runs into one gradebook")
    m.add_argument("shards", nargs="+", help="the --out folders of `coursekit grade --shard K/N`")
    m.add_argument("--out", required=True, help="folder for the merged gradebook.csv, summary.md, feedback/")
    m.add_argument("--manual", metavar="MARKS.csv",
                   help="marks of the written answers (as for `coursekit grade --manual`)")
    m.set_defaults(func=cmd_merge)

    p = sub.add_parser("html", help="render the lesson notebooks to static HTML with an index")
    p.add_argument("--out", default="site", help="output folder (default ./site)")
    p.add_argument("--notebooks", help="lesson folder (default ./notebooks)")
    p.add_argument("--execute", action="store_true", help="run each notebook first (in a temporary copy)")
    p.add_argument("--fast", action="store_true", help="with --execute: run in fast mode")
    p.add_argument("--timeout", type=int, default=600, help="seconds per cell with --execute")
    p.set_defaults(func=cmd_html)

    p = sub.add_parser("doctor", help="check that the environment is ready for the course")
    p.set_defaults(func=cmd_doctor)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    return int(args.func(args) or 0)


if __name__ == "__main__":
    sys.exit(main())
