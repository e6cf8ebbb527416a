"""Run untrusted model-written Python against trusted tests, with limits the kernel enforces.

The design (docs/sandbox.md has the long form):

- The jail is bubblewrap (`bwrap`), outside the sample's interpreter: new pid, network, ipc and uts
  namespaces; a read-only view of only /usr, the libraries and the Python runtime; a size-limited tmpfs
  at /tmp (the cwd, HOME and TMPDIR; gone with the sandbox); an unprivileged uid (as root: a fresh uid
  per concurrent sample, so the process limit is per sample); no capabilities; no_new_privs; a seccomp
  filter against the kernel's attack surface (ptrace, mount, namespaces, bpf, keyctl, ...); rlimits on
  CPU, address space, file size, open files and processes. The pid namespace's init exits with the
  harness, or the evaluator kills it at the timeout; either way the evaluator waits for bwrap, which
  returns once the kernel has killed and reaped every process in the namespace, setsid children included.
- Inside, a trusted harness process H forks the sample process S. S runs the program's code; H runs
  the tests and calls S's functions over a pipe, passing plain values only (int, float, str, bytes,
  list, tuple, dict, set, ..., rebuilt by H from a tagged binary format; anything else stays in S as an
  opaque handle). The tests never execute sample code in their own interpreter: exiting early, exit
  hooks, patched builtins and objects whose `__eq__` returns True cannot make a test pass.
- The verdict is a positive signal: H writes a random per-run nonce, which it reads from a pipe only
  after the tests ran, on a verdict pipe. S holds neither pipe (closed before the sample's code ran) and
  cannot read H's memory (H is not dumpable; ptrace is filtered). Exit statuses never pass.
- Output (stdout and stderr together) is read to at most 64 KiB; the rest is drained and discarded. The
  reason of a failure is one of a fixed set of phrases (built-in exception names at most), never text
  the program printed or put in an exception message.

A `Program` is code plus tests. A plain string is a self-checking program (its asserts inline): it runs
entirely as the sample and passes when it runs to its end; such a program could forge its own pass by
speaking S's side of the pipe protocol, so callers that have tests should pass them separately.
"""

from __future__ import annotations

import functools
import importlib.util
import json
import marshal
import os
import re
import secrets
import selectors
import shutil
import signal
import struct
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

from phi4cli.errors import Phi4Error

OUTPUT_LIMIT = 64 * 1024  # bytes of a program's output kept; the rest is read and discarded
UID_BASE = 1_500_000_000  # sandbox uids (as root): above any real or container-mapped user
VERDICT_LIMIT = 4096


@dataclass
class Limits:
    timeout: float = 10.0  # wall-clock seconds per program (tests included)
    memory_mb: int = 1024  # address space per process
    file_size_mb: int = 16  # largest file a program may write
    max_processes: int = 8  # processes and threads of the sample's uid, harness included (memory <= 8 x memory_mb)
    open_files: int = 64
    scratch_mb: int = 64  # the sample's /tmp: a size-limited tmpfs (memory), gone with the sandbox


@dataclass
class Program:
    """Untrusted `code`, and trusted `tests` that call the code's functions by name (run in the harness)."""

    code: str
    tests: str = ""


@dataclass
class SandboxResult:
    passed: bool
    reason: str  # "passed", "timed out", "out of memory", "failed: <a fixed phrase>", "sandbox error: ..."
    seconds: float
    output: bytes = b""  # the first OUTPUT_LIMIT bytes of stdout+stderr; untrusted, never logged by phi4


# ----------------------------------------------------------------------------------- the harness
# Runs inside the sandbox as `python -I -S -B -u harness.pyc JOB_FD NONCE_FD VERDICT_FD UID LIMITS...`. Standard library
# only, and few imports (each costs startup time per sample).

HARNESS = r'''
import builtins, os, sys

# argv: JOB_FD NONCE_FD VERDICT_FD UID CPU_S MEMORY_BYTES FILE_BYTES OPEN_FILES PROCESSES
JOB_FD, NONCE_FD, VERDICT_FD, UID, *LIMITS = (int(a) for a in sys.argv[1:])
MAX_MESSAGE = 16 << 20
BLOCKED = ("network", "process creation", "signals to other processes")
EXITS = ("SystemExit", "KeyboardInterrupt", "GeneratorExit")
SIGKILL, SIGXCPU, SIGXFSZ = 9, 24, 25  # Linux's numbers on x86_64 and aarch64 (no `signal` import: startup time)


# ---- values <-> bytes: a tagged binary format, decoded by slicing (nothing but plain values is ever built)
def encode(v, handle, out):
    t = type(v)
    if v is None or t is bool:
        out += b"N" if v is None else b"T" if v else b"F"
    elif t is int:
        data = v.to_bytes((v.bit_length() + 8) // 8, "big", signed=True)
        out += b"i" + len(data).to_bytes(4, "big") + data
    elif t is float:
        data = v.hex().encode()
        out += b"f" + len(data).to_bytes(4, "big") + data
    elif t is str:
        data = v.encode("utf-8", "surrogatepass")
        out += b"s" + len(data).to_bytes(4, "big") + data
    elif t is bytes or t is bytearray:
        out += b"b" + len(v).to_bytes(4, "big") + bytes(v)
    elif t is complex:
        out += b"c"
        encode(v.real, handle, out)
        encode(v.imag, handle, out)
    elif isinstance(v, (list, tuple, set, frozenset)):  # subclasses (namedtuple, ...) travel as their base type
        tag = b"l" if isinstance(v, list) else b"t" if isinstance(v, tuple) else b"S" if isinstance(v, set) else b"z"
        items = list(v)
        out += tag + len(items).to_bytes(4, "big")
        for x in items:
            encode(x, handle, out)
    elif isinstance(v, dict):
        collections = sys.modules.get("collections")
        kind = type(v).__name__ if collections and type(v) in (collections.Counter, collections.OrderedDict) else ""
        items = list(v.items())
        out += (b"C" if kind == "Counter" else b"O" if kind == "OrderedDict" else b"d") + len(items).to_bytes(4, "big")
        for k, x in items:
            encode(k, handle, out)
            encode(x, handle, out)
    elif isinstance(v, bool):
        encode(bool(v), handle, out)
    elif isinstance(v, int):
        encode(int(v), handle, out)
    elif isinstance(v, float):
        encode(float(v), handle, out)
    elif isinstance(v, str):
        encode(str.__str__(v), handle, out)
    else:
        out += b"r"
        encode(handle(v), handle, out)
    return out


def decode(data, pos, resolve, depth=0):
    """(value, next position). Raises ValueError on anything malformed."""
    if depth > 200 or pos >= len(data):
        raise ValueError("malformed value")
    tag = data[pos:pos + 1]
    pos += 1
    if tag in (b"N", b"T", b"F"):
        return {b"N": None, b"T": True, b"F": False}[tag], pos
    if tag in (b"i", b"s", b"b", b"f"):
        n = int.from_bytes(data[pos:pos + 4], "big")
        raw, pos = data[pos + 4:pos + 4 + n], pos + 4 + n
        if len(raw) != n:
            raise ValueError("malformed value")
        if tag == b"i":
            return int.from_bytes(raw, "big", signed=True), pos
        if tag == b"b":
            return bytes(raw), pos
        text = raw.decode("utf-8", "surrogatepass")
        return (float.fromhex(text) if tag == b"f" else text), pos
    if tag == b"c":
        real, pos = decode(data, pos, resolve, depth + 1)
        imag, pos = decode(data, pos, resolve, depth + 1)
        if type(real) is not float or type(imag) is not float:
            raise ValueError("malformed value")
        return complex(real, imag), pos
    if tag == b"r":
        ref, pos = decode(data, pos, resolve, depth + 1)
        if type(ref) not in (int, str):
            raise ValueError("malformed value")
        return resolve(ref), pos
    n = int.from_bytes(data[pos:pos + 4], "big")
    pos += 4
    if n > len(data) - pos:
        raise ValueError("malformed value")
    items = []
    for _ in range(n * (2 if tag in (b"d", b"C", b"O") else 1)):
        x, pos = decode(data, pos, resolve, depth + 1)
        items.append(x)
    if tag == b"l":
        return items, pos
    if tag == b"t":
        return tuple(items), pos
    if tag in (b"S", b"z"):
        return (set if tag == b"S" else frozenset)(items), pos
    if tag in (b"d", b"C", b"O"):
        pairs = dict(zip(items[::2], items[1::2]))
        if tag == b"d":
            return pairs, pos
        import collections
        return (collections.Counter if tag == b"C" else collections.OrderedDict)(pairs), pos
    raise ValueError("malformed value")


def send(fd, value, handle=None):
    send_bytes(fd, encode(value, handle, bytearray()))


def send_bytes(fd, data):
    data = len(data).to_bytes(8, "big") + data
    while data:
        data = data[os.write(fd, data):]


def read_exact(fd, n):
    parts, left = [], n
    while left:
        chunk = os.read(fd, min(left, 1 << 20))
        if not chunk:
            raise EOFError
        parts.append(chunk)
        left -= len(chunk)
    return b"".join(parts)


def recv(fd, resolve):
    n = int.from_bytes(read_exact(fd, 8), "big")
    if n > MAX_MESSAGE:
        raise ValueError("message too large")
    data = read_exact(fd, n)
    value, end = decode(data, 0, resolve)
    if end != n:
        raise ValueError("malformed message")
    return value


def category(e):
    """A fixed phrase for an exception: a built-in exception's name, never its message."""
    if type(e) is PermissionError and e.args and e.args[0] in BLOCKED:
        return "blocked:" + e.args[0]
    name = type(e).__name__
    return name if getattr(builtins, name, None) is type(e) else "Exception"


# ---- S: the sample's process
def seatbelt(event, args):
    """Clear failure reasons for the common escapes; the kernel, not this hook, is the jail."""
    if event in ("os.fork", "os.forkpty", "os.posix_spawn", "os.spawn", "os.exec", "os.system",
                 "subprocess.Popen", "pty.spawn"):
        raise PermissionError("process creation")
    if (event == "socket.__new__" and args[1] in (2, 10)) or event in ("socket.connect", "socket.getaddrinfo"):
        raise PermissionError("network")
    if event in ("os.kill", "os.killpg") and args[0] not in (0, os.getpid()):
        raise PermissionError("signals to other processes")


def sample(code, rfd, wfd):
    handles = {}

    def handle(v):
        handles[len(handles) + 1] = v
        return len(handles)

    g = {"__name__": "__main__", "__builtins__": builtins}
    sys.addaudithook(seatbelt)
    try:
        exec(compile(code, "program.py", "exec"), g)
    except BaseException as e:
        send(wfd, ("load-failed", category(e)))
        os._exit(0)
    send(wfd, ("loaded", [n for n, v in list(g.items()) if type(n) is str and callable(v)]))
    resolve = lambda x: g[x] if type(x) is str else handles[x]
    while True:
        try:
            op, target, a, b = recv(rfd, resolve)
        except EOFError:
            os._exit(0)
        try:
            obj = resolve(target)
            if op == "call":
                value = obj(*a, **b)
            elif op == "getattr":
                value = getattr(obj, a)
            elif op == "list":
                value = list(obj)
            elif op == "len":
                value = len(obj)
            else:
                value = obj[a]
            try:
                data = encode(("ret", value), handle, bytearray())
            except RecursionError:
                data = encode(("ret", Opaque(value)), handle, bytearray())
        except BaseException as e:
            data = encode(("exc", category(e)), handle, bytearray())
        send_bytes(wfd, data)


class Opaque:
    """Wraps a value too deep to encode, so it travels as a handle."""

    def __init__(self, value):
        self.value = value


# ---- H: the harness process, which runs the tests and alone writes the verdict
class ProgramGone(BaseException):
    """S died or broke the protocol. A BaseException, so a test's `except Exception` cannot swallow it."""


class Client:
    def __init__(self, pid, wfd, rfd):
        self.pid, self.wfd, self.rfd, self.failure = pid, wfd, rfd, None

    def request(self, op, target, a=None, b=None):
        if self.failure:
            raise ProgramGone
        try:
            send(self.wfd, (op, target, a, b), remote_ref)
        except TypeError:
            raise TypeError("only plain data and the program's own objects can be passed to the program") from None
        except OSError:
            self.failure = gone(self.pid)
            raise ProgramGone
        try:
            kind, value = recv(self.rfd, Remote)
            if kind == "ret":
                return value
        except (EOFError, OSError):
            self.failure = gone(self.pid)
            raise ProgramGone
        except (ValueError, TypeError, KeyError, RecursionError, UnicodeError, OverflowError, MemoryError):
            kind = None
        if kind == "exc" and value in EXITS:
            self.failure = "failed: the program exited before the tests finished"
        elif kind == "exc":
            raise remote_exception(value)  # outside the try: a test may expect it
        else:
            self.failure = "failed: the program broke the harness protocol"
        raise ProgramGone


def remote_exception(name):
    cls = getattr(builtins, name, None) if type(name) is str else None
    if not (isinstance(cls, type) and issubclass(cls, Exception)):
        cls = Exception
    e = cls("raised in the sandboxed program")
    e.remote = True
    return e


class Remote:
    """A function or object that lives in S. Comparisons are by identity: nothing of S runs here."""

    __slots__ = ("_ref",)

    def __init__(self, ref):
        object.__setattr__(self, "_ref", ref)

    def __call__(self, *args, **kwargs):
        return CLIENT.request("call", self._ref, args, kwargs)

    def __getattr__(self, name):
        if name.startswith("__"):
            raise AttributeError(name)
        return CLIENT.request("getattr", self._ref, name)

    def __iter__(self):
        items = CLIENT.request("list", self._ref)
        if type(items) is not list:
            raise TypeError("list() of a sandboxed object is not a list")
        return iter(items)

    def __len__(self):
        n = CLIENT.request("len", self._ref)
        if type(n) is not int:
            raise TypeError("len() of a sandboxed object is not an int")
        return n

    def __getitem__(self, key):
        return CLIENT.request("getitem", self._ref, key)

    def __repr__(self):
        return "<object in the sandboxed program>"


def remote_ref(v):
    if type(v) is Remote:
        return v._ref
    raise TypeError("not plain data")


def gone(pid):
    try:
        _, status = os.waitpid(pid, 0)
    except ChildProcessError:
        return "failed: the program exited before the tests finished"
    if os.WIFSIGNALED(status):
        sig = os.WTERMSIG(status)
        if sig == SIGXCPU:
            return "timed out (CPU limit)"
        if sig == SIGXFSZ:
            return "failed: file size limit"
        if sig == SIGKILL:
            return "killed (memory or limits)"
        return "failed: the program was killed by signal " + str(sig)
    return "failed: the program exited before the tests finished"


def load_reason(cat):
    if cat.startswith("blocked:") and cat[8:] in BLOCKED:
        return "failed: blocked by the sandbox (" + cat[8:] + ")"
    if cat == "MemoryError":
        return "out of memory"
    if cat in EXITS:
        return "failed: the program exited before the tests finished"
    return "failed: " + (cat if isinstance(getattr(builtins, cat, None), type) else "Exception")


def test_reason(e):
    if getattr(e, "remote", False):
        return "out of memory" if isinstance(e, MemoryError) else "failed: the code raised " + category(e)
    if isinstance(e, AssertionError):
        return "failed: a test assertion failed"
    return "failed: the tests raised " + category(e)


def run_tests(client, names, tests):
    g = {"__name__": "__main__", "__builtins__": builtins}
    for n in names:  # the program's functions, except names that would shadow the tests' built-ins
        if type(n) is str and n.isidentifier() and not n.startswith("__") and not hasattr(builtins, n):
            g[n] = Remote(n)
    try:
        exec(compile(tests, "tests.py", "exec"), g)
    except ProgramGone:
        return client.failure
    except BaseException as e:
        return client.failure or test_reason(e)
    return client.failure or "passed"


def limit():
    import resource
    for name, value in zip(("RLIMIT_CPU", "RLIMIT_AS", "RLIMIT_FSIZE", "RLIMIT_NOFILE", "RLIMIT_NPROC"), LIMITS):
        resource.setrlimit(getattr(resource, name), (value, value))
    resource.setrlimit(resource.RLIMIT_CORE, (0, 0))


def main():
    # The program now; its tests only after the fork, in H: S is a copy of H's memory at the fork, so tests read
    # before it (even into a file object's read-ahead buffer) would be in S's memory, and code that finds them
    # (frames, gc) could hard-code the answers. Unbuffered reads of exactly the program's bytes.
    code = read_exact(JOB_FD, int.from_bytes(read_exact(JOB_FD, 8), "big")).decode("utf-8", "surrogateescape")
    if UID:  # as root in a fresh uid; otherwise bwrap's user namespace already made us the caller
        os.setgroups([])
        os.setresgid(UID, UID, UID)
        os.setresuid(UID, UID, UID)
    os.chdir("/tmp")  # the scratch directory: a size-limited tmpfs of this sandbox alone
    try:
        with open("/proc/sys/fs/suid_dumpable") as f:
            undumpable = UID and f.read().strip() == "0"  # the uid change above then made us undumpable
    except OSError:
        undumpable = False
    if not undumpable:
        import ctypes
        ctypes.CDLL(None).prctl(4, 0, 0, 0, 0)  # PR_SET_DUMPABLE 0: S (same uid) cannot read H's memory
    limit()
    s_in, h_out = os.pipe()  # H -> S: requests
    h_in, s_out = os.pipe()  # S -> H: replies
    pid = os.fork()
    if pid == 0:
        for fd in (NONCE_FD, VERDICT_FD, h_out, h_in, JOB_FD):
            os.close(fd)
        try:
            sample(code, s_in, s_out)
        finally:
            os._exit(0)
    for fd in (s_in, s_out):
        os.close(fd)
    with open(JOB_FD, "rb") as job:  # S has closed its copy of this fd; the tests exist in H alone
        tests = job.read().decode("utf-8", "surrogateescape")
    global CLIENT
    CLIENT = Client(pid, h_out, h_in)
    try:
        kind, value = recv(h_in, Remote)
        if kind == "loaded" and type(value) is list:
            reason = run_tests(CLIENT, value, tests)
        else:
            reason = load_reason(value) if type(value) is str else "failed: the program broke the harness protocol"
    except EOFError:
        reason = gone(pid)
    except (ValueError, TypeError, RecursionError, UnicodeError, OverflowError, MemoryError):
        reason = "failed: the program broke the harness protocol"
    try:
        os.kill(pid, SIGKILL)
    except ProcessLookupError:
        pass
    verdict = reason
    if reason == "passed":
        verdict += "\n" + os.read(NONCE_FD, 64).decode()  # read only now, after every test ran
    os.write(VERDICT_FD, verdict.encode())
    os._exit(0)


main()
'''

_REASON = re.compile(
    r"passed|timed out( \(CPU limit\))?|out of memory|killed \(memory or limits\)|failed: [A-Za-z ()]{1,80}"
)


# ------------------------------------------------------------------------------------ seccomp
# A deny-list filter (classic BPF, loaded by bwrap --seccomp) against the kernel's attack surface that a
# Python program never needs: debugging other processes, mounts, namespaces, modules, keys, bpf, perf,
# io_uring. Syscall numbers from the kernel's unistd_64.h (x86_64) and asm-generic/unistd.h (aarch64);
# on other architectures there is no filter (the namespaces, uid and rlimits still hold).
_DENIED = (
    "ptrace",
    "process_vm_readv",
    "process_vm_writev",
    "mount",
    "umount2",
    "pivot_root",
    "chroot",
    "swapon",
    "swapoff",
    "reboot",
    "sethostname",
    "setdomainname",
    "init_module",
    "finit_module",
    "delete_module",
    "kexec_load",
    "kexec_file_load",
    "acct",
    "quotactl",
    "keyctl",
    "add_key",
    "request_key",
    "bpf",
    "perf_event_open",
    "userfaultfd",
    "unshare",
    "setns",
    "open_by_handle_at",
    "name_to_handle_at",
    "lookup_dcookie",
    "syslog",
    "move_pages",
    "migrate_pages",
    "kcmp",
    "fanotify_init",
    "io_uring_setup",
    "io_uring_enter",
    "io_uring_register",
    "fsopen",
    "fsconfig",
    "fsmount",
    "fspick",
    "open_tree",
    "move_mount",
    "mount_setattr",
)
_SYSCALLS = {  # name -> (x86_64, aarch64)
    "ptrace": (101, 117),
    "process_vm_readv": (310, 270),
    "process_vm_writev": (311, 271),
    "mount": (165, 40),
    "umount2": (166, 39),
    "pivot_root": (155, 41),
    "chroot": (161, 51),
    "swapon": (167, 224),
    "swapoff": (168, 225),
    "reboot": (169, 142),
    "sethostname": (170, 161),
    "setdomainname": (171, 162),
    "init_module": (175, 105),
    "finit_module": (313, 273),
    "delete_module": (176, 106),
    "kexec_load": (246, 104),
    "kexec_file_load": (320, 294),
    "acct": (163, 89),
    "quotactl": (179, 60),
    "keyctl": (250, 219),
    "add_key": (248, 217),
    "request_key": (249, 218),
    "bpf": (321, 280),
    "perf_event_open": (298, 241),
    "userfaultfd": (323, 282),
    "unshare": (272, 97),
    "setns": (308, 268),
    "open_by_handle_at": (304, 265),
    "name_to_handle_at": (303, 264),
    "lookup_dcookie": (212, 18),
    "syslog": (103, 116),
    "move_pages": (279, 239),
    "migrate_pages": (256, 238),
    "kcmp": (312, 272),
    "fanotify_init": (300, 262),
    "io_uring_setup": (425, 425),
    "io_uring_enter": (426, 426),
    "io_uring_register": (427, 427),
    "fsopen": (430, 430),
    "fsconfig": (431, 431),
    "fsmount": (432, 432),
    "fspick": (433, 433),
    "open_tree": (428, 428),
    "move_mount": (429, 429),
    "mount_setattr": (442, 442),
    "clone": (56, 220),
    "clone3": (435, 435),
}
_ARCHES = {"x86_64": (0xC000003E, 0), "aarch64": (0xC00000B7, 1)}  # machine -> (AUDIT_ARCH_*, column)
_CLONE_NAMESPACES = 0x7E020000  # CLONE_NEWNS | NEWCGROUP | NEWUTS | NEWIPC | NEWUSER | NEWPID | NEWNET


def seccomp_filter(machine: str | None = None) -> bytes | None:
    """The filter as struct sock_filter[] bytes for this machine's architecture, or None when unknown."""
    machine = machine or os.uname().machine
    if machine not in _ARCHES:
        return None
    arch, column = _ARCHES[machine]
    nr = {name: numbers[column] for name, numbers in _SYSCALLS.items()}
    ld, jeq, jge, jset, ret = 0x20, 0x15, 0x35, 0x45, 0x06
    allow, eperm, enosys = 0x7FFF0000, 0x00050000 | 1, 0x00050000 | 38
    # (code, jump-if-true label, k): labels are resolved to offsets below; None = fall through
    program: list[tuple[int, str | None, int]] = [(ld, None, 4), (jeq, "native", arch), (ret, None, eperm)]
    program += [("native", None, None), (ld, None, 0)]  # type: ignore[list-item]
    if machine == "x86_64":
        program.append((jge, "deny", 0x40000000))  # the x32 ABI's numbers
    program += [(jeq, "deny", nr[name]) for name in _DENIED]
    program += [(jeq, "nosys", nr["clone3"]), (jeq, "clone", nr["clone"]), (ret, None, allow)]
    program += [("clone", None, None), (ld, None, 16), (jset, "deny", _CLONE_NAMESPACES)]  # type: ignore[list-item]
    program += [(ret, None, allow), ("deny", None, None), (ret, None, eperm)]  # type: ignore[list-item]
    program += [("nosys", None, None), (ret, None, enosys)]  # type: ignore[list-item]
    labels, code = {}, []
    for item in program:
        if isinstance(item[0], str):
            labels[item[0]] = len(code)
        else:
            code.append(item)
    out = bytearray()
    for i, (op, target, k) in enumerate(code):
        jt = labels[target] - i - 1 if target else 0  # clone3 gets ENOSYS so libc falls back to clone
        out += struct.pack("=HBBI", op, jt, 0, k)
    return bytes(out)


# ------------------------------------------------------------------------------------ the runner


@dataclass(frozen=True)
class _Runtime:
    bwrap: str
    python: str  # the base interpreter (no venv, no site-packages inside)
    prefix: str
    privileged: bool  # root: bwrap without a user namespace; the harness drops to a fresh uid
    seccomp: bytes | None  # the filter for this architecture, None where there is none


_RUNTIME: _Runtime | None = None
_RUNTIME_LOCK = threading.Lock()


def _runtime() -> _Runtime:
    """The sandbox's means on this machine, checked once per process with a real program."""
    global _RUNTIME
    with _RUNTIME_LOCK:
        if _RUNTIME is None:
            bwrap = shutil.which("bwrap")
            if bwrap is None:
                raise Phi4Error(
                    "the code sandbox needs bubblewrap: no 'bwrap' on PATH "
                    "(apt-get install bubblewrap; `make setup` installs it when run as root)"
                )
            python = os.path.realpath(getattr(sys, "_base_executable", None) or sys.executable)
            runtime = _Runtime(bwrap, python, os.path.realpath(sys.base_prefix), os.geteuid() == 0, seccomp_filter())
            probe = _run(runtime, Program("def f(x):\n    return 6 * x\n", "assert f(7) == 42"), Limits(timeout=30.0))
            if not probe.passed:
                first = probe.output.decode("utf-8", "replace").strip().splitlines()[:1]
                raise Phi4Error(
                    f"the code sandbox cannot start here ({probe.reason}"
                    f"{': ' + first[0][:200] if first else ''}); it needs bubblewrap with namespaces "
                    "(root, or unprivileged user namespaces)"
                )
            _RUNTIME = runtime
    return _RUNTIME


def sandbox_available() -> bool:
    try:
        _runtime()
        return True
    except Phi4Error:
        return False


def network_isolation() -> str:
    """How the network is cut off, for the results' settings."""
    return "bubblewrap network namespace (no interfaces but a private loopback)"


class _Uids:
    """One uid per concurrent sample (as root), so the process limit and signals are per sample."""

    def __init__(self) -> None:
        self.lock, self.free, self.next = threading.Lock(), [], 0
        self.base = UID_BASE + (os.getpid() % 4096) * 1024  # two evaluators rarely share a range

    def take(self) -> int:
        with self.lock:
            if self.free:
                return self.free.pop()
            self.next += 1
            return self.base + self.next % 1024

    def give(self, uid: int) -> None:
        with self.lock:
            self.free.append(uid)


_UIDS = _Uids()


def _bwrap_args(rt: _Runtime, work: Path, fds: dict[str, int], uid: int, limits: Limits) -> list[str]:
    args = [
        rt.bwrap,
        "--info-fd",
        str(fds["info"]),
        "--unshare-pid",
        "--unshare-net",
        "--unshare-ipc",
        "--unshare-uts",
        "--unshare-cgroup-try",
        "--die-with-parent",
        "--new-session",
        "--cap-drop",
        "ALL",
    ]
    if "seccomp" in fds:
        args += ["--seccomp", str(fds["seccomp"])]  # bwrap also sets no_new_privs
    if rt.privileged:
        args += ["--cap-add", "CAP_SETUID", "--cap-add", "CAP_SETGID"]  # for the harness's drop, then gone
    else:
        args += ["--unshare-user"]
    args += ["--ro-bind", "/usr", "/usr"]
    for top in ("/bin", "/sbin", "/lib", "/lib32", "/lib64", "/libx32"):
        if os.path.islink(top):
            args += ["--symlink", os.readlink(top), top]
        elif os.path.isdir(top):
            args += ["--ro-bind", top, top]
    for path in sorted({rt.prefix, os.path.dirname(os.path.dirname(rt.python))}):
        if path != "/usr" and not path.startswith("/usr/"):
            for parent in reversed(Path(path).parents[:-1]):  # bwrap would make missing parents 0700
                args += ["--perms", "0755", "--dir", str(parent)]
            args += ["--ro-bind", path, path]
    args += [
        "--proc",
        "/proc",
        "--dev",
        "/dev",
        "--perms",
        "01777",
        "--size",
        str(limits.scratch_mb * 1024 * 1024),
        "--tmpfs",
        "/tmp",
        "--ro-bind",
        str(work / "job"),
        "/job",
        "--chdir",
        "/",
        "--clearenv",
        "--setenv",
        "PATH",
        "/usr/bin:/bin",
        "--setenv",
        "HOME",
        "/tmp",
        "--setenv",
        "TMPDIR",
        "/tmp",
        "--setenv",
        "LANG",
        "C.UTF-8",
        "--setenv",
        "PYTHONHASHSEED",
        "0",
        "--setenv",
        "OMP_NUM_THREADS",
        "1",
    ]
    mb = 1024 * 1024
    rlimits = [
        int(limits.timeout) + 1,
        limits.memory_mb * mb,
        limits.file_size_mb * mb,
        limits.open_files,
        limits.max_processes,
    ]
    return args + [
        rt.python,
        "-I",
        "-S",
        "-B",
        "-u",
        "/job/harness.pyc",
        str(fds["job"]),
        str(fds["nonce"]),
        str(fds["verdict"]),
        str(uid),
        *map(str, rlimits),
    ]


@functools.cache
def _harness_pyc() -> bytes:
    """HARNESS compiled once per evaluator (compiling it in every sandbox costs ~10 ms a sample)."""
    return importlib.util.MAGIC_NUMBER + bytes(12) + marshal.dumps(compile(HARNESS, "phi4-sandbox-harness", "exec"))


def _prepare(work: Path, program: Program) -> int:
    """work/job/harness.pyc, mounted at /job; work/program: the code and tests, which the harness reads from
    the returned fd (outside any path the sandbox can see): the code before it forks the sample, the tests after."""
    (work / "job").mkdir()
    (work / "job" / "harness.pyc").write_bytes(_harness_pyc())
    code, tests = (text.encode("utf-8", "surrogateescape") for text in (program.code, program.tests))
    (work / "program").write_bytes(len(code).to_bytes(8, "big") + code + tests)
    return os.open(work / "program", os.O_RDONLY)


def run_program(program: Program | str, limits: Limits | None = None) -> SandboxResult:
    """Run one program in a fresh sandbox; passed only on the harness's verdict with this run's nonce."""
    return _run(_runtime(), program, limits or Limits())


def _run(rt: _Runtime, program: Program | str, limits: Limits) -> SandboxResult:
    program = Program(program) if isinstance(program, str) else program
    start = time.monotonic()
    uid = _UIDS.take() if rt.privileged else 0
    work = Path(tempfile.mkdtemp(prefix="phi4-sandbox-"))  # 0700, ours
    held: list[int] = []  # every fd we still hold

    def pipe(data: bytes | None = None) -> tuple[int, int]:
        r, w = os.pipe()
        held.extend((r, w))
        if data is not None:  # a small payload, read by the sandbox later: it fits the pipe's buffer
            os.write(w, data)
        return r, w

    def close(*fds: int) -> None:
        for fd in fds:
            os.close(fd)
            held.remove(fd)

    try:
        job = _prepare(work, program)
        held.append(job)
        nonce = secrets.token_hex(16)
        nonce_r, nonce_w = pipe(nonce.encode())
        verdict_r, verdict_w = pipe()
        out_r, out_w = pipe()
        info_r, info_w = pipe()
        close(nonce_w)
        child = {"job": job, "nonce": nonce_r, "verdict": verdict_w, "info": info_w}
        if rt.seccomp:
            child["seccomp"], seccomp_w = pipe(rt.seccomp)
            close(seccomp_w)
        process = subprocess.Popen(
            _bwrap_args(rt, work, child, uid, limits),
            stdin=subprocess.DEVNULL,
            stdout=out_w,
            stderr=out_w,
            pass_fds=tuple(child.values()),
            start_new_session=True,
        )
        close(*child.values(), out_w)  # the sandbox holds them now; ours are the read ends of what it writes
        read, timed_out = _collect(
            {out_r: OUTPUT_LIMIT, verdict_r: VERDICT_LIMIT, info_r: 4096}, start + limits.timeout
        )
        _finish(process, read[info_r], timed_out)
        reason = _verdict_reason(read[verdict_r], nonce, timed_out, process.returncode, read[out_r])
        return SandboxResult(reason == "passed", reason, time.monotonic() - start, read[out_r])
    finally:
        close(*held)
        shutil.rmtree(work, ignore_errors=True)
        if uid:
            _UIDS.give(uid)


def _collect(limits: dict[int, int], deadline: float) -> tuple[dict[int, bytes], bool]:
    """Read each fd until it closes or the deadline, keeping its first `limits[fd]` bytes and draining the rest."""
    kept = {fd: bytearray() for fd in limits}
    with selectors.DefaultSelector() as sel:
        for fd in limits:
            sel.register(fd, selectors.EVENT_READ)
        while sel.get_map():
            left = deadline - time.monotonic()
            if left <= 0:
                return {fd: bytes(b) for fd, b in kept.items()}, True
            for key, _ in sel.select(left):
                chunk = os.read(key.fd, 1 << 16)
                if not chunk:
                    sel.unregister(key.fd)
                kept[key.fd] += chunk[: limits[key.fd] - len(kept[key.fd])]
    return {fd: bytes(b) for fd, b in kept.items()}, False


def _finish(process: subprocess.Popen, info: bytes, timed_out: bool) -> None:
    """Return only when no process of the sandbox is left.

    bwrap exits after reaping the pid namespace's init, and the init is reaped only after every process
    in its namespace is gone. So: let it end (it ends when the harness exits), or SIGKILL the init (its
    pid from --info-fd) and wait for bwrap. Killing bwrap itself would leave the namespace dying alone."""
    if not timed_out:
        try:
            process.wait(timeout=2.0)
            return
        except subprocess.TimeoutExpired:
            pass
    try:
        child = int(json.loads(info.decode())["child-pid"])
        with open(f"/proc/{child}/stat") as f:  # bwrap's own child, not yet reaped: the pid is still the init's
            parent = int(f.read().rpartition(")")[2].split()[1])
        if parent == process.pid:
            os.kill(child, signal.SIGKILL)
            process.wait(timeout=10.0)
            return
    except (ValueError, KeyError, TypeError, OSError, subprocess.TimeoutExpired):
        pass
    try:
        os.killpg(process.pid, signal.SIGKILL)
    except (ProcessLookupError, PermissionError):
        pass
    process.wait()


def _verdict_reason(verdict: bytes, nonce: str, timed_out: bool, returncode: int, output: bytes) -> str:
    """The harness writes "passed\nNONCE" or a reason; anything else is no verdict."""
    reason, _, their_nonce = verdict.decode("ascii", "replace").partition("\n")
    if reason == "passed":
        return "passed" if secrets.compare_digest(their_nonce, nonce) else "failed: the verdict was forged"
    if _REASON.fullmatch(reason):
        return reason
    if timed_out:
        return "timed out"
    if output.startswith(b"bwrap: "):
        return "sandbox error: bubblewrap could not start the sandbox"
    return f"failed: the harness died without a verdict (exit status {returncode})"


def run_programs(
    programs: Sequence[Program | str], limits: Limits | None = None, workers: int = 4
) -> list[SandboxResult]:
    """Run many programs, `workers` at a time; results in order. Raises only when there is no sandbox."""
    rt, limits = _runtime(), limits or Limits()

    def one(program: Program | str) -> SandboxResult:
        try:
            return _run(rt, program, limits)
        except OSError as e:  # e.g. the OS refused a process or a pipe: still a failed sample
            return SandboxResult(False, f"sandbox error: {type(e).__name__}", 0.0)

    if workers <= 1 or len(programs) <= 1:
        return [one(p) for p in programs]
    with ThreadPoolExecutor(workers) as pool:
        return list(pool.map(one, programs))
