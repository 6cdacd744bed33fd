"""Benchmark ``coursekit grade`` against nbgrader's autograde step on one class.

    .venv/bin/python benchmarks/grading.py                  # toy torch chapter, 60 learners
    .venv/bin/python benchmarks/grading.py --chapter solutions/02_neurons_and_layers.ipynb

1. Build a class of N submissions of one chapter (default: the torch chapter that the
   tests build, ``tests/coursebuilder.py``; or any solution notebook): correct ones,
   partly answered or wrong ones, unanswered ones, and broken ones (a syntax error,
   not JSON, 0 bytes).
2. Grade it with ``coursekit.authoring.grade.grade`` (workers started inside the timing).
3. Grade the same files with ``nbgrader autograde`` (nbgrader 0.9.6 in its own virtual
   environment, made on the first run and shared with tests/test_nbgrader.py: see
   tests/nbgrader_env.py; never a project dependency). Its kernels run this interpreter
   (torch and coursekit), through a ``python3`` kernelspec override.
4. Print both throughputs, their ratio, and whether the scores agree per check cell on
   every submission that both could grade. The last line is one JSON object.

Both graders run in fast mode (``COURSEKIT_FAST=1``) with the same per-cell time limit.
Timings on a busy machine are noisy; the ratio is measured in one run, one after the other.
"""
from __future__ import annotations

import argparse
import json
import os
import random
import shutil
import sys
import tempfile
import time
from pathlib import Path

import nbformat

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests"))

from coursekit.authoring.release import (BEGIN_SOLUTION, END_SOLUTION, make_exercise,  # noqa: E402
                                         nbgrader_meta)
from coursekit.authoring.grade import Settings, grade  # noqa: E402
from nbgrader_env import NbgraderCourse, default_venv, nbgrader_venv  # noqa: E402

ASSIGNMENT = "ps1"


# -- 1. the class -----------------------------------------------------------------------
def _answer_cells(nb) -> list[int]:
    return [i for i, c in enumerate(nb.cells)
            if nbgrader_meta(c).get("solution") and c.cell_type == "code"]


def _fill(source: str, mode: str) -> str:
    """An answer cell's solution source as a learner might write it: the answer
    ('right'), or a wrong one ('wrong': the answer region replaced by ``pass``)."""
    out, inside = [], False
    for line in source.split("\n"):
        if line.strip() == BEGIN_SOLUTION:
            inside = True
            if mode == "wrong":
                out.append(line[: len(line) - len(line.lstrip())] + "pass")
        elif line.strip() == END_SOLUTION:
            inside = False
        elif not inside or mode == "right":
            out.append(line)
    return "\n".join(out)


def make_class(solution_path: Path, folder: Path, n: int, seed: int = 0) -> dict[str, Path]:
    """Write N submissions of one chapter as folder/<learner>/<chapter>.ipynb."""
    solution = nbformat.read(solution_path, as_version=4)
    exercise = make_exercise(solution, solution_path.name)
    offset = 1                                   # the release adds a banner cell first
    answers = _answer_cells(solution)
    rng = random.Random(seed)
    subs = {}
    for i in range(n):
        learner = f"learner-{i:02d}"
        kind = ["right"] * 4 + ["partly"] * 3 + ["unanswered", "syntax", "junk"]
        kind = kind[i % 10]
        nb = nbformat.from_dict(exercise)
        if kind in ("right", "partly", "syntax"):
            for j, index in enumerate(answers):
                mode = "right" if kind != "partly" else rng.choice(["right", "wrong", "stub"])
                if mode != "stub":
                    nb.cells[index + offset].source = _fill(solution.cells[index].source, mode)
            if kind == "syntax":
                nb.cells[answers[0] + offset].source += "\nthis line is not python ("
        path = folder / learner / solution_path.name
        path.parent.mkdir(parents=True)
        if kind == "junk":
            path.write_bytes(b"" if i % 20 == 9 else b'{"cells": [oops')
        else:
            nbformat.write(nb, path)
        subs[learner] = path
    return subs


# -- 2. coursekit grade -------------------------------------------------------------------
def run_coursekit(subs: dict[str, Path], solutions: Path, out: Path, jobs: int,
                  cell_timeout: int) -> tuple[float, dict]:
    start = time.perf_counter()
    rows = grade(list(subs.values()), out, Settings(solutions=solutions, jobs=jobs,
                                                    cell_timeout=cell_timeout), progress=False)
    seconds = time.perf_counter() - start
    return seconds, {r.learner: dict(r.points) for r in rows}


# -- 3. nbgrader autograde --------------------------------------------------------------------
def run_nbgrader(python: Path, subs: dict[str, Path], solution: Path, work: Path,
                 cell_timeout: int) -> tuple[float, dict, str]:
    course = NbgraderCourse(python, work / "nbgrader-course", cell_timeout,
                            env={"COURSEKIT_FAST": "1"})
    course.add_source(ASSIGNMENT, solution)
    for learner, path in subs.items():
        course.submit(learner, ASSIGNMENT, path)
    setup = course.generate(ASSIGNMENT)
    if setup.returncode:
        raise RuntimeError("nbgrader generate_assignment failed:\n" + setup.stderr[-3000:])
    start = time.perf_counter()
    proc = course.autograde(ASSIGNMENT)
    seconds = time.perf_counter() - start
    if "Traceback" in proc.stderr and "autograde" not in proc.stderr:
        print(proc.stderr[-3000:], file=sys.stderr)
    scores = {learner: {gid: [auto, score] for gid, (auto, score, *_) in cells.items()}
              for learner, notebooks in course.scores(ASSIGNMENT).items()
              for name, cells in notebooks.items() if name == solution.stem}
    return seconds, scores, course.version()


# -- 4. comparison -----------------------------------------------------------------------
def graded_by_nbgrader(theirs: dict) -> dict:
    """{learner: {grade_id: score}} for the submissions nbgrader autograded (a file it
    could not read gets a gradebook entry with no automatic score)."""
    return {learner: {gid: auto for gid, (auto, _) in cells.items()}
            for learner, cells in theirs.items()
            if cells and all(auto is not None for auto, _ in cells.values())}


def compare(ours: dict, theirs: dict) -> tuple[int, list[str]]:
    """Check cells compared, and those whose points differ."""
    compared, mismatches = 0, []
    for learner, cells in sorted(theirs.items()):
        for gid, score in sorted(cells.items()):
            if gid not in ours.get(learner, {}):
                continue                       # not a check cell of ours (e.g. a manual cell)
            compared += 1
            if abs(float(score) - ours[learner][gid]) > 1e-9:
                mismatches.append(f"{learner}/{gid}: coursekit {ours[learner][gid]:g}, "
                                  f"nbgrader {score:g}")
    return compared, mismatches


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--chapter", help="a solution notebook (default: the test's torch chapter)")
    parser.add_argument("-n", type=int, default=60, help="submissions in the class (default 60)")
    parser.add_argument("--jobs", type=int, default=0, help="coursekit workers (default: cores)")
    parser.add_argument("--cell-timeout", type=int, default=120)
    parser.add_argument("--nbgrader-venv", default=str(default_venv()),
                        help="nbgrader's virtual environment (made on first use)")
    parser.add_argument("--skip-nbgrader", action="store_true")
    parser.add_argument("--keep", action="store_true", help="keep the work folder (printed)")
    args = parser.parse_args(argv)
    jobs = args.jobs or os.cpu_count() or 1
    work = Path(tempfile.mkdtemp(prefix="coursekit-bench-"))
    try:
        if args.chapter:
            solution = Path(args.chapter).resolve()
            solutions = work / "solutions"
            solutions.mkdir()
            shutil.copy(solution, solutions / solution.name)
            solution = solutions / solution.name
        else:
            from coursebuilder import make_tensor_course
            solution, _ = make_tensor_course(work)
            solutions = solution.parent
        subs = make_class(solution, work / "submissions", args.n)
        print(f"class: {len(subs)} submissions of {solution.name}; {os.cpu_count()} cores, "
              f"load average {os.getloadavg()[0]:.1f}", flush=True)

        ours_s, ours = run_coursekit(subs, solutions, work / "grades", jobs, args.cell_timeout)
        figures = {"chapter": solution.name, "submissions": len(subs), "jobs": jobs,
                   "cpus": os.cpu_count(), "coursekit_seconds": round(ours_s, 2),
                   "coursekit_per_minute": round(60 * len(subs) / ours_s, 1)}
        print(f"coursekit grade:     {ours_s:7.1f} s  {figures['coursekit_per_minute']:7.1f} "
              f"submissions/minute ({jobs} workers)", flush=True)
        if not args.skip_nbgrader:
            python = nbgrader_venv(Path(args.nbgrader_venv), quiet=False)
            theirs_s, theirs, version = run_nbgrader(python, subs, solution, work,
                                                     args.cell_timeout)
            theirs = graded_by_nbgrader(theirs)
            compared, mismatches = compare(ours, theirs)
            figures.update({
                "nbgrader_version": version, "nbgrader_seconds": round(theirs_s, 2),
                "nbgrader_per_minute": round(60 * len(subs) / theirs_s, 1),
                "ratio": round(theirs_s / ours_s, 2),
                "nbgrader_graded": len(theirs), "check_cells_compared": compared,
                "identical_scores": not mismatches, "mismatches": mismatches[:20]})
            print(f"nbgrader autograde:  {theirs_s:7.1f} s  {figures['nbgrader_per_minute']:7.1f} "
                  f"submissions/minute (nbgrader {version})")
            print(f"ratio: coursekit grades {figures['ratio']:.2f}x as many submissions per "
                  f"minute as nbgrader")
            print(f"scores: {compared} check cells compared on the {len(theirs)} submissions "
                  f"nbgrader could grade; {'all identical' if not mismatches else 'MISMATCHES:'}")
            for line in mismatches[:20]:
                print("  " + line)
        figures["load_average"] = round(os.getloadavg()[0], 1)
        print(json.dumps(figures))
        return figures
    finally:
        if args.keep:
            print(f"work folder kept: {work}", file=sys.stderr)
        else:
            shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
