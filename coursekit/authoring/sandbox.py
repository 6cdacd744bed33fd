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

Both kinds of process shut themselves in before running learner code: a new user,
mount and network namespace where the kernel allows it (the whole file system
read-only except the submission's temporary folder; no network), resource limits
(data size, file size, no core dumps), and an audit hook (PEP 578) that refuses
writes outside the temporary folder, reads of the answer key and of other
submissions, starting processes, signalling other processes, sockets and ctypes.

The worker enforces time limits (per cell, per notebook, per check) and a memory
limit (resident memory of the whole process tree, read from ``/proc``) from
outside, kills with SIGKILL, and, as a child subreaper, kills whatever the
notebook left running. It answers each job with one JSON line.

Limits of the design: the code *a check calls* (the learner's function) runs in the
check process; the fingerprint catches it changing the grader's tools, but code
written to attack this module itself (e.g. writing raw memory) is out of scope.
"""
from __future__ import annotations

import builtins
import json
import os
import re
import resource
import select
import signal
import struct
import sys
import time
import types

LINUX = sys.platform.startswith("linux")
_HEADER = struct.Struct("!II")        # frame: JSON length, payload length
_MAX_JSON = 1 << 20                   # bytes; a bigger frame header is a protocol violation
_POLL = 0.05                          # seconds between the watcher's checks

# Modules and classes whose callables the check process fingerprints.
WATCHED_MODULES = ("builtins", "sys", "os", "io", "math", "random", "operator", "functools",
                   "inspect", "json", "torch", "torch.nn", "torch.nn.functional",
                   "torch.linalg", "torch.autograd", "numpy", "einops")
BLOCKED_EVENTS = ("os.system", "os.exec", "os.posix_spawn", "os.spawn", "os.fork",
                  "os.forkpty", "subprocess.Popen", "pty.spawn", "os.startfile",
                  "sys.settrace", "sys.setprofile", "gc.get_objects", "gc.get_referrers",
                  "gc.get_referents", "resource.prlimit")
PATH_WRITE_EVENTS = {"os.remove": (0,), "os.rmdir": (0,), "os.rename": (0, 1),
                     "os.mkdir": (0,), "os.symlink": (1,), "os.link": (1,), "os.chmod": (0,),
                     "os.chown": (0,), "os.truncate": (0,), "os.utime": (0,),
                     "os.setxattr": (0,), "os.removexattr": (0,), "os.chflags": (0,),
                     "os.lchflags": (0,), "shutil.rmtree": (0,), "shutil.copyfile": (1,),
                     "shutil.copytree": (1,), "shutil.move": (1,), "shutil.unpack_archive": (1,)}
PATH_READ_EVENTS = {"os.listdir": 0, "os.scandir": 0, "glob.glob": 0}
_DEADLY = (signal.SIGKILL, signal.SIGTERM, signal.SIGINT, signal.SIGQUIT, signal.SIGABRT,
           signal.SIGHUP, signal.SIGSEGV)

# Linux constants for unshare(2) and mount(2).
CLONE_NEWNS, CLONE_NEWUSER = 0x00020000, 0x10000000
CLONE_NEWPID, CLONE_NEWNET = 0x20000000, 0x40000000
MS_RDONLY, MS_NOSUID, MS_NODEV, MS_NOEXEC, MS_REMOUNT = 1, 2, 4, 8, 32
MS_NOATIME, MS_NODIRATIME, MS_BIND, MS_REC, MS_PRIVATE = 1024, 2048, 4096, 16384, 1 << 18
MS_RELATIME, MS_STRICTATIME = 1 << 21, 1 << 24
_MOUNT_FLAGS = {"nosuid": MS_NOSUID, "nodev": MS_NODEV, "noexec": MS_NOEXEC,
                "noatime": MS_NOATIME, "nodiratime": MS_NODIRATIME,
                "relatime": MS_RELATIME, "strictatime": MS_STRICTATIME}


# -- framing: children -> worker ---------------------------------------------------------
def send(fd: int, header: dict, payload: bytes = b"") -> None:
    """Write one frame (JSON header + raw payload) to a pipe."""
    data = json.dumps(header).encode()
    view = memoryview(_HEADER.pack(len(data), len(payload)) + data + payload)
    while view:
        view = view[os.write(fd, view):]


class FrameReader:
    """Parse frames from a child without ever unpickling what it sent."""

    def __init__(self, max_payload: int):
        self.buf = bytearray()
        self.max_payload = max_payload

    def feed(self, data: bytes) -> list[tuple[dict, bytes]]:
        self.buf += data
        frames = []
        while len(self.buf) >= _HEADER.size:
            n_json, n_payload = _HEADER.unpack_from(self.buf)
            if n_json > _MAX_JSON or n_payload > self.max_payload:
                raise ValueError("frame too large")
            end = _HEADER.size + n_json + n_payload
            if len(self.buf) < end:
                break
            header = json.loads(bytes(self.buf[_HEADER.size:_HEADER.size + n_json]))
            if not isinstance(header, dict):
                raise ValueError("bad frame")
            frames.append((header, bytes(self.buf[_HEADER.size + n_json:end])))
            del self.buf[:end]
        return frames


# -- process tree: memory and clean-up (Linux /proc) -------------------------------------
_PAGE = os.sysconf("SC_PAGE_SIZE") if hasattr(os, "sysconf") else 4096


def _parents() -> dict[int, int]:
    """pid -> parent pid for every process we can see."""
    table = {}
    for entry in os.listdir("/proc") if LINUX else []:
        if entry.isdigit():
            try:
                with open(f"/proc/{entry}/stat", "rb") as fh:
                    stat = fh.read()
                table[int(entry)] = int(stat[stat.rindex(b")") + 2:].split()[1])
            except (OSError, ValueError, IndexError):
                continue
    return table


def _children(pid: int) -> list[int] | None:
    """Direct children from /proc/PID/task/*/children (None where the kernel lacks it)."""
    try:
        tasks = os.listdir(f"/proc/{pid}/task")
    except OSError:
        return []
    found = []
    for task in tasks:
        try:
            with open(f"/proc/{pid}/task/{task}/children", "rb") as fh:
                found.extend(int(c) for c in fh.read().split())
        except FileNotFoundError:
            return None
        except (OSError, ValueError):
            continue
    return found


def descendants(root: int) -> list[int]:
    """Every process below ``root`` (orphans included, since the worker is a subreaper)."""
    if LINUX and _children(root) is not None:
        found, todo = [], [root]
        while todo:
            for child in _children(todo.pop()) or []:
                found.append(child)
                todo.append(child)
        return found
    parents = _parents()                        # fallback: scan every process
    children: dict[int, list[int]] = {}
    for pid, ppid in parents.items():
        children.setdefault(ppid, []).append(pid)
    found, todo = [], [root]
    while todo:
        for child in children.get(todo.pop(), []):
            found.append(child)
            todo.append(child)
    return found


def memory_used(pid: int, baseline: int) -> int:
    """Resident memory a child and everything below it added: a fork of the worker
    (same executable) counts what it holds beyond the worker's own pages."""
    me = _exe(os.getpid())
    total = 0
    for p in [pid, *descendants(pid)]:
        rss = rss_bytes(p)
        total += max(0, rss - baseline) if _exe(p) in (me, None) else rss
    return total


def _exe(pid: int) -> str | None:
    try:
        return os.readlink(f"/proc/{pid}/exe")
    except OSError:
        return None


def rss_bytes(pid: int) -> int:
    try:
        with open(f"/proc/{pid}/statm", "rb") as fh:
            return int(fh.read().split()[1]) * _PAGE
    except (OSError, ValueError, IndexError):
        return 0


def kill_tree(pid: int | None = None) -> None:
    """SIGKILL a child's process group and every process left below the worker; reap them."""
    me = os.getpid()
    for _ in range(5):
        if pid is not None:
            try:
                os.killpg(pid, signal.SIGKILL)
            except (ProcessLookupError, PermissionError):
                pass
        left = descendants(me) if LINUX else ([pid] if pid else [])
        for child in left:
            try:
                os.kill(child, signal.SIGKILL)
            except (ProcessLookupError, PermissionError):
                pass
        reap()
        if not left:
            break
        time.sleep(0.01)


def reap() -> None:
    while True:
        try:
            pid, _ = os.waitpid(-1, os.WNOHANG)
        except ChildProcessError:
            return
        if pid == 0:
            return


# -- shutting a child in ------------------------------------------------------------------
def _mounts() -> list[tuple[str, str]]:
    """(mount point, per-mount options) from /proc/self/mountinfo."""
    points = []
    with open("/proc/self/mountinfo", encoding="utf-8", errors="replace") as fh:
        for line in fh:
            fields = line.split()
            point = re.sub(r"\\([0-7]{3})", lambda m: chr(int(m.group(1), 8)), fields[4])
            points.append((point, fields[5]))
    return points


def isolate(writable: list[str], view: dict | None = None) -> str:
    """Enter new user, mount, network and pid namespaces and shut the file system.

    With ``view`` (:func:`coursekit.authoring.view.view`), build the allow-listed view
    and make it the root: nothing outside it exists any more. Where that cannot be
    built, make every mount read-only except ``writable`` instead. Returns "view",
    "read-only", or "" where the kernel allows neither (then nothing changed, or only
    part of it).
    """
    if not LINUX:
        return ""
    try:
        import ctypes
        libc = ctypes.CDLL(None, use_errno=True)
        # A new pid namespace holds whatever the child starts: those processes cannot
        # see or signal the worker, and all die with the first of them.
        flags = CLONE_NEWUSER | CLONE_NEWNS | CLONE_NEWNET | CLONE_NEWPID
        uid, gid = os.getuid(), os.getgid()
        if libc.unshare(flags) != 0:
            return ""
    except Exception:
        return ""
    try:
        for name, text in (("setgroups", "deny"), ("uid_map", f"{uid} {uid} 1"),
                           ("gid_map", f"{gid} {gid} 1")):
            with open(f"/proc/self/{name}", "w") as fh:
                fh.write(text)
        mount = libc.mount
        mount.argtypes = [ctypes.c_char_p, ctypes.c_char_p, ctypes.c_char_p,
                          ctypes.c_ulong, ctypes.c_void_p]
        if mount(None, b"/", None, MS_REC | MS_PRIVATE, None) != 0:
            _become_pid_one()
            return ""
    except Exception:
        _become_pid_one()
        return ""
    _become_pid_one()     # from here on: pid 1 of the new namespace (its /proc is ours)
    if view is not None:
        try:
            _enter_view(libc, view)
            return "view"
        except Exception:
            pass           # the old root is still in place: fall back to read-only
    try:
        return "read-only" if _seal(libc, writable) else ""
    except Exception:
        return ""


_ST_TO_MS = {2: MS_NOSUID, 4: MS_NODEV, 8: MS_NOEXEC, 1024: MS_NOATIME,
             2048: MS_NODIRATIME, 4096: MS_RELATIME}
_PIVOT_ROOT = {"x86_64": 155, "aarch64": 41, "riscv64": 41, "ppc64le": 203, "s390x": 217}
MNT_DETACH = 2


def _locked_flags(path: str) -> int:
    """The mount flags a read-only remount of ``path`` must keep (the kernel refuses to
    drop nosuid, nodev, noexec or atime flags inherited from the parent namespace)."""
    have = os.statvfs(path).f_flag
    return sum(ms for st, ms in _ST_TO_MS.items() if have & st)


def _enter_view(libc, view: dict) -> None:
    """Build the allow-listed view under ``view["base"]`` and pivot the root there.

    1. an empty tmpfs at the base; 2. each allowed path bound at the same path inside
    it (read-only, except the submission's folder); 3. the system's top-level links,
    a few devices and, where the kernel allows, a ``/proc`` of this pid namespace; 4. the tmpfs itself made
    read-only; 5. ``pivot_root`` and the old root detached, so no path leads out.
    """
    import ctypes
    import platform
    mount = libc.mount

    def must(ok: int, what: str) -> None:
        if ok != 0:
            raise OSError(ctypes.get_errno(), f"grading view: {what} failed")

    base = view["base"]
    must(mount(b"tmpfs", base.encode(), b"tmpfs", MS_NOSUID | MS_NODEV, b"mode=0755,size=1m"),
         "tmpfs")
    binds = [(p, False) for p in view["read"]] + [(p, True) for p in view["write"]]
    binds += [(d, True) for d in view["devices"]]
    for path, _ in sorted(binds):
        target = base + path
        if os.path.isdir(path):
            os.makedirs(target, exist_ok=True)
        else:
            os.makedirs(os.path.dirname(target), exist_ok=True)
            if not os.path.exists(target):
                open(target, "a").close()
        must(mount(path.encode(), target.encode(), None, MS_BIND | MS_REC, None), f"bind {path}")
    for path, writable in binds:
        if not writable:
            flags = MS_BIND | MS_REMOUNT | MS_RDONLY | _locked_flags(path)
            must(mount(None, (base + path).encode(), None, flags, None), f"read-only {path}")
    for link, target in view["links"].items():
        os.symlink(target, base + link)
    # A /proc of this pid namespace only. The kernel refuses it where the outer /proc has
    # parts covered (inside bubblewrap): then there is no /proc at all, never the outer one,
    # whose /proc/PID/root would lead back out.
    os.makedirs(base + "/proc", exist_ok=True)
    mount(b"proc", (base + "/proc").encode(), b"proc", MS_NOSUID | MS_NODEV | MS_NOEXEC, None)
    must(mount(None, base.encode(), None, MS_BIND | MS_REMOUNT | MS_RDONLY | MS_NOSUID | MS_NODEV,
               None), "read-only root")
    number = _PIVOT_ROOT.get(platform.machine())
    if number is None:
        raise OSError(f"grading view: pivot_root unknown on {platform.machine()}")
    os.chdir(base)
    must(libc.syscall(number, b".", b"."), "pivot_root")
    must(libc.umount2(b".", MNT_DETACH), "detach the old root")
    os.chdir("/")


def _seal(libc, writable: list[str]) -> bool:
    """Remount everything read-only except ``writable`` (ids are mapped already)."""
    mount = libc.mount
    keep = {os.path.realpath(w) for w in writable}
    for path in sorted(keep):
        if mount(path.encode(), path.encode(), None, MS_BIND | MS_REC, None) != 0:
            return False
    complete = True
    for point, options in _mounts():
        if point in keep:
            continue
        flags = MS_BIND | MS_REMOUNT | MS_RDONLY
        for option in options.split(","):
            flags |= _MOUNT_FLAGS.get(option, 0)
        if mount(None, point.encode(), None, flags, None) != 0:
            complete = complete and point not in ("/", "/tmp", "/dev/shm", "/home")
    return complete


def _become_pid_one() -> None:
    """Continue as the first process of the new pid namespace.

    The process that called unshare(CLONE_NEWPID) cannot start threads (clone fails
    with EINVAL), and OpenMP, torch and scikit-learn start threads. So it forks: the
    child, pid 1 inside, runs the learner's code; the parent only waits and exits with
    the child's status. Both share the process group the worker kills.
    """
    child = os.fork()
    if child == 0:
        return
    while True:
        try:
            _, status = os.waitpid(child, 0)
            break
        except InterruptedError:
            continue
    os._exit(os.WEXITSTATUS(status) if os.WIFEXITED(status) else 128 + os.WTERMSIG(status))


def _under(path: str, roots: tuple[str, ...]) -> bool:
    return any(path == r or path.startswith(r.rstrip("/") + "/") for r in roots)


def make_guard(writable, deny, allow_read, private):
    """The audit hook (PEP 578) of a sandboxed child. Arguments are folder lists:
    ``writable`` (the only places written), ``deny`` (never read: the answer key,
    other submissions, the grader's folders), ``allow_read`` (read even inside
    ``private``) and ``private`` (read only where ``allow_read`` says, e.g. $HOME)."""
    writable = tuple(os.path.realpath(p) for p in writable) + ("/dev/null",)
    deny = tuple(os.path.realpath(p) for p in deny)
    allow_read = tuple(os.path.realpath(p) for p in allow_read)
    private = tuple(os.path.realpath(p) for p in private)
    me = os.getpid()
    realpath, fspath, getcwd = os.path.realpath, os.fspath, os.getcwd
    write_flags = os.O_WRONLY | os.O_RDWR | os.O_CREAT | os.O_TRUNC | os.O_APPEND

    def resolve(path):
        if isinstance(path, int) or path is None:
            return None
        path = fspath(path)
        if isinstance(path, bytes):
            path = path.decode(errors="replace")
        return realpath(path if path.startswith("/") else getcwd() + "/" + path)

    def refuse(what):
        raise PermissionError(f"grading sandbox: {what} is not allowed while grading")

    def check_read(path):
        path = resolve(path)
        if path is None:
            return
        if _under(path, deny) or (_under(path, private) and not _under(path, allow_read)
                                  and not _under(path, writable)):
            refuse(f"reading {path}")

    def check_write(path):
        path = resolve(path)
        if path is not None and not _under(path, writable):
            refuse(f"writing {path}")

    def hook(event, args):
        if event == "open":
            path, mode, flags = args
            if (isinstance(mode, str) and any(c in mode for c in "wax+")) or \
                    (isinstance(flags, int) and flags & write_flags):
                check_write(path)
            check_read(path)
        elif event in PATH_WRITE_EVENTS:
            for i in PATH_WRITE_EVENTS[event]:
                if i < len(args):
                    check_write(args[i])
        elif event in PATH_READ_EVENTS:
            check_read(args[PATH_READ_EVENTS[event]])
        elif event in ("os.kill", "os.killpg"):
            if args[0] != me:
                refuse("signalling another process")
            if me == 1 and args[1] in _DEADLY and signal.getsignal(args[1]) == signal.SIG_DFL:
                os._exit(128 + args[1])   # as pid 1 it would be ignored: die as asked
        elif event == "sys.addaudithook":
            raise RuntimeError("grading sandbox: no new audit hooks")
        elif event in BLOCKED_EVENTS or event.startswith(("ctypes.", "socket.")):
            refuse(_what(event))

    return hook


def _what(event: str) -> str:
    """A refused audit event, in words."""
    if event.startswith("socket."):
        return "using the network"
    if event.startswith("ctypes."):
        return "calling C functions through ctypes"
    if event.startswith("gc."):
        return "inspecting the interpreter's objects"
    if event in ("sys.settrace", "sys.setprofile"):
        return "tracing the interpreter"
    if event == "resource.prlimit":
        return "changing another process's limits"
    return f"starting a process ({event})"


def shut_in(job: dict, keep_fd: int) -> str:
    """Everything a child does before it touches learner code. Returns what shut the
    file system: "view" (only the allow-list exists), "read-only" (everything
    read-only outside the temporary folder) or "" (namespaces unavailable)."""
    os.setpgid(0, 0)
    for sig in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP):
        signal.signal(sig, signal.SIG_DFL)
    devnull = os.open(os.devnull, os.O_RDWR)
    for fd in (0, 1, 2):
        os.dup2(devnull, fd)
    os.close(devnull)
    for fd in _open_pipes():
        if fd > 2 and fd != keep_fd:
            try:
                os.close(fd)
            except OSError:
                pass
    writable = [job["root"]]
    data = _vm_data()                    # read before /proc may be gone
    view = job.get("view")
    if view is not None:
        view = {**view, "base": _VIEW_BASE}
    sealed = isolate(writable, view) if job.get("isolate", True) else ""
    extra = job["memory_mb"] * 2**20
    if data:
        _limit(resource.RLIMIT_DATA, data + extra)
    _limit(resource.RLIMIT_FSIZE, job.get("file_mb", 256) * 2**20)
    _limit(resource.RLIMIT_CORE, 0)
    signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
    os.environ.clear()
    os.environ.update(job["env"])
    import tempfile
    tempfile.tempdir = None
    os.chdir(job["work"])
    sys.dont_write_bytecode = True
    try:
        import torch
        torch.set_num_threads(max(1, int(job.get("threads", 1))))
    except Exception:
        pass
    sys.addaudithook(make_guard(writable, job["deny"], job["allow_read"], job["private"]))
    return sealed


def _limit(which, value: int) -> None:
    try:
        soft, hard = resource.getrlimit(which)
        value = value if hard == resource.RLIM_INFINITY else min(value, hard)
        resource.setrlimit(which, (value, value))
    except (ValueError, OSError):
        pass


def _vm_data() -> int:
    try:
        with open("/proc/self/status") as fh:
            for line in fh:
                if line.startswith("VmData:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    return 0


def _open_pipes() -> list[int]:
    try:
        fds = [int(fd) for fd in os.listdir("/proc/self/fd")]
    except OSError:
        return []
    found = []
    for fd in fds:
        try:
            if os.readlink(f"/proc/self/fd/{fd}").startswith(("pipe:", "socket:")):
                found.append(fd)
        except OSError:
            continue
    return found


# -- the notebook process -----------------------------------------------------------------
def describe(err: BaseException | None) -> dict | None:
    if err is None:
        return None
    try:
        value = str(err)
    except BaseException:
        value = "(the error's message could not be shown)"
    return {"ename": type(err).__name__, "evalue": value[:4000]}


def _snapshot(shell, names: list[str], limit_mb: int) -> tuple[dict, bytes]:
    """Copy the objects a check reads out of the learner's namespace (cloudpickle)."""
    import cloudpickle
    index, blobs, offset = {}, [], 0
    room = limit_mb * 2**20 - 2**20            # leave room for the random-number state
    for name in names:
        if name not in shell.user_ns:
            continue
        try:
            blob = cloudpickle.dumps(shell.user_ns[name])
        except BaseException as err:
            index[name] = {"error": f"{type(err).__name__}: {str(err)[:300]}"}
            continue
        if offset + len(blob) > room:
            index[name] = {"error": f"it is too large to copy ({len(blob) / 2**20:.0f} MB; "
                                    f"the limit is {limit_mb} MB)"}
            continue
        index[name] = [offset, len(blob)]
        blobs.append(blob)
        offset += len(blob)
    try:
        import random
        import numpy as np
        import torch
        state = cloudpickle.dumps({"torch": torch.get_rng_state(), "random": random.getstate(),
                                   "numpy": np.random.get_state(),
                                   "dtype": torch.get_default_dtype(),
                                   "grad": torch.is_grad_enabled()})
        index["\0state"] = [offset, len(state)]
        blobs.append(state)
    except BaseException:
        pass
    return index, b"".join(blobs)


def run_notebook(job: dict, secret: list, fd: int) -> None:
    """Child: run the graded notebook's code cells, reporting each to the worker."""
    secret.clear()   # the grading secret is for the check processes, not the learner's code
    sealed = shut_in(job, fd)
    send(fd, {"type": "hello", "confinement": sealed})
    shell = _SHELL
    for i, cell in enumerate(job["cells"]):
        send(fd, {"type": "start", "cell": i})
        if cell.get("check") is not None:
            k = cell["check"]
            index, payload = _snapshot(shell, job["checks"][k]["names"], job["snapshot_mb"])
            send(fd, {"type": "snapshot", "check": k, "index": index}, payload)
        result = shell.run_cell(cell["source"], store_history=False)
        error = result.error_before_exec or result.error_in_exec
        send(fd, {"type": "end", "cell": i, "error": describe(error)})
        if getattr(shell, "exit_now", False):
            send(fd, {"type": "exit", "cell": i})
            break
    send(fd, {"type": "done"})


# -- the check process ----------------------------------------------------------------------
def _watched_spaces() -> dict[str, dict]:
    spaces = {"sys.modules": {k: v for k, v in sys.modules.items()
                              if k.split(".")[0] in ("coursekit", "builtins", "torch", "numpy")}}
    for name, module in list(sys.modules.items()):
        if module is not None and (name in WATCHED_MODULES or name.split(".")[0] == "coursekit"):
            spaces[name] = vars(module)
    try:
        import torch
        for cls in (torch.Tensor, torch.nn.Module, torch.nn.Parameter):
            spaces[f"{cls.__module__}.{cls.__qualname__}"] = dict(cls.__dict__)
    except Exception:
        pass
    return spaces


def fingerprint() -> dict[tuple[str, str], tuple]:
    """(namespace, name) -> (object, code object) for every callable, class or module."""
    prints = {}
    for space, mapping in _watched_spaces().items():
        for key, value in list(mapping.items()):
            if space == "sys.modules" or callable(value) or isinstance(value, types.ModuleType):
                prints[(space, str(key))] = (value, getattr(value, "__code__", None))
    return prints


def changed_since(prints: dict) -> list[str]:
    now = {}
    for space, mapping in _watched_spaces().items():
        for key, value in list(mapping.items()):
            now[(space, str(key))] = value
    changed = []
    for (space, key), (value, code) in prints.items():
        current = now.get((space, key), _MISSING)
        if current is not value or getattr(current, "__code__", None) is not code:
            changed.append(f"{space}.{key}" if space != "sys.modules" else f"sys.modules[{key!r}]")
    return sorted(changed)


_MISSING = object()


class NotCopied:
    """Stands for a learner object the grader could not copy out of the notebook."""

    def __init__(self, name: str, error: str):
        object.__setattr__(self, "_why", f"the grader could not copy `{name}` out of the "
                                         f"notebook to check it ({error})")

    def __getattr__(self, attr):
        raise RuntimeError(object.__getattribute__(self, "_why"))

    def __call__(self, *args, **kwargs):
        raise RuntimeError(object.__getattribute__(self, "_why"))

    def __repr__(self):
        return f"<not copied: {object.__getattribute__(self, '_why')}>"


def run_check(job: dict, check: dict, index: dict, payload: bytes, secret: list,
              fd: int) -> None:
    """Child: run one released check on the copied objects, in pristine coursekit."""
    shut_in(job, fd)
    from coursekit.checks import assertions
    assertions._GRADING_SECRET = secret[0] if secret else ""   # seeds of the hidden cases
    import cloudpickle
    namespace = {"__name__": "__main__", "__builtins__": builtins}
    for statement in job["imports"]:
        try:
            exec(compile(statement, "<solution imports>", "exec"), namespace)
        except Exception:
            pass
    for module in check["modules"]:
        try:
            __import__(module)
        except Exception:
            pass
    prints = fingerprint() if _PRINTS is None or _PRINTS[0] != len(sys.modules) else _PRINTS[1]
    namespace["get_ipython"] = lambda: _SHELL
    copy_errors = {}
    for name, where in index.items():
        if name == "\0state":
            continue
        if isinstance(where, dict):
            copy_errors[name] = where.get("error", "unknown error")
            if name not in check["bound"]:
                namespace[name] = NotCopied(name, copy_errors[name])
            continue
        try:
            start, length = where
            namespace[name] = cloudpickle.loads(payload[start:start + length])
        except BaseException as err:
            copy_errors[name] = f"{type(err).__name__}: {str(err)[:300]}"
            namespace[name] = NotCopied(name, copy_errors[name])
    try:
        start, length = index["\0state"]
        _restore(cloudpickle.loads(payload[start:start + length]))
    except BaseException:
        pass
    error = None
    try:
        exec(compile(check["code"], f"<{check['gid']}>", "exec"), namespace)
    except BaseException as err:  # SystemExit and KeyboardInterrupt too: all are failures
        error = err
    tampered = changed_since(prints)
    send(fd, {"type": "verdict", "passed": error is None and not tampered,
              "error": describe(error), "tampered": tampered[:20],
              "copy_errors": copy_errors})


def _restore(state: dict) -> None:
    import random
    import numpy as np
    import torch
    torch.set_rng_state(state["torch"])
    random.setstate(state["random"])
    np.random.set_state(state["numpy"])
    torch.set_default_dtype(state["dtype"])
    torch.set_grad_enabled(state["grad"])


# -- the worker -----------------------------------------------------------------------------
_SHELL = None
_VIEW_BASE = ""                       # an empty folder each child mounts its view on
_WARM: set[str] = set()
_PRINTS: tuple[int, dict] | None = None   # (len(sys.modules), fingerprint) of the worker


def _prepare() -> None:
    """Import what every notebook needs, once, in the pristine worker."""
    global _SHELL, _VIEW_BASE
    import tempfile
    _VIEW_BASE = tempfile.mkdtemp(prefix="view-", dir=os.getcwd())
    if LINUX:
        try:
            import ctypes
            ctypes.CDLL(None).prctl(36, 1, 0, 0, 0)   # PR_SET_CHILD_SUBREAPER
        except Exception:
            pass
    import importlib
    import cloudpickle  # noqa: F401
    import matplotlib
    matplotlib.use("Agg")
    import coursekit.checks
    # What notebooks use all the time. torch._dynamo comes in with the first optimizer
    # step and rebinds torch.manual_seed, so it must be loaded before any fingerprint.
    # (Not scikit-learn: importing it starts an OpenMP thread, and forking after that
    # is not safe.)
    for name in ("numpy", "torch", "torch.optim", "torch._dynamo", "matplotlib.pyplot",
                 "einops", "tqdm.auto", "ipywidgets", "IPython.display", "coursekit",
                 "coursekit.checks.assertions", "coursekit.data", "coursekit.models",
                 "coursekit.plots", "coursekit.train"):
        try:
            importlib.import_module(name)
        except Exception:
            pass
    import pkgutil
    for info in pkgutil.iter_modules(coursekit.checks.__path__):
        if re.fullmatch(r"ch\d+", info.name):
            try:
                getattr(coursekit.checks, info.name)
            except Exception:
                pass
    from traitlets.config import Config
    from IPython.core.interactiveshell import InteractiveShell
    config = Config()
    config.HistoryManager.enabled = False
    _SHELL = InteractiveShell.instance(config=config)

    def ask_exit():   # exit() / quit(): ipykernel shuts the kernel down; the runner stops
        _SHELL.exit_now = True
    _SHELL.ask_exit = ask_exit


def warm(statements: list[str]) -> None:
    """Run the solution's import statements in the worker, so children start warm."""
    for statement in statements:
        if statement in _WARM:
            continue
        _WARM.add(statement)
        try:
            exec(compile(statement, "<warm-up>", "exec"), {"__name__": "__warm__"})
        except Exception:
            pass


def _fork(target, *args) -> tuple[int, int]:
    read_fd, write_fd = os.pipe()
    pid = os.fork()
    if pid == 0:
        try:
            os.close(read_fd)
            target(*args, write_fd)
        except BaseException:
            pass
        finally:
            os._exit(0)
    os.close(write_fd)
    return pid, read_fd


def watch(pid: int, fd: int, job: dict, on_frame, limit) -> dict | None:
    """Follow a child until it exits, feeding its frames to ``on_frame``.

    ``limit(now)`` returns a stop reason dict when a deadline passed. Returns None
    when the child exited by itself after saying "done"/"verdict", else a stop dict:
    {"why": "timeout" | "memory" | "died" | "protocol", ...}.
    """
    reader = FrameReader(job["snapshot_mb"] * 2**20)
    baseline = rss_bytes(os.getpid())
    memory = job["memory_mb"] * 2**20
    finished, status, eof, stop = False, None, False, None
    last_memory, used = 0.0, 0

    def drain(wait: float) -> bool:
        """Read what the child wrote; False at end of file."""
        nonlocal finished, stop
        ready, _, _ = select.select([fd], [], [], wait)
        if not ready:
            return True
        data = os.read(fd, 1 << 20)
        if not data:
            return False
        try:
            for header, payload in reader.feed(data):
                if header.get("type") in ("done", "verdict"):
                    finished = True
                on_frame(header, payload)
        except (ValueError, KeyError, TypeError, IndexError):
            stop = {"why": "protocol"}
        return True

    while True:
        if not eof:
            eof = not drain(_POLL)
        else:
            time.sleep(_POLL)
        if status is None:
            done_pid, code = os.waitpid(pid, os.WNOHANG)
            if done_pid:
                status = code
                for _ in range(64):     # what it wrote before exiting (a pipe holds 64 KiB)
                    if eof or stop is not None or not select.select([fd], [], [], 0)[0]:
                        break
                    eof = not drain(0)
                break_now = True
            else:
                break_now = False
        else:
            break_now = True
        now = time.monotonic()
        if stop is None and not break_now:
            stop = limit(now)
        if stop is None and not break_now and LINUX and now - last_memory > 0.2:
            last_memory = now
            used = memory_used(pid, baseline)
            if used > memory:
                stop = {"why": "memory"}
        if stop is not None or break_now:
            break
    kill_tree(pid)
    os.close(fd)
    if stop is None and not finished:   # died: most likely of memory if it was near the limit
        stop = {"why": "memory" if used > 0.8 * memory else "died"}
    return stop


def refusal(error: dict | None) -> str:
    """'memory' or 'sandbox' when a cell's error means grading must stop there."""
    if not error:
        return ""
    name, value = error.get("ename"), str(error.get("evalue", ""))
    if name == "MemoryError" or "can't allocate memory" in value:
        return "memory"
    if name == "PermissionError" and value.startswith("grading sandbox:"):
        return "sandbox"
    return ""


def grade_job(job: dict) -> dict:
    """Run one submission: the notebook process, then one check process per check."""
    global _PRINTS
    secret = [job.pop("secret", "")]   # one holder, emptied in the notebook's process
    warm(job["imports"])
    if _PRINTS is None or _PRINTS[0] != len(sys.modules):   # shared by the check processes
        _PRINTS = (len(sys.modules), fingerprint())
    start = time.monotonic()
    cells = [{"error": None, "ran": False} for _ in job["cells"]]
    snapshots: dict[int, tuple[dict, bytes]] = {}
    current = {"cell": None, "since": start, "confinement": ""}

    def on_frame(header, payload):
        kind = header.get("type")
        if kind == "hello":
            current["confinement"] = str(header.get("confinement") or "")
        elif kind == "start":
            current["cell"], current["since"] = int(header["cell"]), time.monotonic()
        elif kind == "end":
            index = int(header["cell"])
            cell = cells[index]
            cell["ran"], cell["error"] = True, header.get("error")
            current["cell"] = None
            why = refusal(cell["error"])
            if why:   # out of memory, or refused by the sandbox: grading stops here
                current["stop"] = {"why": why, "cell": index,
                                   "detail": str(cell["error"].get("evalue", ""))[:300]}
        elif kind == "snapshot":
            snapshots[int(header["check"])] = (header["index"], payload)
        elif kind == "exit":
            current["exit"] = int(header["cell"])

    def limit(now):
        if "stop" in current:
            return current["stop"]
        if now - start > job["notebook_timeout"]:
            return {"why": "notebook-timeout", "cell": current["cell"]}
        if current["cell"] is not None and now - current["since"] > job["cell_timeout"]:
            return {"why": "timeout", "cell": current["cell"]}
        return None

    pid, fd = _fork(run_notebook, job, secret)
    stop = watch(pid, fd, job, on_frame, limit)
    if stop is not None and "cell" not in stop:
        stop["cell"] = current["cell"]
    if stop is None and "exit" in current:
        stop = {"why": "exit", "cell": current["exit"]}

    checks = []
    for k, check in enumerate(job["checks"]):
        cell = check["cell"]
        stopped_at = stop.get("cell") if stop is not None else None
        if k not in snapshots or (stopped_at is not None and stopped_at <= cell):
            checks.append({"outcome": "not-run"})   # not reached, or stopped inside or before
            continue
        index, payload = snapshots[k]
        verdict: dict = {}

        def on_verdict(header, _payload, verdict=verdict):
            if header.get("type") == "verdict":
                verdict.update(header)

        began = time.monotonic()

        def check_limit(now, began=began):
            if now - began > job["cell_timeout"]:
                return {"why": "timeout"}
            return None

        pid, fd = _fork(run_check, job, check, index, payload, secret)
        check_stop = watch(pid, fd, job, on_verdict, check_limit)
        if check_stop is not None or not verdict:
            checks.append({"outcome": "stopped", "stop": check_stop or {"why": "died"},
                           "kernel": cells[cell]["error"]})
        else:
            checks.append({"outcome": "passed" if verdict.get("passed") else "failed",
                           "error": verdict.get("error"), "tampered": verdict.get("tampered", []),
                           "copy_errors": verdict.get("copy_errors", {}),
                           "kernel": cells[cell]["error"]})
    return {"cells": cells, "stop": stop, "checks": checks,
            "sealed": bool(current["confinement"]), "confinement": current["confinement"],
            "bubblewrap": os.environ.get("COURSEKIT_BWRAP") == "1",
            "seconds": round(time.monotonic() - start, 3)}


def serve() -> None:
    """The worker's loop: one JSON job per line on stdin, one JSON answer per line."""
    out = os.fdopen(os.dup(1), "w", buffering=1)
    os.dup2(2, 1)                 # stray prints must not corrupt the protocol
    _prepare()
    out.write(json.dumps({"ready": True, "pid": os.getpid()}) + "\n")
    for line in sys.stdin:
        message = json.loads(line)
        if message.get("op") == "quit":
            break
        try:
            answer = {"ok": True, "result": grade_job(message["job"])}
        except Exception as err:  # a bug in the grader, not in the submission
            import traceback
            answer = {"ok": False, "error": f"{type(err).__name__}: {err}",
                      "trace": traceback.format_exc()}
        kill_tree()
        out.write(json.dumps(answer) + "\n")


if __name__ == "__main__":
    serve()
