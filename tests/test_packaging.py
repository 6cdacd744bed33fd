"""pyproject.toml, environment.yml, README and .ci/run agree with each other."""
import re
import tomllib

from nbtools import ROOT

# conda names that differ from PyPI names
CONDA_TO_PYPI = {"pytorch": "torch"}


def _name_and_spec(req: str) -> tuple[str, str]:
    m = re.match(r"\s*([A-Za-z0-9_.\-]+)\s*(.*)", req)
    return m.group(1).lower().replace("_", "-"), m.group(2).replace(" ", "")


def _pyproject() -> dict[str, str]:
    data = tomllib.loads((ROOT / "pyproject.toml").read_text())
    reqs = data["project"]["dependencies"] + data["project"]["optional-dependencies"]["dev"]
    return dict(_name_and_spec(r) for r in reqs)


def _environment() -> dict[str, str]:
    deps: dict[str, str] = {}
    text = (ROOT / "environment.yml").read_text()
    for line in text[text.index("dependencies:"):].splitlines():
        m = re.match(r"\s*-\s+(?!pip:)(.+)$", line)
        if not m or m.group(1).strip() in ("pip", "-e ."):
            continue
        name, spec = _name_and_spec(m.group(1).strip())
        if name in ("python", "-e"):
            continue
        deps[CONDA_TO_PYPI.get(name, name)] = spec
    return deps


def test_environment_yml_matches_pyproject():
    py, env = _pyproject(), _environment()
    assert set(py) == set(env), f"only in pyproject: {set(py) - set(env)}; only in environment.yml: {set(env) - set(py)}"
    for name, spec in py.items():
        assert env[name] == spec, f"{name}: pyproject says {spec!r}, environment.yml says {env[name]!r}"


def test_dependencies_are_ranges_not_pins():
    for name, spec in _pyproject().items():
        assert spec and "==" not in spec, f"{name} should have a version range, got {spec!r}"


def test_readme_opens_with_the_two_commands_and_ci_runs_the_test_one():
    readme = (ROOT / "README.md").read_text()
    head = readme[:1500]
    assert "bash course.sh lab" in head and "bash course.sh test" in head
    assert "bash course.sh test" in (ROOT / ".ci" / "run").read_text()
    assert "torch==2.13.0" in (ROOT / ".ci" / "run").read_text()


def test_readme_lists_every_chapter():
    readme = (ROOT / "README.md").read_text()
    for path in sorted((ROOT / "notebooks").glob("[0-9][0-9]_*.ipynb")):
        assert f"notebooks/{path.name}" in readme, f"README does not list {path.name}"
