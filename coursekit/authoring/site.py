"""Render the lesson notebooks to static HTML pages with an index, for reading without
running anything: ``coursekit html --out site`` (add ``--execute`` to run them first).

Live widgets cannot run in a static page, so each widget output is replaced by the still
image that ``PlotWidget`` puts beside it; progress-bar widgets are dropped.
"""
from __future__ import annotations

import copy
import html
import os
import re
import tempfile
from dataclasses import dataclass
from pathlib import Path

import nbformat

WIDGET_MIME = "application/vnd.jupyter.widget-view+json"


@dataclass
class Page:
    """One rendered lesson."""

    number: str    # "02"
    title: str     # from the notebook's first heading
    summary: str   # the first sentence after the heading
    href: str      # file name of the page
    executed: bool # whether the notebook holds outputs


def describe(nb, path: Path) -> tuple[str, str]:
    """Title and a one-line summary of a lesson, from its first markdown cell."""
    first = next((c.source for c in nb.cells if c.cell_type == "markdown"), "")
    title_match = re.search(r"^#\s+(.+)$", first, re.M)
    title = title_match.group(1).strip() if title_match else path.stem.replace("_", " ")
    body = [l.strip() for l in first.splitlines() if l.strip() and not l.lstrip().startswith(("#", ">", "-", "*", "|"))]
    text = re.sub(r"[*_`]", "", " ".join(body))
    sentence = re.split(r"(?<=[.!?])\s", text, maxsplit=1)[0] if text else ""
    return title, sentence


def static_outputs(nb):
    """Replace widget outputs by their still image; drop those that have none."""
    nb = copy.deepcopy(nb)
    nb.metadata.pop("widgets", None)
    for cell in nb.cells:
        if cell.cell_type != "code":
            continue
        kept = []
        for out in cell.get("outputs", []):
            data = out.get("data", {})
            if WIDGET_MIME in data:
                if "image/png" not in data:
                    continue  # a progress bar or a widget without a picture
                data.pop(WIDGET_MIME)
                data.pop("text/plain", None)
            kept.append(out)
        cell.outputs = kept
    return nb


def execute(nb, path: Path, fast: bool, timeout: int):
    """Run a notebook in a temporary folder (the source file is not touched)."""
    from nbclient import NotebookClient

    env_before = os.environ.get("COURSEKIT_FAST")
    os.environ["COURSEKIT_FAST"] = "1" if fast else ""
    try:
        with tempfile.TemporaryDirectory(prefix="coursekit-html-") as tmp:
            client = NotebookClient(copy.deepcopy(nb), timeout=timeout, kernel_name="python3",
                                    resources={"metadata": {"path": tmp}})
            return client.execute()
    finally:
        if env_before is None:
            os.environ.pop("COURSEKIT_FAST", None)
        else:
            os.environ["COURSEKIT_FAST"] = env_before


def build_site(notebooks: Path, out: Path, run: bool = False, fast: bool = False,
               timeout: int = 600) -> list[Page]:
    """Render every ``NN_*.ipynb`` in ``notebooks`` to ``out/NN_*.html`` plus ``out/index.html``.

    Args:
        run: execute each notebook first (needed when the notebooks are stored without
            outputs); with ``fast`` in fast mode.
    Returns:
        The pages, in chapter order.
    """
    from nbconvert import HTMLExporter

    exporter = HTMLExporter(template_name="lab")
    out.mkdir(parents=True, exist_ok=True)
    pages = []
    for path in sorted(Path(notebooks).glob("[0-9][0-9]_*.ipynb")):
        nb = nbformat.read(path, as_version=4)
        if run:
            nb = execute(nb, path, fast, timeout)
        executed = any(c.get("outputs") for c in nb.cells if c.cell_type == "code")
        body, _ = exporter.from_notebook_node(static_outputs(nb))
        href = path.stem + ".html"
        (out / href).write_text(body, encoding="utf-8")
        title, summary = describe(nb, path)
        pages.append(Page(path.name[:2], title, summary, href, executed))
    (out / "index.html").write_text(index_html(pages), encoding="utf-8")
    return pages


def index_html(pages: list[Page]) -> str:
    rows = "\n".join(
        f'<li><span class="n">{p.number}</span> <a href="{html.escape(p.href)}">'
        f"{html.escape(p.title)}</a><br><span class=\"s\">{html.escape(p.summary)}"
        f"{'' if p.executed else ' (not executed: run coursekit html --execute)'}</span></li>"
        for p in pages)
    return f"""<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>How generative AI works</title>
<style>
body {{ font-family: system-ui, sans-serif; max-width: 52rem; margin: 3rem auto; padding: 0 1rem; line-height: 1.5; }}
ol {{ list-style: none; padding: 0; }} li {{ margin: 0 0 1rem; }}
.n {{ display: inline-block; width: 2.2rem; color: #777; font-variant-numeric: tabular-nums; }}
.s {{ margin-left: 2.2rem; color: #444; }}
</style></head><body>
<h1>How generative AI works</h1>
<p>The lessons of the course as static pages. To run them and use the widgets, open the
course in JupyterLab (<code>bash course.sh lab</code>).</p>
<ol>
{rows}
</ol></body></html>
"""
