"""An environment check for the course: ``coursekit doctor`` or ``ck.doctor.report()``.

Each item prints one line, ``[ OK ]`` or ``[FAIL]``, with what was found and, for a
problem, the command or setting that fixes it::

    [ OK ] python       3.11.7
    [ OK ] torch        2.13.0+cpu
    [FAIL] ipywidgets   not installed
           fix: bash course.sh setup   (or: pip install "ipywidgets>=8.0,<9")
"""
from __future__ import annotations

import importlib
import importlib.metadata
import importlib.util
import io
import os
import platform
import re
import sys

# Import name -> distribution name, for everything the course uses (pyproject.toml).
PACKAGES = {
    "torch": "torch",
    "einops": "einops",
    "matplotlib": "matplotlib",
    "ipywidgets": "ipywidgets",
    "tqdm": "tqdm",
    "sklearn": "scikit-learn",
    "nbval": "nbval",
    "jupyterlab": "jupyterlab",
}
# Tools that run notebooks rather than being imported by them: found, not imported
# (importing JupyterLab takes seconds).
NOT_IMPORTED = {"nbval", "jupyterlab"}
# Supported versions (lowest, first unsupported), as in pyproject.toml; used when
# coursekit's own installed metadata cannot be read.
FALLBACK_RANGES = {
    "torch": ("2.2", "3"), "einops": ("0.7", "1"), "matplotlib": ("3.7", "4"),
    "ipywidgets": ("8.0", "9"), "tqdm": ("4.64", "5"), "scikit-learn": ("1.3", "2"),
    "nbval": ("0.10", "1"), "jupyterlab": ("4.0", "5"),
}
MIN_PYTHON = (3, 11)
SETUP_FIX = "bash course.sh setup"


def _version_tuple(text: str) -> tuple[int, ...]:
    """'2.13.0+cpu' -> (2, 13, 0): the leading numeric parts of a version string."""
    parts = []
    for piece in re.split(r"[.+-]", text):
        digits = re.match(r"\d+", piece)
        if not digits:
            break
        parts.append(int(digits.group()))
    return tuple(parts)


def version_ranges() -> dict[str, tuple[str, str | None]]:
    """Distribution name -> (lowest supported version, first unsupported one or None).

    Read from coursekit's installed metadata (the dependencies of pyproject.toml), so the
    doctor and the packaging never disagree; ``FALLBACK_RANGES`` when that is missing.
    """
    try:
        requires = importlib.metadata.requires("coursekit") or []
    except importlib.metadata.PackageNotFoundError:
        return dict(FALLBACK_RANGES)
    found: dict[str, tuple[str, str | None]] = {}
    for req in requires:
        if "extra ==" in req:
            continue
        name = re.match(r"\s*([A-Za-z0-9_.\-]+)", req)
        low = re.search(r">=\s*([0-9][0-9.]*)", req)
        high = re.search(r"<\s*([0-9][0-9.]*)", req)
        if name and low:
            found[name.group(1).lower().replace("_", "-")] = (
                low.group(1), high.group(1) if high else None)
    return {dist: found.get(dist, rng) for dist, rng in FALLBACK_RANGES.items()}


def _item(ok: bool, value: str, fix: str = "") -> dict:
    return {"ok": ok, "value": value, "fix": "" if ok else fix}


def _check_python() -> dict:
    found = platform.python_version()
    ok = sys.version_info[:2] >= MIN_PYTHON
    need = ".".join(map(str, MIN_PYTHON))
    return _item(ok, found, f"the course needs Python {need} or newer: install it, then "
                 f"rebuild the environment with PYTHON=python{need} {SETUP_FIX}")


def _check_package(module: str, dist: str, low: str, high: str | None = None) -> dict:
    """Find (and import, unless a tool in NOT_IMPORTED) ``module``; compare its version."""
    spec = f">={low}" + (f",<{high}" if high else "")
    pip_fix = f'{SETUP_FIX}   (or: pip install "{dist}{spec}")'
    try:
        if module in NOT_IMPORTED:
            if importlib.util.find_spec(module) is None:
                raise ImportError(f"no module named {module!r}")
        else:
            importlib.import_module(module)
    except ImportError as err:
        return _item(False, f"not installed ({err})", pip_fix)
    except Exception as err:  # installed but broken (a bad build, a missing system library)
        return _item(False, f"import fails: {type(err).__name__}: {err}",
                     f'reinstall it: pip install --force-reinstall "{dist}{spec}"')
    try:
        version = importlib.metadata.version(dist)
    except importlib.metadata.PackageNotFoundError:
        version = getattr(sys.modules.get(module), "__version__", "unknown")
    if version != "unknown":
        if _version_tuple(version) < _version_tuple(low):
            return _item(False, f"{version} (older than {low})", pip_fix)
        if high and _version_tuple(version) >= _version_tuple(high):
            return _item(False, f"{version} (the course supports {spec})", pip_fix)
    return _item(True, version)


def _check_device() -> dict:
    from coursekit.runtime import DEVICE_ENV, pick_device
    try:
        device = pick_device()
    except RuntimeError as err:
        return _item(False, str(err), f"unset {DEVICE_ENV} or set it to 'cpu'")
    if device.type == "cpu":
        return _item(True, "cpu (no GPU found; every lesson is sized to run on a CPU)")
    return _item(True, f"{device.type} (lessons train there; {DEVICE_ENV}=cpu forces the CPU)")


def _check_fast_mode() -> dict:
    from coursekit.runtime import FAST_ENV, fast_mode
    if fast_mode():
        return _item(True, f"on ({FAST_ENV} is set: training is shortened, as in the tests; "
                           f"unset it to see the full lessons)")
    return _item(True, "off (full training lengths)")


def _check_plotting() -> dict:
    """matplotlib imports and can render a figure to PNG without a display."""
    try:
        from matplotlib.figure import Figure
        fig = Figure(figsize=(1, 1))
        fig.add_subplot().plot([0, 1], [0, 1])
        buf = io.BytesIO()
        fig.savefig(buf, format="png")
    except Exception as err:
        return _item(False, f"cannot draw a figure: {type(err).__name__}: {err}",
                     f"{SETUP_FIX}   (or: pip install --force-reinstall matplotlib)")
    import matplotlib
    return _item(True, f"renders PNG (backend {matplotlib.get_backend()})")


def _check_widgets() -> dict:
    """ipywidgets imports and can build a slider (the browser part cannot be tested here)."""
    try:
        import ipywidgets
        ipywidgets.IntSlider(value=1, min=0, max=2)
    except Exception as err:
        return _item(False, f"cannot build a widget: {type(err).__name__}: {err}",
                     f'{SETUP_FIX}   (or: pip install "ipywidgets>=8.0")')
    return _item(True, f"ipywidgets {ipywidgets.__version__} builds sliders (in JupyterLab "
                       "they appear under the cell)")


def _check_threads() -> dict:
    import torch
    cores = os.cpu_count() or 1
    threads = torch.get_num_threads()
    value = f"torch uses {threads} thread(s) on {cores} CPU core(s)"
    if threads > cores:
        return _item(False, value + " (more threads than cores slows training down)",
                     f"torch.set_num_threads({cores}), or set OMP_NUM_THREADS={cores}")
    return _item(True, value)


def _check_data() -> dict:
    """The offline data sets load: scikit-learn's digits and the generated story corpus."""
    try:
        from sklearn.datasets import load_digits
        n_digits = len(load_digits().images)
        from coursekit.data import story_corpus
        n_chars = len(story_corpus(n_stories=20))
    except Exception as err:
        return _item(False, f"{type(err).__name__}: {err}", SETUP_FIX)
    return _item(True, f"{n_digits} digit images, story corpus ok ({n_chars} characters for 20 stories)")


def report(verbose: bool = True) -> dict:
    """Check the environment; print one line per item when ``verbose``.

    Returns:
        item name -> {"ok": bool, "value": what was found, "fix": how to fix it ("" if ok)},
        with the items in the order printed.
    """
    items: dict[str, dict] = {"python": _check_python()}
    ranges = version_ranges()
    for module, dist in PACKAGES.items():
        items[dist] = _check_package(module, dist, *ranges[dist])
    if items["torch"]["ok"]:
        items["device"] = _check_device()
        items["threads"] = _check_threads()
    items["fast mode"] = _check_fast_mode()
    if items["matplotlib"]["ok"]:
        items["plotting"] = _check_plotting()
    if items["ipywidgets"]["ok"]:
        items["widgets"] = _check_widgets()
    if items["torch"]["ok"] and items["scikit-learn"]["ok"]:
        items["data"] = _check_data()
    if verbose:
        width = max(map(len, items)) + 2
        for name, item in items.items():
            print(f"[{' OK ' if item['ok'] else 'FAIL'}] {name:<{width}}{item['value']}")
            if not item["ok"]:
                print(f"       fix: {item['fix']}")
        problems = [name for name, item in items.items() if not item["ok"]]
        print("All good: you are ready for the course." if not problems else
              f"{len(problems)} problem(s): {', '.join(problems)}. Apply the fixes above, "
              "restart the kernel, and run the check again.")
    return items


def main() -> int:
    """Print the report; return 0 when every item is OK, 1 otherwise (for ``coursekit doctor``)."""
    items = report(verbose=True)
    return 0 if all(item["ok"] for item in items.values()) else 1


if __name__ == "__main__":
    sys.exit(main())
