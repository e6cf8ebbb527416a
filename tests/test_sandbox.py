"""The code sandbox against hostile samples: no false pass, no file outside scratch, no surviving process,
the evaluator alive with every result; and the HumanEval canonical solutions still pass."""

from __future__ import annotations

import gzip
import json
import os
import re
import resource
import socket
import uuid
from pathlib import Path

import pytest

from phi4cli.errors import Phi4Error
from phi4cli.evaluate import sandbox
from phi4cli.evaluate.sandbox import (
    OUTPUT_LIMIT,
    Limits,
    Program,
    run_program,
    run_programs,
)
from phi4cli.evaluate.tasks import humaneval_program

HUMANEVAL = Path(__file__).resolve().parents[2] / "shared" / "benchmarks" / "humaneval.jsonl.gz"
TESTS = "assert f(2) == 4\nassert f(3) == 6\n"  # the trusted tests; every hostile sample's f is wrong
REASONS = re.compile(
    r"passed|timed out( \(CPU limit\))?|out of memory|killed \(memory or limits\)|failed: [A-Za-z ()0-9]+"
)
LIBC = "import ctypes, os, struct\nlibc = ctypes.CDLL(None, use_errno=True)\n"


@pytest.fixture
def scratch_root(tmp_path, monkeypatch):
    """Sandboxes make their work directories here, so the test can see that none is left behind."""
    root = tmp_path / "sandboxes"
    root.mkdir()
    monkeypatch.setattr("tempfile.tempdir", str(root))
    return root


def sandbox_processes() -> list[int]:
    """Processes of this evaluator's sandbox uids, and bwrap children of this process."""
    lo, hi, found = sandbox._UIDS.base, sandbox._UIDS.base + 1024, []
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            status = Path(f"/proc/{entry}/status").read_text()
        except OSError:
            continue
        uid = int(re.search(r"^Uid:\s+(\d+)", status, re.MULTILINE).group(1))
        ppid = int(re.search(r"^PPid:\s+(\d+)", status, re.MULTILINE).group(1))
        name = re.search(r"^Name:\s+(\S+)", status, re.MULTILINE).group(1)
        if lo <= uid < hi or (ppid == os.getpid() and name == "bwrap"):
            found.append(int(entry))
    return found


READ_THE_TESTS = r"""import io, sys
seen, frame = [], sys._getframe()
while frame is not None:  # the harness's frames: anything it read before forking this sample
    seen += list(frame.f_locals.values())
    frame = frame.f_back
text = ""
for v in seen:
    try:
        v = v.peek(1 << 16) if isinstance(v, io.BufferedReader) else v
        v = v.decode("utf-8", "replace") if isinstance(v, bytes) else v
        text += v + "\n" if isinstance(v, str) else ""
    except Exception:
        pass
answers = {}
for line in text.splitlines():
    if line.startswith("assert f(") and ") == " in line:
        x, _, y = line[9:].partition(") == ")
        answers[int(x)] = int(y)
def f(x):
    return answers.get(x, 0)
"""  # S is forked from H: the tests must not be in H's memory before the fork


def hostile_samples(outside: list[str], port: int) -> dict[str, Program]:
    """name -> a sample that tries to pass without being right, escape, or take the evaluator down."""
    touch = "; ".join(f"echo x > {p}" for p in outside)
    writes = "".join(
        f"    try:\n        open({p!r}, 'w').write('x')\n    except OSError:\n        pass\n" for p in outside
    )
    connect = (
        LIBC + "def f(x):\n    s = libc.socket(2, 1, 0)\n"
        f"    addr = struct.pack('<H', 2) + struct.pack('>H', {port}) + bytes([127, 0, 0, 1]) + bytes(8)\n"
        "    return 2 * x if libc.connect(s, addr, 16) == 0 else 0\n"
    )
    forge = (
        "import json, os\nfake = json.dumps({'reason': 'passed', 'nonce': '0' * 32}).encode()\n"
        "msg = json.dumps(['loaded', ['f']]).encode()\n"
        "for fd in range(64):\n    for data in (fake, len(msg).to_bytes(8, 'big') + msg):\n"
        "        try:\n            os.write(fd, data)\n        except OSError:\n            pass\n"
        "os._exit(0)\n"
    )
    samples = {
        "sys.exit(0)": "def f(x):\n    return 0\nimport sys\nsys.exit(0)\n",
        "os._exit(0)": "import os\ndef f(x):\n    return 0\nos._exit(0)\n",
        "raise SystemExit": "def f(x):\n    return 0\nraise SystemExit(0)\n",
        "exit in the function": "def f(x):\n    import sys\n    sys.exit(0)\n",
        "os._exit in the function": "def f(x):\n    import os\n    os._exit(0)\n",
        "top-level exit()": "def f(x):\n    return 0\nexit(0)\n",
        "atexit hook": "import atexit, os\natexit.register(os._exit, 0)\ndef f(x):\n    return 0\n",
        "excepthook": "import os, sys\nsys.excepthook = lambda *a: os._exit(0)\ndef f(x):\n    raise ValueError\n",
        "equal to anything": "class Any:\n    __eq__ = lambda s, o: True\n    __ne__ = lambda s, o: False\n"
        "def f(x):\n    return Any()\n",
        "int subclass equal to anything": "class Any(int):\n    __eq__ = lambda s, o: True\n"
        "def f(x):\n    return Any(0)\n",
        "patched builtins": "import builtins\nbuiltins.AssertionError = KeyError\nbuiltins.abs = lambda x: 0\n"
        "def abs(x):\n    return 0\ndef f(x):\n    return 0\n",
        "forged verdict and protocol": "def f(x):\n    return 0\n" + forge,
        "ptrace the harness": LIBC
        + "r = libc.ptrace(16, os.getppid(), 0, 0)\ndef f(x):\n    return 2 * x if r == 0 else 0\n",
        "hook bypass then shell": LIBC + f"libc.system({touch!r}.encode())\ndef f(x):\n    return 0\n",
        "kill every process it can": LIBC + "libc.kill(-1, 9)\ndef f(x):\n    return 0\n",
        "killpg of the parent's group": LIBC + "libc.kill(-os.getpgid(os.getppid()), 9)\ndef f(x):\n    return 0\n",
        "kill pid 1": LIBC + "libc.kill(1, 9)\ndef f(x):\n    return 0\n",
        "sqlite3 and mkfifo outside scratch": "import os, sqlite3\n"
        + "".join(
            f"try:\n    sqlite3.connect({p + '.db'!r}).execute('create table t(x)')\n"
            f"except Exception:\n    pass\ntry:\n    os.mkfifo({p + '.fifo'!r})\n"
            f"except OSError:\n    pass\n"
            for p in outside
        )
        + "def f(x):\n    return 0\n",
        "fork storm": LIBC + "while True:\n    libc.fork()\n",
        "memory hog": "hog = []\nwhile True:\n    hog.append(bytearray(50 * 1024 * 1024))\n",
        "infinite loop": "def f(x):\n    while True:\n        pass\n",
        "network": connect,
        "/etc/passwd printed and raised": "import glob\nsecret = 'SECRET-MARKER ' + ' '.join(glob.glob('/*'))\n"
        "for p in ('/etc/passwd', '/proc/1/environ'):\n    try:\n"
        "        secret += open(p).read()\n    except OSError:\n        pass\n"
        "print(secret)\nclass Leak(Exception):\n    pass\nLeak.__name__ = secret\n"
        "def f(x):\n    raise Leak(secret)\n",
        "1 GiB to stderr": "import sys\nblock = b'e' * (1 << 20)\n"
        "for _ in range(1024):\n    sys.stderr.buffer.write(block)\n"
        "def f(x):\n    return 0\n",
        "write everywhere": "def f(x):\n" + writes + "    return 0\n",
        "fill the disk": "for i in range(1000):\n    open(f'/tmp/fill{i}', 'wb').write(bytes(8 << 20))\n"
        "def f(x):\n    return 2 * x\n",
        "reads the tests from its memory": READ_THE_TESTS,
    }
    return {name: Program(code, TESTS) for name, code in samples.items()}


def test_hostile_samples_never_pass_escape_or_survive(tmp_path, scratch_root):
    token = uuid.uuid4().hex
    home = Path.home()
    outside = [
        str(tmp_path / f"escaped-{token}"),
        f"/tmp/phi4-escape-{token}",
        str(home / f"phi4-escape-{token}"),
        f"/usr/phi4-escape-{token}",
        str(Path.cwd() / f"phi4-escape-{token}"),
    ]
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen()
    listener.setblocking(False)
    samples = hostile_samples(outside, listener.getsockname()[1])
    own_scratch = (
        "import sqlite3, os\nos.mkfifo('fifo')\nsqlite3.connect('db.sqlite').execute('create table t(x)')\n"
        "open('/tmp/a', 'w').write('ok')\nopen(os.path.expanduser('~/b'), 'w').write('ok')\n"
    )
    setsid_child = LIBC + "if libc.fork() == 0:\n    os.setsid()\n    while True:\n        pass\n"
    right = "def f(x):\n    return 2 * x\n"
    good = {
        "control: right answer": Program(right, TESTS),
        "control: writes its own scratch": Program(own_scratch + right, TESTS),
        "control: leaves a setsid child": Program(setsid_child + right, TESTS),
    }
    rss_before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    limits = Limits(timeout=3.0, memory_mb=400)
    results = dict(zip([*samples, *good], run_programs([*samples.values(), *good.values()], limits, workers=4)))
    rss_after = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    listener.close()

    for name in samples:
        assert not results[name].passed, (name, results[name].reason)
    for name in good:
        assert results[name].passed, (name, results[name].reason)
    assert results["control: leaves a setsid child"].seconds < limits.timeout  # the verdict does not wait for it
    for name, result in results.items():
        assert REASONS.fullmatch(result.reason), (name, result.reason)
        assert len(result.output) <= OUTPUT_LIMIT
    assert results["infinite loop"].reason == "timed out"
    assert results["memory hog"].reason in ("out of memory", "killed (memory or limits)")
    assert results["equal to anything"].reason == "failed: a test assertion failed"
    assert results["reads the tests from its memory"].reason == "failed: a test assertion failed"  # ran, found none
    assert results["top-level exit()"].reason == "failed: NameError"  # no site module: exit() does not exist
    for name in ("sys.exit(0)", "os._exit(0)", "raise SystemExit", "exit in the function"):
        assert "exited before the tests finished" in results[name].reason, (name, results[name].reason)
    leak = results["/etc/passwd printed and raised"]
    assert leak.reason == "failed: the code raised Exception" and b"SECRET-MARKER" in leak.output
    assert len(results["1 GiB to stderr"].output) == OUTPUT_LIMIT
    assert rss_after - rss_before < 200 * 1024  # KiB: 1 GiB of output is drained, not buffered

    for path in outside:
        for suffix in ("", ".db", ".fifo"):
            assert not os.path.exists(path + suffix), path + suffix
    assert sandbox_processes() == []
    assert list(scratch_root.iterdir()) == []


def test_the_kernel_enforces_the_limits_the_sample_can_bypass_the_seatbelt_for():
    """Positive checks: these programs pass only when the jail holds (each call must fail)."""
    probe = LIBC + (
        "def denied():\n"
        "    calls = [libc.unshare(0x10000000), libc.ptrace(16, 1, 0, 0),\n"
        "             libc.mount(b'none', b'/tmp', b'tmpfs', 0, 0), libc.setuid(0), libc.chroot(b'/tmp')]\n"
        "    return [c == -1 for c in calls]\n"
        "def visible():\n"
        "    return sorted(os.listdir('/')), os.getuid() != 0, os.path.exists('/etc/passwd'), os.listdir('/job')\n"
    )
    tests = (
        "assert denied() == [True] * 5\n"
        "top, unprivileged, passwd, job = visible()\n"  # the tests are not readable by the sample
        "assert unprivileged and not passwd and job == ['harness.pyc']\n"
        "assert 'home' not in top and 'work' not in top and 'etc' not in top\n"
    )
    result = run_program(Program(probe, tests), Limits(timeout=10.0))
    assert result.passed, result.reason


def test_data_crosses_as_plain_values_and_objects_stay_in_the_sample():
    code = """
import collections
class Pair:
    def __init__(self, a, b):
        self.a, self.b = a, b
    def total(self):
        return self.a + self.b
def longest(pairs):
    return max(p.total() for p in pairs)
def values():
    return ((1, 2), [1, 2], {1: 'a'}, {1, 2}, frozenset({3}), b'\\x00', 2 ** 100, float('nan'), -0.0, 1e308 * 10,
            1j, True)
def counts(text):
    return collections.Counter(text)
def gen(n):
    return (i * i for i in range(n))
def check_positive(x):
    if x <= 0:
        raise ValueError('no')
    return x
"""
    tests = """
import math
t, l, d, s, fs, b, big, nan, zero, inf, c, flag = values()
assert type(t) is tuple and t == (1, 2) and type(l) is list and l == [1, 2] and t != l
assert d == {1: 'a'} and s == {1, 2} and type(fs) is frozenset and b == b'\\x00' and big == 2 ** 100
assert math.isnan(nan) and math.copysign(1, zero) == -1 and inf == math.inf and c == 1j and flag is True
assert counts('aab') == {'a': 2, 'b': 1}
assert list(gen(4)) == [0, 1, 4, 9]
assert longest([Pair(1, 2), Pair(5, 24), Pair(3, 3)]) == 29
p = Pair(2, 3)
assert p.total() == 5 and p.a == 2 and p != Pair(2, 3)
try:
    check_positive(-1)
    raise RuntimeError('expected ValueError')
except ValueError:
    pass
"""
    result = run_program(Program(code, tests))
    assert result.passed, result.reason


def test_failures_get_a_fixed_reason_and_strings_are_self_checking_programs():
    programs = [
        Program("def f(x):\n    return 0\n", TESTS),
        Program("def f(x):\n    raise KeyError(x)\n", TESTS),
        Program("def f(x)\n    return 0\n", TESTS),
        Program("def g(x):\n    return 2 * x\n", TESTS),
        "assert sum(range(4)) == 6\n",
        "assert sum(range(4)) == 7\n",
        "import socket\nsocket.create_connection(('127.0.0.1', 9))\n",
    ]
    reasons = [r.reason for r in run_programs(programs, Limits(timeout=10.0), workers=2)]
    assert reasons == [
        "failed: a test assertion failed",
        "failed: the code raised KeyError",
        "failed: SyntaxError",
        "failed: the tests raised NameError",
        "passed",
        "failed: AssertionError",
        "failed: blocked by the sandbox (network)",
    ]


def test_the_verdict_needs_this_runs_nonce():
    reason = sandbox._verdict_reason
    assert reason(b"passed\nabc", "abc", False, 0, b"") == "passed"
    assert reason(b"passed\nabd", "abc", False, 0, b"") == "failed: the verdict was forged"
    assert reason(b"passed", "abc", False, 0, b"") == "failed: the verdict was forged"
    assert reason(b"", "abc", False, 0, b"passed") == "failed: the harness died without a verdict (exit status 0)"
    assert reason(b"", "abc", True, -9, b"") == "timed out"
    assert reason(b"failed: root:x:0:0:/root:/bin/bash", "abc", False, 0, b"").startswith("failed: the harness")


def test_seccomp_filter_is_well_formed():
    for machine in ("x86_64", "aarch64"):
        program = sandbox.seccomp_filter(machine)
        assert program and len(program) % 8 == 0 and len(program) // 8 < 256  # BPF jumps are one byte
    assert sandbox.seccomp_filter("riscv64") is None


def test_a_machine_without_bubblewrap_gets_one_clear_line(monkeypatch):
    monkeypatch.setattr(sandbox, "_RUNTIME", None)
    monkeypatch.setenv("PATH", "/nonexistent")
    with pytest.raises(Phi4Error, match=r"needs bubblewrap: no 'bwrap' on PATH \(apt-get install bubblewrap"):
        run_programs(["pass"])


def test_humaneval_canonical_solutions_pass():
    with gzip.open(HUMANEVAL, "rt") as f:
        problems = [json.loads(line) for line in f]
    results = run_programs(
        [humaneval_program(p, p["canonical_solution"]) for p in problems], Limits(timeout=20.0), workers=4
    )
    failed = [(p["task_id"], r.reason) for p, r in zip(problems, results) if not r.passed]
    assert len(problems) == 164 and failed == []
