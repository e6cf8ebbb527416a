"""Run untrusted model-written Python programs, one process each, so that nothing they do can crash,
hang or damage the evaluator.

Each sample runs as `python -I -S GUARD program.py` in a fresh scratch directory (its cwd and TMPDIR),
in its own session (process group), with:
- a wall-clock timeout, after which the whole process group is killed (SIGKILL via killpg), and the
  group is killed after a normal exit too, so nothing it started survives it;
- resource limits set before exec (`resource.setrlimit`): address space (memory), CPU seconds, file
  size, open files, and processes (RLIMIT_NPROC only binds non-root users; see the guard);
- no network: a fresh network namespace with only a down loopback (`unshare(CLONE_NEWNET)`, when the
  kernel lets us; as root it does) and, always, the guard;
- the guard: an audit hook (PEP 578) installed before the program runs that refuses socket creation
  for internet/unix families, process creation (fork, exec, spawn, subprocess, os.system), signals to
  other processes, loading native libraries with ctypes, and opening files for writing (or removing,
  renaming, chmod-ing them) outside the scratch directory. A refused action raises PermissionError in
  the program, so the sample fails with that reason.
The audit hook is a seatbelt, not a jail — a determined program could escape it through a C
extension — which is why the process, time and memory limits and the process-group kill do not rely
on it. A sample's failure of any kind is a result ("failed: ...", "timed out", "out of memory").
"""

from __future__ import annotations

import ctypes
import os
import resource
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

GUARD = r'''
import os, sys
_root = os.path.realpath(os.getcwd())
_allowed_devices = ("/dev/null",)
def _inside(path):
    if isinstance(path, int):
        return True
    try:
        path = os.fsdecode(path)
    except TypeError:
        return False
    full = os.path.realpath(os.path.join(_root, path))
    return full == _root or full.startswith(_root + os.sep) or full in _allowed_devices
_WRITE_FLAGS = os.O_WRONLY | os.O_RDWR | os.O_CREAT | os.O_APPEND | os.O_TRUNC
_PROCESS = {"os.fork", "os.forkpty", "os.posix_spawn", "os.spawn", "os.exec", "os.system", "subprocess.Popen",
            "pty.spawn", "ctypes.dlopen", "ctypes.dlsym", "ctypes.cdata", "sys._debugmallocstats", "os.setsid"}
_PATHS = {"os.remove", "os.rmdir", "os.rename", "os.chmod", "os.chown", "os.link", "os.symlink", "os.truncate",
          "os.mkdir", "os.utime", "shutil.rmtree", "shutil.move", "shutil.copyfile"}
def _guard(event, args):
    if event == "open":
        path, mode, flags = args
        writing = (mode is not None and any(c in mode for c in "wax+")) or (mode is None and flags & _WRITE_FLAGS)
        if writing and not _inside(path):
            raise PermissionError(f"sandbox: writing outside the scratch directory is blocked ({path})")
    elif event == "socket.__new__":
        if args[1] in (2, 10, 1, 16, 17):  # AF_INET, AF_INET6, AF_UNIX, AF_NETLINK, AF_PACKET
            raise PermissionError("sandbox: network access is blocked")
    elif event in ("socket.connect", "socket.bind", "socket.sendto", "socket.getaddrinfo"):
        raise PermissionError("sandbox: network access is blocked")
    elif event in _PROCESS:
        raise PermissionError(f"sandbox: {event} is blocked")
    elif event == "os.kill" and args[0] not in (0, os.getpid()):
        raise PermissionError("sandbox: signals to other processes are blocked")
    elif event in _PATHS and not all(_inside(a) for a in args[:2] if isinstance(a, (str, bytes, os.PathLike))):
        raise PermissionError(f"sandbox: {event} outside the scratch directory is blocked")
sys.addaudithook(_guard)
del _guard
_program = sys.argv[1]
sys.argv = sys.argv[1:]
with open(_program) as _f:
    _code = compile(_f.read(), _program, "exec")
exec(_code, {"__name__": "__main__", "__file__": _program, "__builtins__": __builtins__})
'''

CLONE_NEWNET = 0x40000000
CLONE_NEWUSER = 0x10000000


@dataclass
class Limits:
    timeout: float = 10.0  # wall-clock seconds per sample
    memory_mb: int = 1024  # address space
    file_size_mb: int = 16
    max_processes: int = 64  # per user; binds only non-root users
    open_files: int = 64


@dataclass
class SandboxResult:
    passed: bool
    reason: str  # "passed", "timed out", "out of memory", "failed: <last line of stderr>", ...
    seconds: float


def _new_network_namespace_flags() -> int | None:
    """The unshare() flags that give a child its own empty network namespace here, or None."""
    libc = ctypes.CDLL(None, use_errno=True)
    for flags in (CLONE_NEWNET, CLONE_NEWUSER | CLONE_NEWNET):
        pid = os.fork()
        if pid == 0:
            os._exit(0 if libc.unshare(flags) == 0 else 1)
        _, status = os.waitpid(pid, 0)
        if os.waitstatus_to_exitcode(status) == 0:
            return flags
    return None


_NETNS_FLAGS: int | None | bool = False  # False = not probed yet


def _netns_flags() -> int | None:
    global _NETNS_FLAGS
    if _NETNS_FLAGS is False:
        _NETNS_FLAGS = _new_network_namespace_flags()
    return _NETNS_FLAGS  # type: ignore[return-value]


def network_isolation() -> str:
    """How the network is cut off here, for the results' settings."""
    return "network namespace + audit hook" if _netns_flags() is not None else "audit hook"


def _limit_child(limits: Limits, netns: int | None):
    mb = 1024 * 1024

    def apply() -> None:  # runs in the child between fork and exec
        if netns is not None:
            ctypes.CDLL(None, use_errno=True).unshare(netns)
        cpu = int(limits.timeout) + 1
        resource.setrlimit(resource.RLIMIT_CPU, (cpu, cpu + 1))
        resource.setrlimit(resource.RLIMIT_AS, (limits.memory_mb * mb, limits.memory_mb * mb))
        resource.setrlimit(resource.RLIMIT_FSIZE, (limits.file_size_mb * mb, limits.file_size_mb * mb))
        resource.setrlimit(resource.RLIMIT_NOFILE, (limits.open_files, limits.open_files))
        resource.setrlimit(resource.RLIMIT_NPROC, (limits.max_processes, limits.max_processes))
        resource.setrlimit(resource.RLIMIT_CORE, (0, 0))

    return apply


def run_program(source: str, limits: Limits | None = None) -> SandboxResult:
    """Run one program; passed = it exited 0 within the limits."""
    limits = limits or Limits()
    start = time.monotonic()
    scratch = Path(tempfile.mkdtemp(prefix="phi4-sandbox-"))
    try:
        (scratch / "program.py").write_text(source)
        env = {"PATH": "/usr/bin:/bin", "HOME": str(scratch), "TMPDIR": str(scratch), "LANG": "C.UTF-8",
               "PYTHONHASHSEED": "0", "OMP_NUM_THREADS": "1"}  # fmt: skip
        process = subprocess.Popen(
            [sys.executable, "-I", "-S", "-c", GUARD, "program.py"],
            cwd=scratch, env=env, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
            start_new_session=True, preexec_fn=_limit_child(limits, _netns_flags()),
        )  # fmt: skip
        try:
            _, stderr = process.communicate(timeout=limits.timeout)
            timed_out = False
        except subprocess.TimeoutExpired:
            timed_out = True
        _kill_group(process.pid)
        if timed_out:
            process.communicate()
            return SandboxResult(False, "timed out", time.monotonic() - start)
        return SandboxResult(process.returncode == 0, _reason(process.returncode, stderr), time.monotonic() - start)
    finally:
        shutil.rmtree(scratch, ignore_errors=True)


def _kill_group(pid: int) -> None:
    try:
        os.killpg(pid, signal.SIGKILL)
    except (ProcessLookupError, PermissionError):
        pass


def _reason(returncode: int, stderr: bytes) -> str:
    if returncode == 0:
        return "passed"
    lines = stderr.decode("utf-8", "replace").strip().splitlines()
    last = lines[-1][:300] if lines else ""
    if "MemoryError" in last:
        return "out of memory"
    if returncode < 0:
        name = signal.Signals(-returncode).name
        return {"SIGXCPU": "timed out (CPU limit)", "SIGXFSZ": "failed: file size limit", "SIGKILL": "killed (memory or limits)"}.get(name, f"killed by {name}")
    return f"failed: {last}" if last else f"failed: exit status {returncode}"


def run_programs(sources: Sequence[str], limits: Limits | None = None, workers: int = 4) -> list[SandboxResult]:
    """Run many programs, `workers` at a time; results in order. Never raises for a sample."""

    def one(source: str) -> SandboxResult:
        try:
            return run_program(source, limits)
        except Exception as e:  # e.g. the OS refused to start a process: still a failed sample
            return SandboxResult(False, f"sandbox error: {type(e).__name__}: {e}", 0.0)

    if workers <= 1 or len(sources) <= 1:
        return [one(s) for s in sources]
    with ThreadPoolExecutor(workers) as pool:
        return list(pool.map(one, sources))
