"""Fixtures for the browser suite: a JupyterLab server and headless Chromium.

The suite skips with a clear message when Chromium or Playwright is missing on a
developer's machine; .ci/run installs Chromium so CI always runs it.
"""
from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest

from labdriver import CHROMIUM, CHROMIUM_ARGS, LabServer, copy_course

REPO = Path(__file__).resolve().parents[2]
SCREENSHOTS = Path(os.environ.get("COURSEKIT_SCREENSHOTS", REPO / "screenshots" / "browser"))


def pytest_collection_modifyitems(config, items):
    here = Path(__file__).parent
    for item in items:
        if here in Path(item.fspath).parents:
            item.add_marker(pytest.mark.browser)


@pytest.fixture(scope="session")
def screenshots() -> Path:
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    return SCREENSHOTS


@pytest.fixture(scope="session")
def lab(tmp_path_factory):
    root = copy_course(REPO, tmp_path_factory.mktemp("lab"))
    server = LabServer(root, log=root / "jupyterlab.log")
    yield server
    server.stop()


@pytest.fixture(scope="session")
def browser():
    if not (Path(CHROMIUM).exists() or shutil.which(CHROMIUM)):
        pytest.skip(f"Chromium not found at {CHROMIUM}: install it with "
                    "`apt-get install chromium` (or set COURSEKIT_CHROMIUM) to run the browser suite")
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        pytest.skip("Playwright is not installed: `pip install -e .[dev]` brings it")
    with sync_playwright() as p:
        b = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS, headless=True)
        yield b
        b.close()


@pytest.fixture
def page(browser):
    context = browser.new_context(viewport={"width": 1400, "height": 1000})
    page = context.new_page()
    yield page
    context.close()
