"""coursekit.doctor: the environment report, its problems and fixes, and its exit code."""
import re
import tomllib

import pytest

import coursekit as ck
from coursekit import doctor
from nbtools import ROOT

EXPECTED = ["python", "torch", "einops", "matplotlib", "ipywidgets", "tqdm", "scikit-learn",
            "nbval", "jupyterlab", "device", "threads", "fast mode", "plotting", "widgets", "data"]


def test_report_in_this_environment_is_all_ok(capsys):
    items = ck.doctor.report()             # through the lazy loader, as lessons call it
    out = capsys.readouterr().out
    assert list(items) == EXPECTED
    for name, item in items.items():
        assert set(item) == {"ok", "value", "fix"}
        assert item["ok"] and item["fix"] == "", (name, item)
        assert re.search(rf"^\[ OK \] {re.escape(name)}\s", out, re.M), name
    assert "All good" in out
    assert doctor.main() == 0


def test_quiet_report_prints_nothing(capsys):
    doctor.report(verbose=False)
    assert capsys.readouterr().out == ""


def test_missing_package_is_a_problem_with_a_fix(monkeypatch, capsys):
    monkeypatch.setitem(doctor.PACKAGES, "no_such_module_xyz", "no-such-dist")
    monkeypatch.setitem(doctor.FALLBACK_RANGES, "no-such-dist", ("1.0", None))
    items = doctor.report()
    out = capsys.readouterr().out
    assert not items["no-such-dist"]["ok"]
    assert "not installed" in items["no-such-dist"]["value"]
    assert "[FAIL] no-such-dist" in out and "fix: bash course.sh setup" in out
    assert 'pip install "no-such-dist>=1.0"' in out
    assert "1 problem(s): no-such-dist" in out
    assert doctor.main() == 1


@pytest.mark.parametrize("low, high, ok, says", [
    ("99.0", None, False, "older than 99.0"),
    ("0.1", "0.5", False, "the course supports >=0.1,<0.5"),
    ("0.1", "99", True, ""),
])
def test_version_outside_the_supported_range_is_a_problem(monkeypatch, low, high, ok, says):
    monkeypatch.setattr(doctor, "version_ranges",
                        lambda: {**doctor.FALLBACK_RANGES, "einops": (low, high)})
    item = doctor.report(verbose=False)["einops"]
    assert item["ok"] is ok
    assert says in item["value"]
    assert bool(item["fix"]) is not ok


def test_broken_import_is_reported(monkeypatch):
    real = doctor.importlib.import_module

    def fake(name, *args):
        if name == "einops":
            raise OSError("libsomething.so: cannot open shared object file")
        return real(name, *args)

    monkeypatch.setattr(doctor.importlib, "import_module", fake)
    item = doctor.report(verbose=False)["einops"]
    assert not item["ok"] and "OSError" in item["value"] and "force-reinstall" in item["fix"]


def test_unavailable_forced_device_is_a_problem(monkeypatch):
    monkeypatch.setenv("COURSEKIT_DEVICE", "cuda")
    monkeypatch.setattr(doctor, "_check_device", doctor._check_device)  # the real one
    import torch
    if torch.cuda.is_available():
        pytest.skip("CUDA is available here")
    item = doctor.report(verbose=False)["device"]
    assert not item["ok"] and "COURSEKIT_DEVICE" in item["fix"]


@pytest.mark.parametrize("value, shown", [("1", "on"), ("", "off")])
def test_fast_mode_is_shown(monkeypatch, value, shown):
    monkeypatch.setenv("COURSEKIT_FAST", value)
    item = doctor.report(verbose=False)["fast mode"]
    assert item["ok"] and item["value"].startswith(shown)


def test_too_many_threads_is_a_problem(monkeypatch):
    monkeypatch.setattr(doctor.os, "cpu_count", lambda: 1)
    import torch
    monkeypatch.setattr(torch, "get_num_threads", lambda: 4)
    item = doctor.report(verbose=False)["threads"]
    assert not item["ok"] and "set_num_threads(1)" in item["fix"]


def test_version_ranges_agree_with_pyproject():
    deps = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["dependencies"]
    spec = {re.match(r"[A-Za-z0-9_.\-]+", d).group().lower(): d for d in deps}
    for source in (doctor.version_ranges(), doctor.FALLBACK_RANGES):
        for dist, (low, high) in source.items():
            assert f">={low}" in spec[dist].replace(" ", ""), (dist, spec[dist])
            assert f"<{high}" in spec[dist].replace(" ", ""), (dist, spec[dist])
    assert set(doctor.PACKAGES.values()) == set(doctor.FALLBACK_RANGES)


@pytest.mark.parametrize("text, expected", [
    ("2.13.0+cpu", (2, 13, 0)), ("0.10", (0, 10)), ("1.9.1", (1, 9, 1)),
    ("4.0.0rc1", (4, 0, 0)), ("3.11.7", (3, 11, 7)),
])
def test_version_tuple(text, expected):
    assert doctor._version_tuple(text) == expected


def test_cli_runs_the_doctor(capsys):
    from coursekit.cli import main
    assert main(["doctor"]) == 0
    assert "All good" in capsys.readouterr().out
