"""The grading sandbox: run a learner's notebook, then each check, in throwaway processes.

``coursekit grade`` starts one *worker* per core (``python -m
coursekit.authoring.sandbox``, driven by :mod:`coursekit.authoring.workers`). A worker
imports torch, coursekit and IPython once and never runs a learner's code itself, so
it stays pristine. For each submission it:

1. forks a **notebook process**, which shuts itself in (below), runs the graded
   notebook's code cells one by one in an IPython shell and, just before each check
   cell, sends the worker a copy (cloudpickle) of the objects that check reads, with
   the random-number state;
2. forks one **check process** per check from the pristine worker. It binds the
   solution's imports afresh (the real ``coursekit``), takes a fingerprint of
   coursekit, the builtins, torch and numpy, loads the copied objects, runs the
   released check code and reports *passed* only when the code raised nothing and the
   fingerprint is unchanged. Nothing the notebook's own cells did (redefining
   ``AssertionError`` or ``print``, replacing ``coursekit.checks`` functions,
   ``set_custom_exc``, ``sys.excepthook``...) exists in this process.

Both kinds of process shut themselves in before running learner code: new user,
mount, network and pid namespaces where the kernel allows it, in which only the
allow-listed files exist (:mod:`coursekit.authoring.view`; no network), resource
limits (data size, file size, no core dumps), and an audit hook (PEP 578) that
refuses writes outside the temporary folder, reads of the answer key and of other
submissions, starting processes, signalling other processes, sockets and ctypes.

The worker enforces time limits (per cell, per notebook, per check) and a memory
limit (resident memory of the whole process tree, read from ``/proc``) from
outside, kills with SIGKILL, and, as a child subreaper, kills whatever the
notebook left running. It answers each job with one JSON line.

The modules, along the seams of that story: :mod:`.messages` (the typed messages
between grader, worker and children, and the framing), :mod:`.proctree` (memory and
clean-up of a child's process tree, through psutil), :mod:`.confine` (namespaces,
the view, limits, the audit hook), :mod:`.children` (the notebook and check
processes) and :mod:`.worker` (the worker's loop).

Limits of the design: the code *a check calls* (the learner's function) runs in the
check process; the fingerprint catches it changing the grader's tools, but code
written to attack this module itself (e.g. writing raw memory) is out of scope.
"""
from __future__ import annotations

from coursekit.authoring.sandbox.messages import Job, JobResult

__all__ = ["Job", "JobResult"]
