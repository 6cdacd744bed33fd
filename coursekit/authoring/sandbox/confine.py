"""Shutting a child in before it runs learner code.

:func:`shut_in` does it all: a process group of its own, no inherited pipes but its
own, namespaces and the file-system view (:func:`isolate`), resource limits, the
submission's environment and folder, and the audit hook (:func:`make_guard`).
"""
from __future__ import annotations

import os
import re
import resource
import signal
import sys

from coursekit.authoring.sandbox.messages import Job

LINUX = sys.platform.startswith("linux")
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


def shut_in(job: Job, keep_fd: int) -> str:
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
    writable = [job.root]
    data = _vm_data()                    # read before /proc may be gone
    sealed = isolate(writable, job.view) if job.isolate else ""
    extra = job.memory_mb * 2**20
    if data:
        _limit(resource.RLIMIT_DATA, data + extra)
    _limit(resource.RLIMIT_FSIZE, job.file_mb * 2**20)
    _limit(resource.RLIMIT_CORE, 0)
    signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
    os.environ.clear()
    os.environ.update(job.env)
    import tempfile
    tempfile.tempdir = None
    os.chdir(job.work)
    sys.dont_write_bytecode = True
    try:
        import torch
        torch.set_num_threads(max(1, int(job.threads)))
    except Exception:
        pass
    sys.addaudithook(make_guard(writable, job.deny, job.allow_read, job.private))
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

