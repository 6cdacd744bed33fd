"""`coursekit html`: static pages of executed lessons with an index."""
import nbformat

from coursekit.authoring.site import build_site
from coursekit.cli import main


def _lesson(folder, name, title, code):
    v4 = nbformat.v4
    nb = v4.new_notebook(cells=[
        v4.new_markdown_cell(f"# {title}\n\nThis chapter shows a line. It has a widget.\n\n## Objectives\n- one"),
        v4.new_code_cell("import coursekit as ck\ndevice = ck.setup(seed=0, quiet=True)"),
        v4.new_code_cell(code)])
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
    nbformat.write(nb, folder / name)


WIDGET = """import ipywidgets as W
w = ck.widgets.PlotWidget({"a": W.FloatSlider(value=1.0)}, lambda fig, v: fig.add_subplot().plot([0, v["a"]]))
w"""


def test_html_renders_executed_lessons_with_an_index(tmp_path):
    lessons = tmp_path / "notebooks"
    lessons.mkdir()
    _lesson(lessons, "01_first.ipynb", "First steps", WIDGET)
    _lesson(lessons, "02_second.ipynb", "Second steps", "print('hello from 2')")
    (lessons / "notes.ipynb").write_text("{}")  # not a chapter: ignored
    pages = build_site(lessons, tmp_path / "site", run=True, fast=True)
    assert [p.number for p in pages] == ["01", "02"]
    index = (tmp_path / "site" / "index.html").read_text()
    assert 'href="01_first.html">First steps</a>' in index
    assert "This chapter shows a line." in index and "It has a widget" not in index
    first = (tmp_path / "site" / "01_first.html").read_text()
    assert "data:image/png;base64," in first          # the widget's still image
    assert "VBox(children" not in first                # not its text fallback
    assert "hello from 2" in (tmp_path / "site" / "02_second.html").read_text()
    assert nbformat.read(lessons / "01_first.ipynb", as_version=4).cells[2].outputs == []


def test_html_cli_marks_unexecuted_pages(tmp_path, capsys):
    lessons = tmp_path / "nb"
    lessons.mkdir()
    _lesson(lessons, "03_third.ipynb", "Third", "1 + 1")
    assert main(["html", "--notebooks", str(lessons), "--out", str(tmp_path / "out")]) == 0
    assert "03  Third" in capsys.readouterr().out
    assert "not executed" in (tmp_path / "out" / "index.html").read_text()
