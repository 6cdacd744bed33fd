"""A class graded in shards and merged gives the bytes of one unsharded run; the gradebook
says which sandbox ran; merge refuses shards that do not belong together."""
import csv

import nbformat
import pytest

from coursebuilder import answer, make_course, submit
from coursekit.authoring.grade import Settings, grade, shard_of
from coursekit.cli import main

pytestmark = pytest.mark.slow

SECRET = "shared-by-every-shard"


@pytest.fixture(scope="module")
def klass(tmp_path_factory):
    root = tmp_path_factory.mktemp("class")
    sol, ex = make_course(root)
    solution, exercise = nbformat.read(sol, as_version=4), nbformat.read(ex, as_version=4)
    half = answer(exercise, "double_answer", "def double(x):\n    return x + x")
    subs = [submit(root, "ann", solution), submit(root, "bob", exercise), submit(root, "cat", half),
            submit(root, "dan", b"not a notebook"), submit(root, "eve", half),
            submit(root, "fay", half)]
    late = root / "late" / "ann" / "99_toy.ipynb"                 # ann submitted twice
    late.parent.mkdir(parents=True)
    late.write_text(nbformat.writes(half))
    return root, subs + [late]


def _files(folder):
    return {p.relative_to(folder).as_posix(): p.read_bytes()
            for p in sorted(folder.rglob("*")) if p.is_file() and p.name != ".grading-secret"}


def test_shards_partition_the_class():
    paths = [f"/s/{c}/x.ipynb" for c in "hgfedcba"]
    parts = [shard_of(paths, (k, 3)) for k in (1, 2, 3)]
    assert sorted(str(p) for part in parts for p in part) == sorted(paths)
    assert all(len(p) in (2, 3) for p in parts)
    with pytest.raises(ValueError, match="K/N"):
        shard_of(paths, (4, 3))


def test_merged_shards_equal_one_run_byte_for_byte(klass, tmp_path):
    root, subs = klass
    settings = Settings(solutions=root / "solutions", jobs=2, secret=SECRET)
    whole = grade(subs, tmp_path / "whole", settings, progress=False)
    assert len(whole) == len(subs)
    shard_dirs = []
    for k in (1, 2, 3):
        out = tmp_path / f"shard{k}"
        assert main(["grade", *map(str, subs), "--out", str(out), "--solutions", str(root / "solutions"),
                     "--secret", SECRET, "--shard", f"{k}/3", "--quiet", "--jobs", "2"]) == 0
        shard_dirs.append(out)
    assert main(["gradebook", "merge", *map(str, shard_dirs), "--out", str(tmp_path / "merged")]) == 0
    whole_files, merged_files = _files(tmp_path / "whole"), _files(tmp_path / "merged")
    assert whole_files.keys() == merged_files.keys()
    for name in whole_files:
        assert whole_files[name] == merged_files[name], name
    # ann's two submissions fell in different shards; the merged note still names both
    rows = list(csv.DictReader(open(tmp_path / "merged" / "gradebook.csv")))
    ann = [r for r in rows if r["learner"] == "ann"]
    assert len(ann) == 2 and all("2 submissions of 99_toy.ipynb for ann" in r["reasons"] for r in ann)
    assert {r["learner"]: r["total"] for r in rows}["cat"] == "2"


def test_the_gradebook_says_which_sandbox_ran(klass, tmp_path):
    root, subs = klass
    grade(subs[:3], tmp_path, Settings(solutions=root / "solutions", jobs=2, secret=SECRET), progress=False)
    rows = list(csv.DictReader(open(tmp_path / "gradebook.csv")))
    assert all(r["sandbox"].startswith(("bubblewrap", "namespaces", "audit hook only"))
               for r in rows), rows
    assert "Sandbox:" in (tmp_path / "summary.md").read_text()
    grade(subs[:1], tmp_path / "open", Settings(solutions=root / "solutions", jobs=1, secret=SECRET,
                                                isolate=False), progress=False)
    row = next(csv.DictReader(open(tmp_path / "open" / "gradebook.csv")))
    assert row["sandbox"] == "audit hook only: isolation turned off"
    assert "ran with the audit hook only" in (tmp_path / "open" / "summary.md").read_text()


def test_merge_refuses_mixed_secrets_missing_shards_and_strangers(klass, tmp_path, capsys):
    root, subs = klass
    for k, secret in ((1, SECRET), (2, "another")):
        main(["grade", *map(str, subs[:2]), "--out", str(tmp_path / f"s{k}"), "--solutions",
              str(root / "solutions"), "--secret", secret, "--shard", f"{k}/2", "--quiet", "--jobs", "1"])
    assert main(["gradebook", "merge", str(tmp_path / "s1"), str(tmp_path / "s2"), "--out", str(tmp_path / "m")]) == 2
    assert "different secrets" in capsys.readouterr().err
    assert main(["gradebook", "merge", str(tmp_path / "s1"), "--out", str(tmp_path / "m")]) == 2
    assert "one whole class" in capsys.readouterr().err
    assert main(["gradebook", "merge", str(tmp_path), "--out", str(tmp_path / "m")]) == 2
    assert "not a coursekit gradebook" in capsys.readouterr().err
    # a shard without a shared secret is refused before it grades anything
    assert main(["grade", str(subs[0]), "--out", str(tmp_path / "x"), "--solutions",
                 str(root / "solutions"), "--shard", "1/2", "--quiet"]) == 2
    assert "needs one secret" in capsys.readouterr().err
