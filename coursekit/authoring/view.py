"""What a notebook under grading can see of the file system: an allow-list.

A submission sees its own grading folder (read-write), the Python installation with
its site-packages, the coursekit package, the course's model cache and the system's
shared libraries (read-only), a fresh ``/proc`` of its own processes and a few
devices (``/dev/null``, ``/dev/zero``, ``/dev/urandom``...). Nothing else exists for
it: not the instructor's home, not ``/etc``, not the course checkout around the
package (``solutions/``, ``.git``), not other submissions.

Two ways build that view, and the gradebook says which one ran:

- **bubblewrap** (``bwrap``, where installed on Linux): the grading worker itself is
  started inside a bubblewrap sandbox made from this list, so even the pristine
  worker, and everything it forks, sees only the allow-list and has no network;
- **namespaces** (fallback, and a second layer under bubblewrap): each notebook and
  check process enters new user, mount, network and pid namespaces, mounts an empty
  tmpfs, binds the allow-listed paths into it at the same paths, mounts its own
  ``/proc`` and pivots its root there (:func:`coursekit.authoring.sandbox.confine.isolate`).
"""
from __future__ import annotations

import functools
import os
import shutil
import site
import subprocess
import sys
from pathlib import Path

# System folders that hold shared libraries and programs (read-only). /etc is not here:
# Python, torch and coursekit run without it.
SYSTEM = ("/usr", "/lib", "/lib64", "/lib32", "/libx32", "/bin", "/sbin")
DEVICES = ("/dev/null", "/dev/zero", "/dev/full", "/dev/random", "/dev/urandom")


def cache_dir() -> str:
    return os.environ.get("COURSEKIT_CACHE") or str(Path.home() / ".cache" / "coursekit")


def allowed_reads() -> list[str]:
    """The Python installation, its site-packages, the coursekit package and the
    course's cache: what a graded notebook may read besides its own folder."""
    import coursekit
    roots = {sys.prefix, sys.base_prefix, sys.exec_prefix,
             str(Path(coursekit.__file__).resolve().parent)}
    try:
        roots.update(site.getsitepackages())
        roots.add(site.getusersitepackages())
    except AttributeError:
        pass
    roots.update(p for p in sys.path if p and os.path.isdir(p) and "site-packages" in p)
    roots.add(cache_dir())
    if os.environ.get("COURSEKIT_SHAKESPEARE"):      # an opt-in data set's local copy
        roots.add(os.environ["COURSEKIT_SHAKESPEARE"])
    return sorted(roots)


def view_reads() -> list[str]:
    """Every read-only path of the view (real paths, existing, none inside another)."""
    paths = [*allowed_reads(), *(p for p in SYSTEM if not os.path.islink(p))]
    real = sorted({os.path.realpath(p) for p in paths if os.path.exists(p)})
    kept: list[str] = []
    for path in real:
        if not any(path == k or path.startswith(k.rstrip("/") + "/") for k in kept):
            kept.append(path)
    return kept


def system_links() -> dict[str, str]:
    """Top-level links to keep as they are (``/lib -> usr/lib`` on merged-/usr systems)."""
    return {p: os.readlink(p) for p in SYSTEM if os.path.islink(p)}


def view(writable: list[str], base: str) -> dict:
    """The view a sandboxed child builds under the empty folder ``base``."""
    return {"read": view_reads(), "write": [os.path.realpath(w) for w in writable],
            "links": system_links(), "devices": [d for d in DEVICES if os.path.exists(d)],
            "base": base}


# -- bubblewrap -----------------------------------------------------------------------
def bwrap_command(writable: list[str]) -> list[str]:
    """The ``bwrap`` arguments that start a process in the allow-listed view, with
    ``writable`` folders read-write, no network and its own pid namespace."""
    args = [shutil.which("bwrap") or "bwrap", "--unshare-all", "--die-with-parent",
            "--new-session", "--proc", "/proc", "--dev", "/dev"]
    for link, target in system_links().items():
        args += ["--symlink", target, link]
    for path in view_reads():
        args += ["--ro-bind", path, path]
    for path in writable:
        real = os.path.realpath(path)
        args += ["--bind", real, real]
    return args + ["--"]


@functools.lru_cache(maxsize=1)
def bwrap_works() -> bool:
    """True where ``bwrap`` is installed and can start this Python in the view."""
    if not sys.platform.startswith("linux") or not shutil.which("bwrap"):
        return False
    if os.environ.get("COURSEKIT_NO_BWRAP"):
        return False
    try:
        # find_spec finds the packages without importing them (torch takes seconds)
        probe = subprocess.run([*bwrap_command([]), sys.executable, "-c",
                                "import importlib.util as u, sys; sys.exit(any(u.find_spec(m) is "
                                "None for m in ('coursekit', 'torch', 'IPython')))"],
                               capture_output=True, timeout=60)
    except (OSError, subprocess.TimeoutExpired):
        return False
    return probe.returncode == 0
