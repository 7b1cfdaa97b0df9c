"""OS confinement of a recognizer worker (Linux): no_new_privs, two seccomp filters, rlimits.

Runs inside the worker process.  ``load_stage`` is applied before any plugin code is imported:
from then on the process can never create a socket, exec, start a process, trace another one,
raise its memory limit or gain privileges.  ``image_stage`` is applied when the model is loaded
and before any image arrives: it also refuses file opens for writing and truncate / unlink /
rename / link / mkdir.  Refused calls fail with ``EPERM`` (``ENOSYS`` for ``clone3`` so the C
library falls back to the inspectable ``clone``).  Filters stack and can never be removed.

The gate does not take the worker's word for any of this: :func:`inspect` reads the kernel's
own view of the worker (``/proc/PID/status``, ``limits``, ``fd``, ``fdinfo``, ``maps``) from the
gate's process.  The filters go through libseccomp (the ``pyseccomp`` binding of
``libseccomp.so.2``).
"""

from __future__ import annotations

import errno
import os
import resource
from dataclasses import dataclass
from typing import Any

_O_WRITE_BITS = (os.O_WRONLY, os.O_RDWR, os.O_CREAT, os.O_TRUNC, os.O_APPEND)
_CLONE_THREAD = 0x00010000
#: Refused from the first line of plugin code on.
_LOAD_DENY = (
    "socket", "socketpair", "execve", "execveat", "fork", "vfork", "ptrace", "process_vm_readv",
    "process_vm_writev", "io_uring_setup", "io_uring_enter", "io_uring_register", "bpf", "mount",
    "umount2", "pivot_root", "chroot", "setns", "unshare", "keyctl", "add_key", "request_key",
    "perf_event_open", "pidfd_open", "pidfd_getfd", "pidfd_send_signal", "userfaultfd", "kexec_load",
    "init_module", "finit_module", "delete_module", "reboot", "swapon", "swapoff", "setuid", "setgid",
    "setreuid", "setregid", "setresuid", "setresgid", "setgroups", "capset", "openat2",
)
#: Refused once the model is loaded, before the first image.
_IMAGE_DENY = (
    "creat", "truncate", "ftruncate", "unlink", "unlinkat", "rename", "renameat", "renameat2", "link",
    "linkat", "symlink", "symlinkat", "mkdir", "mkdirat", "rmdir", "mknod", "mknodat", "chmod", "fchmod",
    "fchmodat", "chown", "fchown", "fchownat", "lchown", "utime", "utimes", "utimensat", "futimesat",
    "fallocate", "memfd_create", "name_to_handle_at", "open_by_handle_at",
)


@dataclass(frozen=True)
class Limits:
    """Resource limits of one worker: address space, and CPU seconds for each call."""

    memory_mb: int = 4096
    cpu_seconds: float = 60.0


def load_stage(limits: Limits) -> None:
    """no_new_privs, the memory limit, and the first filter.  Raises ``OSError`` if the kernel refuses."""
    import ctypes

    libc = ctypes.CDLL(None, use_errno=True)
    pr_set_no_new_privs = 38
    if libc.prctl(pr_set_no_new_privs, 1, 0, 0, 0) != 0:
        raise OSError(ctypes.get_errno(), "prctl(PR_SET_NO_NEW_PRIVS) refused")
    memory = limits.memory_mb * 1024 * 1024
    resource.setrlimit(resource.RLIMIT_AS, (memory, memory))
    _load(_load_filter())


def image_stage() -> None:
    """The second filter: from here on nothing can be written to any file."""
    _load(_image_filter())


def arm_cpu(seconds: float) -> None:
    """Let the next call use at most ``seconds`` of CPU (``SIGXCPU`` ends the worker past it)."""
    used = resource.getrusage(resource.RUSAGE_SELF)
    spent = used.ru_utime + used.ru_stime
    soft = int(spent + seconds) + 1
    _, hard = resource.getrlimit(resource.RLIMIT_CPU)
    resource.setrlimit(resource.RLIMIT_CPU, (soft if hard == resource.RLIM_INFINITY else min(soft, hard), hard))


def _seccomp() -> Any:
    import pyseccomp  # type: ignore[import-untyped]

    return pyseccomp


def _new_filter() -> Any:
    sc = _seccomp()
    f = sc.SyscallFilter(sc.ALLOW)
    f.set_attr(sc.Attr.CTL_TSYNC, 1)  # every thread of the worker, including ones a plugin started
    return f


def _load_filter() -> Any:
    sc = _seccomp()
    f = _new_filter()
    deny = sc.ERRNO(errno.EPERM)
    for name in _LOAD_DENY:
        _rule(f, deny, name)
    _rule(f, sc.ERRNO(errno.ENOSYS), "clone3")  # arguments in a struct: make libc use clone()
    _rule(f, deny, "clone", sc.Arg(0, sc.MASKED_EQ, _CLONE_THREAD, 0))  # a process, not a thread
    me = os.getpid()
    for name in ("kill", "tgkill", "tkill"):
        _rule(f, deny, name, sc.Arg(0, sc.NE, me))
    # Only the worker's own CPU limit may change (re-armed before each call); nothing else.
    _rule(f, deny, "prlimit64", sc.Arg(0, sc.NE, 0))
    _rule(f, deny, "prlimit64", sc.Arg(1, sc.NE, resource.RLIMIT_CPU), sc.Arg(2, sc.NE, 0))
    _rule(f, deny, "setrlimit", sc.Arg(0, sc.NE, resource.RLIMIT_CPU))
    return f


def _image_filter() -> Any:
    sc = _seccomp()
    f = _new_filter()
    deny = sc.ERRNO(errno.EPERM)
    for name in _IMAGE_DENY:
        _rule(f, deny, name)
    for bit in _O_WRITE_BITS:
        _rule(f, deny, "open", sc.Arg(1, sc.MASKED_EQ, bit, bit))
        _rule(f, deny, "openat", sc.Arg(2, sc.MASKED_EQ, bit, bit))
    return f


def _rule(f: Any, action: int, name: str, *args: Any) -> None:
    try:
        f.add_rule(action, name, *args)
    except (OSError, ValueError) as exc:
        if "resolve" in str(exc).lower() or getattr(exc, "errno", None) in (errno.EINVAL, errno.EDOM):
            return  # a syscall this architecture does not have (e.g. `open` on arm64)
        raise


def _load(f: Any) -> None:
    f.load()


# -- the gate's own view of a worker ---------------------------------------------------------------


@dataclass(frozen=True)
class Confinement:
    """What the kernel says is in force for a worker (read from /proc by the gate, not reported by it)."""

    isolation: str  # "process" or "none"
    no_new_privs: bool = False
    seccomp_filters: int = 0
    memory_mb: int | None = None
    cpu_seconds_per_call: float | None = None
    problems: tuple[str, ...] = ()

    @property
    def confined(self) -> bool:
        return self.isolation == "process" and self.no_new_privs and self.seccomp_filters >= 2 and not self.problems

    def to_dict(self) -> dict[str, Any]:
        return {"isolation": self.isolation, "confined": self.confined, "no_new_privs": self.no_new_privs,
                "seccomp_filters": self.seccomp_filters, "memory_mb": self.memory_mb,
                "cpu_seconds_per_call": self.cpu_seconds_per_call, "problems": list(self.problems)}

    def describe(self) -> str:
        if self.isolation == "none":
            return "in-process, unconfined (isolation none: trusted code only)"
        if not self.confined:
            return "worker process NOT confined: " + "; ".join(self.problems or ("seccomp or no_new_privs not in force",))
        return (f"confined worker process: no_new_privs; seccomp ({self.seccomp_filters} filters: no sockets, exec, processes, "
                f"file writes, truncate/unlink/rename); memory ≤ {self.memory_mb} MiB; CPU ≤ {self.cpu_seconds_per_call:g} s per call")


IN_PROCESS = Confinement("none")


def inspect(pid: int, allowed_fds: frozenset[int], cpu_seconds: float) -> Confinement:
    """The kernel's view of worker ``pid``: privileges, filters, limits, and what it holds open."""
    proc = f"/proc/{pid}"
    problems: list[str] = []
    status = _read(f"{proc}/status")
    fields = dict(line.split(":", 1) for line in status.splitlines() if ":" in line)
    nnp = fields.get("NoNewPrivs", "").strip() == "1"
    mode = fields.get("Seccomp", "").strip()
    filters = int(fields.get("Seccomp_filters", "0").strip() or 0) if mode == "2" else 0
    memory = None
    for line in _read(f"{proc}/limits").splitlines():
        if line.startswith("Max address space"):
            soft = line.split()[3]
            memory = int(soft) // (1024 * 1024) if soft.isdigit() else None
    if memory is None:
        problems.append("no memory limit")
    held: list[tuple[int, str, int]] = []
    for name in os.listdir(f"{proc}/fd"):
        fd = int(name)
        if fd in allowed_fds:
            continue
        try:
            target = os.readlink(f"{proc}/fd/{name}")
            flags = int(next(line.split()[1] for line in _read(f"{proc}/fdinfo/{name}").splitlines() if line.startswith("flags:")), 8)
        except (OSError, StopIteration, ValueError):
            continue  # closed meanwhile
        held.append((fd, target, flags))
    # A pipe the worker holds both ends of is its own wake-up channel (runtimes' thread pools use them).
    readable_pipes = {t for _, t, f in held if t.startswith("pipe:") and not f & (os.O_WRONLY | os.O_RDWR)}
    for fd, target, flags in held:
        writable = flags & (os.O_WRONLY | os.O_RDWR)
        if target.startswith("socket:"):
            problems.append(f"holds a socket (fd {fd})")
        elif writable and not (target.startswith(("anon_inode:", "/dev/null")) or target in readable_pipes):
            problems.append(f"holds `{_short(target)}` open for writing (fd {fd})")
    for line in _read(f"{proc}/maps").splitlines():
        parts = line.split(None, 5)
        if len(parts) >= 6 and parts[1][1] == "w" and parts[1][3] == "s" and parts[5].startswith("/") and not parts[5].startswith("/dev/zero"):
            problems.append(f"maps `{_short(parts[5])}` shared and writable")
    if not nnp:
        problems.append("no_new_privs is not set")
    if filters < 2:
        problems.append(f"{filters} seccomp filter(s) in force, 2 expected")
    return Confinement("process", nnp, filters, memory, cpu_seconds, tuple(dict.fromkeys(problems)))


def _read(path: str) -> str:
    try:
        with open(path, encoding="utf-8", errors="replace") as fh:
            return fh.read()
    except OSError:
        return ""


def _short(text: str) -> str:
    return text if len(text) <= 80 else text[:77] + "..."
