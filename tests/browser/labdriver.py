"""Drive JupyterLab in headless Chromium with Playwright: start a server, open a
notebook, run its cells, read outputs from the notebook model, move sliders."""
from __future__ import annotations

import os
import re
import secrets
import shutil
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

CHROMIUM = os.environ.get("COURSEKIT_CHROMIUM", "/usr/bin/chromium")
CHROMIUM_ARGS = ["--no-sandbox", "--headless", "--disable-gpu", "--disable-quic", "--no-first-run",
                 "--disable-background-networking", "--disable-component-update", "--disable-sync",
                 "--disable-dev-shm-usage"]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class LabServer:
    """A JupyterLab server on a free loopback port with a random token, serving a copy
    of the course (so running notebooks never writes into the repository)."""

    def __init__(self, root: Path, log: Path):
        self.root = root
        self.port = free_port()
        self.token = secrets.token_hex(16)
        self.url = f"http://127.0.0.1:{self.port}"
        settings = root / ".jupyterlab-settings"
        notification = settings / "@jupyterlab" / "apputils-extension"
        notification.mkdir(parents=True, exist_ok=True)
        # no "would you like news?" pop-up over the screenshots
        (notification / "notification.jupyterlab-settings").write_text(
            '{"fetchNews": "false", "checkForUpdates": false}')
        env = dict(os.environ, COURSEKIT_FAST="1", MPLBACKEND="Agg",
                   JUPYTER_CONFIG_DIR=str(root / ".jupyter-config"),
                   JUPYTER_RUNTIME_DIR=str(root / ".jupyter-runtime"),
                   JUPYTERLAB_SETTINGS_DIR=str(settings),
                   JUPYTERLAB_WORKSPACES_DIR=str(root / ".jupyterlab-workspaces"))
        jupyter = Path(sys.executable).with_name("jupyter")
        cmd = [str(jupyter), "lab", "--no-browser", "--ip=127.0.0.1", f"--port={self.port}",
               f"--IdentityProvider.token={self.token}", f"--ServerApp.root_dir={root}",
               "--LabApp.expose_app_in_browser=True", "--ServerApp.open_browser=False", "--allow-root",
               "--LabApp.news_url=''", "--LabApp.check_for_updates_class=jupyterlab.NeverCheckForUpdate"]
        self.log = open(log, "wb")
        self.proc = subprocess.Popen(cmd, cwd=root, env=env, stdout=self.log,
                                     stderr=subprocess.STDOUT, start_new_session=True)
        self._wait_ready()

    def _wait_ready(self, timeout: float = 90) -> None:
        deadline = time.time() + timeout
        while time.time() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"JupyterLab exited with {self.proc.returncode}; see {self.log.name}")
            try:
                with urllib.request.urlopen(f"{self.url}/api/status?token={self.token}", timeout=2):
                    return
            except OSError:
                time.sleep(0.5)
        raise RuntimeError(f"JupyterLab did not answer within {timeout} s; see {self.log.name}")

    def notebook_url(self, rel: str) -> str:
        return f"{self.url}/lab/tree/{rel}?token={self.token}&reset"

    def stop(self) -> None:
        import signal
        try:
            os.killpg(self.proc.pid, signal.SIGTERM)
            self.proc.wait(timeout=20)
        except (ProcessLookupError, subprocess.TimeoutExpired):
            try:
                os.killpg(self.proc.pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
        self.log.close()


def copy_course(repo: Path, dest: Path) -> Path:
    for folder in ("notebooks", "exercises", "solutions"):
        if (repo / folder).is_dir():
            shutil.copytree(repo / folder, dest / folder)
    return dest


# -- talking to the JupyterLab app in the page (exposed with expose_app_in_browser) ------
JS_NOTEBOOK = """() => {
  const w = window.jupyterapp.shell.currentWidget;
  return w && w.content && w.content.model ? w : null;
}"""


def open_notebook(page, server: LabServer, rel: str, timeout_ms: int = 120_000) -> None:
    page.goto(server.notebook_url(rel))
    page.wait_for_function("() => window.jupyterapp && window.jupyterapp.shell", timeout=timeout_ms)
    page.wait_for_function(
        """(name) => { const w = window.jupyterapp.shell.currentWidget;
            return w && w.context && w.context.path.endsWith(name) && w.sessionContext
                && w.sessionContext.session && w.sessionContext.session.kernel
                && w.sessionContext.session.kernel.connectionStatus === 'connected'
                && w.sessionContext.kernelDisplayStatus === 'idle'; }""",
        arg=Path(rel).name, timeout=timeout_ms)


def run_command(page, command: str, args: dict | None = None) -> None:
    page.evaluate("([c, a]) => window.jupyterapp.commands.execute(c, a || {})", [command, args])


def wait_kernel_idle(page, timeout_ms: int) -> None:
    """Wait until no cell is queued or running and the kernel is idle."""
    page.wait_for_function(
        """() => { const w = window.jupyterapp.shell.currentWidget;
            if (!w || w.sessionContext.kernelDisplayStatus !== 'idle') return false;
            const cells = w.content.widgets.filter(c => c.model.type === 'code');
            return cells.every(c => c.promptNode === null
                || !c.promptNode.textContent.includes('*')); }""",
        timeout=timeout_ms, polling=500)


def run_all(page, timeout_ms: int = 600_000) -> None:
    run_command(page, "notebook:run-all-cells")
    page.wait_for_timeout(1000)
    wait_kernel_idle(page, timeout_ms)


def cells(page) -> list[dict]:
    """Every cell's type, source, execution count and outputs, from the notebook model."""
    return page.evaluate(
        """() => window.jupyterapp.shell.currentWidget.content.widgets.map(c => {
            const m = c.model; const j = m.toJSON();
            return {type: m.type, source: m.sharedModel.getSource(),
                    execution_count: j.execution_count === undefined ? null : j.execution_count,
                    outputs: j.outputs || [], metadata: j.metadata || {}}; })""")


def set_source(page, index: int, source: str) -> None:
    page.evaluate("""([i, s]) => window.jupyterapp.shell.currentWidget.content.widgets[i]
                     .model.sharedModel.setSource(s)""", [index, source])


def run_cells(page, indices: list[int], timeout_ms: int = 300_000) -> None:
    """Select each cell in turn and run it (as Shift+Enter would), waiting for each."""
    for i in indices:
        page.evaluate("(i) => { window.jupyterapp.shell.currentWidget.content.activeCellIndex = i; }", i)
        run_command(page, "notebook:run-cell")
        page.wait_for_timeout(300)
        wait_kernel_idle(page, timeout_ms)


def output_text(cell: dict) -> str:
    parts = []
    for out in cell["outputs"]:
        if out.get("output_type") == "stream":
            parts.append(out.get("text", ""))
        elif out.get("output_type") == "error":
            parts.append(f"{out.get('ename')}: {out.get('evalue')}")
        elif "text/plain" in out.get("data", {}):
            parts.append(out["data"]["text/plain"])
    return "".join(p if isinstance(p, str) else "".join(p) for p in parts)


def traceback_text(cell: dict) -> str:
    """What the cell's error output shows: its traceback lines, colour codes removed."""
    lines = []
    for out in cell["outputs"]:
        if out.get("output_type") == "error":
            lines.extend(out.get("traceback") or [])
    return re.sub(r"\x1b\[[0-9;]*m", "", "\n".join(lines))


def errors(cell_list: list[dict]) -> list[str]:
    return [f"cell {i}: {o.get('ename')}: {o.get('evalue')}"
            for i, c in enumerate(cell_list) for o in c["outputs"] if o.get("output_type") == "error"]


# -- widgets in the page -----------------------------------------------------------------
def widget_outputs(page):
    """Output areas that hold a widget with at least one slider and an image (PlotWidgets)."""
    areas = page.locator(".jp-OutputArea-output").filter(has=page.locator(".noUi-handle")) \
        .filter(has=page.locator("img"))
    return [areas.nth(i) for i in range(areas.count())]


def nudge_first_slider(page, area, presses: int = 5) -> None:
    """Move the area's first slider with the keyboard, as a learner would."""
    handle = area.locator(".noUi-handle").first
    handle.scroll_into_view_if_needed()
    handle.focus()
    for _ in range(presses):
        page.keyboard.press("ArrowRight")
    page.wait_for_timeout(300)


def show_cell(page, index: int) -> None:
    """Scroll a cell's output into view (before a screenshot)."""
    page.evaluate("""(i) => { const c = window.jupyterapp.shell.currentWidget.content.widgets[i];
                      c.node.scrollIntoView({block: 'center'}); }""", index)
    page.wait_for_timeout(500)
