"""nbgrader in its own virtual environment, never a dependency of the course.

Used by tests/test_nbgrader.py (does nbgrader take every chapter as it is?) and by
benchmarks/grading.py (coursekit grade against nbgrader autograde).

1. ``nbgrader_venv()`` makes, once, a virtual environment holding only ``nbgrader==0.9.6``
   (one ``pip install``), kept in the temporary folder under a name keyed by nbgrader's
   and Python's versions, and reused by later runs;
2. ``NbgraderCourse`` lays out an nbgrader course folder (``source/<assignment>/``,
   ``submitted/<student>/<assignment>/``, ``nbgrader_config.py``) and runs nbgrader's own
   commands in it. The notebooks' kernels run *this* interpreter (the course's .venv, with
   torch and coursekit) through a ``python3`` kernelspec override, so the nbgrader
   environment needs neither.
"""
from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
import textwrap
from pathlib import Path

NBGRADER_VERSION = "0.9.6"
NBGRADER_SPEC = f"nbgrader=={NBGRADER_VERSION}"


class NbgraderUnavailable(RuntimeError):
    """nbgrader could not be installed (no network, no package index)."""


def default_venv() -> Path:
    """Where the nbgrader environment is kept: keyed by nbgrader's and Python's versions."""
    return Path(tempfile.gettempdir()) / (f"coursekit-nbgrader-{NBGRADER_VERSION}-"
                                          f"py{sys.version_info[0]}.{sys.version_info[1]}")


def nbgrader_venv(path: Path | None = None, quiet: bool = True) -> Path:
    """The python of a virtual environment with nbgrader (made on first use, then reused).

    Raises:
        NbgraderUnavailable: pip could not install nbgrader (its output is in the message).
    """
    path = Path(path) if path else default_venv()
    python = path / "bin" / "python"
    stamp = path / ".coursekit-ready"       # written only after a complete install
    if stamp.is_file() and python.exists():
        return python
    if not quiet:
        print(f"installing {NBGRADER_SPEC} into {path} (first run only) ...", flush=True)
    made = subprocess.run([sys.executable, "-m", "venv", "--clear", str(path)],
                          capture_output=True, text=True)
    if made.returncode:
        raise NbgraderUnavailable(f"cannot make a virtual environment at {path}:\n{made.stderr[-2000:]}")
    pip = subprocess.run([str(python), "-m", "pip", "install", "-q", NBGRADER_SPEC],
                         capture_output=True, text=True)
    if pip.returncode:
        raise NbgraderUnavailable(f"pip install {NBGRADER_SPEC} failed (no network?):\n"
                                  f"{(pip.stderr or pip.stdout)[-2000:]}")
    stamp.write_text(NBGRADER_SPEC + "\n")
    return python


SCORES = textwrap.dedent("""
    import json, sys
    from nbgrader.api import Gradebook, MissingEntry
    db, assignment = sys.argv[1], sys.argv[2]
    scores = {}
    with Gradebook(db) as gb:
        for student in gb.students:
            for notebook in gb.find_assignment(assignment).notebooks:
                try:
                    nb = gb.find_submission_notebook(notebook.name, assignment, student.id)
                except MissingEntry:
                    continue
                scores.setdefault(student.id, {})[notebook.name] = {
                    g.name: [g.auto_score, g.score, g.max_score, g.cell_type] for g in nb.grades}
    print(json.dumps(scores))
""")


class NbgraderCourse:
    """An nbgrader course folder at ``root`` whose commands run with ``python``'s nbgrader.

    Args:
        python: the nbgrader environment's interpreter (``nbgrader_venv()``).
        root: an empty folder for the course.
        cell_timeout: seconds nbgrader lets one cell run.
        env: extra environment for nbgrader and the notebooks' kernels.
    """

    def __init__(self, python: Path, root: Path, cell_timeout: int = 120,
                 env: dict[str, str] | None = None):
        self.python, self.root = Path(python), Path(root)
        self.bin = self.python.parent
        self.root.mkdir(parents=True, exist_ok=True)
        self.db = f"sqlite:///{self.root / 'gradebook.db'}"
        (self.root / "nbgrader_config.py").write_text(textwrap.dedent(f"""
            c = get_config()
            c.CourseDirectory.course_id = "coursekit"
            c.CourseDirectory.root = {str(self.root)!r}
            c.CourseDirectory.db_url = {self.db!r}
            c.Execute.timeout = {cell_timeout}
            c.ExecutePreprocessor.timeout = {cell_timeout}
        """))
        jupyter = self.root.parent / (self.root.name + "-jupyter")
        kernels = jupyter / "data" / "kernels" / "python3"   # kernels run this interpreter
        kernels.mkdir(parents=True, exist_ok=True)
        (kernels / "kernel.json").write_text(json.dumps({
            "argv": [sys.executable, "-m", "ipykernel_launcher", "-f", "{connection_file}"],
            "display_name": "Python 3 (coursekit)", "language": "python"}))
        self.env = dict(os.environ, JUPYTER_PATH=str(jupyter / "data"), MPLBACKEND="Agg",
                        JUPYTER_CONFIG_DIR=str(jupyter / "config"),
                        PATH=f"{self.bin}{os.pathsep}{os.environ.get('PATH', '')}",  # alembic
                        **(env or {}))

    def add_source(self, assignment: str, notebook: Path) -> None:
        """Copy an instructor's (solution) notebook into ``source/<assignment>/``."""
        folder = self.root / "source" / assignment
        folder.mkdir(parents=True, exist_ok=True)
        (folder / Path(notebook).name).write_bytes(Path(notebook).read_bytes())

    def submit(self, student: str, assignment: str, notebook: Path) -> None:
        """Put a notebook in ``submitted/<student>/<assignment>/``."""
        folder = self.root / "submitted" / student / assignment
        folder.mkdir(parents=True, exist_ok=True)
        (folder / Path(notebook).name).write_bytes(Path(notebook).read_bytes())

    def nbgrader(self, *args: str) -> subprocess.CompletedProcess:
        """Run ``nbgrader ARGS`` in the course folder (output captured, never raises)."""
        return subprocess.run([str(self.bin / "nbgrader"), *args], cwd=self.root, env=self.env,
                              capture_output=True, text=True)

    def generate(self, assignment: str) -> subprocess.CompletedProcess:
        """``nbgrader generate_assignment``: writes ``release/<assignment>/``."""
        return self.nbgrader("generate_assignment", assignment, "--force")

    def autograde(self, assignment: str) -> subprocess.CompletedProcess:
        return self.nbgrader("autograde", assignment, "--create", "--force")

    def released(self, assignment: str) -> Path:
        return self.root / "release" / assignment

    def scores(self, assignment: str) -> dict:
        """{student: {notebook: {grade_id: [auto_score, score, max_score, cell_type]}}}."""
        out = subprocess.run([str(self.python), "-c", SCORES, self.db, assignment], env=self.env,
                             capture_output=True, text=True, check=True).stdout
        return json.loads(out)

    def version(self) -> str:
        return subprocess.run([str(self.python), "-c", "import nbgrader; print(nbgrader.__version__)"],
                              capture_output=True, text=True).stdout.strip()
