"""The grading sandbox's typed messages and its process-tree helpers, on their own.

The end-to-end behaviour is in tests/test_grade*.py; here: a frame of the wrong shape
is refused (the worker reads it as tampering), jobs and results survive their trip
through JSON unchanged, and the process tree is found and killed through psutil.
"""
from __future__ import annotations

import json
import os
import subprocess
import sys
import time

import pytest

from coursekit.authoring.sandbox import messages as m
from coursekit.authoring.sandbox import proctree


def frames_of(*items) -> bytes:
    r, w = os.pipe()
    for message, payload in items:
        m.send(w, message, payload)
    os.close(w)
    data = b""
    while chunk := os.read(r, 1 << 16):
        data += chunk
    os.close(r)
    return data


def test_frames_round_trip_typed():
    sent = [(m.Hello("view"), b""), (m.CellStart(3), b""),
            (m.CellEnd(3, m.Error("ValueError", "bad")), b""),
            (m.Snapshot(0, {"f": [0, 4]}), b"abcd"), (m.Exit(4), b""), (m.Done(), b""),
            (m.Verdict(False, None, ["torch.allclose"], {"x": "TypeError: no"}), b"")]
    reader = m.FrameReader(max_payload=1 << 20)
    got = []
    data = frames_of(*sent)
    for i in range(0, len(data), 7):           # frames split anywhere still parse
        got += reader.feed(data[i:i + 7])
    assert got == sent


@pytest.mark.parametrize("header", [
    {"type": "hello"},                                  # an unknown kind
    {"type": "CellStart", "cell": "3"},                 # a field of the wrong type
    {"type": "CellStart", "cell": True},                # a bool is not a cell index
    {"type": "CellEnd", "cell": 1, "error": {"ename": 1, "evalue": "x"}},
    {"type": "Verdict", "passed": 1, "error": None, "tampered": [], "copy_errors": {}},
    ["Done"],
])
def test_a_frame_of_the_wrong_shape_is_refused(header):
    data = json.dumps(header).encode()
    frame = m._HEADER.pack(len(data), 0) + data
    with pytest.raises(ValueError):
        m.FrameReader(1 << 20).feed(frame)


def test_an_oversized_frame_is_refused_before_it_is_read():
    with pytest.raises(ValueError, match="too large"):
        m.FrameReader(max_payload=10).feed(m._HEADER.pack(10, 11))


def test_jobs_and_results_survive_json():
    job = m.Job(cells=[m.Cell("x = 1"), m.Cell("check()", 0)],
                checks=[m.CheckSpec("check_x", "assert x", ["x"], [], [], 1)], imports=[],
                root="/r", work="/r/work", home="/r/home", tmp="/r/tmp", env={"A": "1"},
                deny=[], allow_read=[], private=[], cell_timeout=5, notebook_timeout=50,
                memory_mb=100, snapshot_mb=10, view={"read": ["/usr"]})
    assert m.Job.from_dict(json.loads(job.to_json())) == job
    result = m.JobResult(cells=[m.CellResult(True, None), m.CellResult(True, m.Error("E", "v"))],
                         stop=m.Stop("timeout", 1),
                         checks=[m.CheckResult("stopped", stop=m.Stop("died")),
                                 m.CheckResult("failed", m.Error("CheckFailure", "no"), ["a"],
                                               {"x": "y"}, None)],
                         confinement="view", bubblewrap=True, seconds=1.5)
    assert m.JobResult.from_dict(json.loads(result.to_json())) == result
    assert result.sealed and not m.JobResult([], None, []).sealed


def test_the_process_tree_is_found_and_killed():
    child = subprocess.Popen([sys.executable, "-c",
                              "import subprocess, sys, time\n"
                              "subprocess.Popen([sys.executable, '-c', 'import time; time.sleep(60)'])\n"
                              "time.sleep(60)"], start_new_session=True)
    try:
        for _ in range(100):
            if len(proctree.descendants(child.pid)) == 1:
                break
            time.sleep(0.05)
        [grandchild] = proctree.descendants(child.pid)
        assert proctree.memory_used(child.pid, baseline=0) > 0
        proctree.kill_tree(child.pid)
        child.wait(timeout=10)
        grandchild.wait(timeout=10)
        assert not grandchild.is_running() or grandchild.status() == "zombie"
    finally:
        if child.poll() is None:
            child.kill()
