"""The sandbox for model-written code: hostile programs are contained and leave nothing behind.

Every test uses `Sandbox()`'s default isolation, the configuration `benchmarks/bench_sandbox.py`
measures (bubblewrap namespaces with network isolation, `nobody`, rlimits); the fixture
fails, not skips, when bubblewrap's network namespace is not active. After each hostile
program a normal program must still print its result and the server must have no
process left besides its own.
"""

from __future__ import annotations

import json
import os
import socket
import sysconfig
from pathlib import Path

import pytest

from reasonloop.verify.sandbox import (
    ExecResult,
    Limits,
    Sandbox,
    SandboxWarning,
    readable_by_others,
    run_many,
    run_python,
)

NORMAL = "print(sum(range(1000)))"
LIMITS = Limits(timeout_s=1.0, memory_mb=256)
CANARY = "REASONLOOP_SANDBOX_CANARY"
SECRET = "s3cret-4b1d9"


@pytest.fixture(scope="module")
def sandbox():
    os.environ[CANARY] = SECRET  # in this process's environment before the server starts
    box = Sandbox(workers=1)
    try:
        layers = {layer.name: layer for layer in box.layers()}
        for name in ("bubblewrap", "network namespace", "pid namespace", "unprivileged user"):
            if not layers[name].active:
                pytest.fail(f"sandbox layer {name!r} unavailable ({layers[name].detail}): "
                            "install bubblewrap (bash scripts/install-test-deps.sh)")
        box.run(NORMAL, LIMITS)
        yield box
    finally:
        box.close()
        del os.environ[CANARY]


def host_processes() -> dict[int, int]:
    """pid -> parent pid of every process on the host."""
    parents = {}
    for name in os.listdir("/proc"):
        if name.isdigit():
            try:
                stat = Path(f"/proc/{name}/stat").read_text()
            except OSError:
                continue
            parents[int(name)] = int(stat.rsplit(")", 1)[1].split()[1])
    return parents


def descendants(root: int) -> set[int]:
    parents = host_processes()
    found, frontier = set(), {root}
    while frontier:
        frontier = {pid for pid, parent in parents.items() if parent in frontier} - found
        found |= frontier
    return found


def run_then_check_clean(sandbox: Sandbox, code: str, limits: Limits = LIMITS) -> ExecResult:
    """Run a hostile program, then prove the sandbox is clean and still works."""
    [server] = sandbox.server_pids()
    before = descendants(server)
    result = sandbox.run(code, limits)
    assert descendants(server) == before, "a process outlived its program"
    assert sandbox.server_pids() == [server], "the server was restarted"
    normal = sandbox.run(NORMAL, LIMITS)
    assert (normal.status, normal.stdout) == ("ok", "499500\n"), normal
    return result


def test_a_short_program_runs_as_nobody_in_a_private_empty_world(sandbox):
    probe = ("import os, sys\n"
             "print(os.getuid(), os.getgid(), os.getgroups(), dict(os.environ), sys.argv)\n"
             "print(os.getcwd().startswith('/tmp/'), os.listdir('.'), os.listdir('/etc'), os.path.exists(%r))\n"
             "print(sorted(int(p) for p in os.listdir('/proc') if p.isdigit()) == [1, os.getppid(), os.getpid()])"
             % str(Path(__file__).resolve()))
    result = sandbox.run(probe, LIMITS)
    assert result.status == "ok", result
    assert result.stdout.splitlines() == [
        "65534 65534 [] {} ['<program>']",
        "True [] ['ld.so.cache'] False",  # of the host's files, only the system and Python are there
        "True",
    ]


def test_each_program_gets_a_fresh_work_dir_and_interpreter_state(sandbox):
    first = sandbox.run("import os\nopen('left.txt', 'w').write('x')\nx = 41\nprint(os.getcwd())", LIMITS)
    second = sandbox.run("import os\nprint(os.listdir('.'), 'x' in globals(), os.path.exists(%r))"
                         % first.stdout.strip(), LIMITS)
    assert (first.status, second.stdout) == ("ok", "[] False False\n")


def test_bad_programs_become_statuses_with_reasons(sandbox):
    cases = {
        "def f(:": ("error", "exit 1: SyntaxError: invalid syntax"),
        "1/0": ("error", "exit 1: ZeroDivisionError: division by zero"),
        "x = 1": ("ok", "exit 0, printed nothing"),
        "import sys; sys.exit(3)": ("error", "exit 3"),
        "raise SystemExit('bye')": ("error", "exit 1: bye"),
        "import sys; sys.stdout.buffer.write(b'\\xff1\\n')": ("ok", "exit 0; stdout was not valid UTF-8 "
                                                               "(bad bytes replaced)"),
        "import sys\nsys.setrecursionlimit(1000)\ndef f(n): return f(n + 1)\nf(0)":
            ("error", "exit 1: RecursionError: maximum recursion depth exceeded"),
    }
    results = sandbox.run_many(list(cases), LIMITS)
    assert [(r.status, r.reason) for r in results] == list(cases.values())
    assert results[1].stderr.endswith('  File "<program>", line 1, in <module>\n    1/0\n     ~^~\n'
                                      "ZeroDivisionError: division by zero\n")
    assert results[5].stdout == "\ufffd1\n"


def test_stdin_and_non_string_code(sandbox):
    assert sandbox.run("print(input()[::-1])", LIMITS, stdin="abc\n").stdout == "cba\n"
    result = sandbox.run(b"print(1)", LIMITS)  # type: ignore[arg-type]
    assert (result.status, result.reason) == ("error", "not a program: bytes, expected str")


def test_infinite_loop_times_out(sandbox):
    result = run_then_check_clean(sandbox, "while True: pass", Limits(timeout_s=0.5, memory_mb=256))
    assert (result.status, result.timed_out, result.exit_code) == ("timeout", True, -9)
    assert result.reason == "timed out after 0.5 s (wall clock)"


def test_fork_bomb_is_capped_and_cleaned_up(sandbox):
    bomb = ("import os\ncount = 0\nwhile True:\n    try:\n        os.fork()\n        count += 1\n"
            "    except OSError:\n        pass\n")
    result = run_then_check_clean(sandbox, bomb, Limits(timeout_s=0.5, memory_mb=256))
    assert result.status == "timeout"


def test_memory_bomb_fails_with_memory_error(sandbox):
    at_once = run_then_check_clean(sandbox, "x = [0] * 10**9")  # 8 GB
    assert (at_once.status, at_once.reason) == ("error", "exit 1: MemoryError")
    growing = "chunks = []\nwhile True:\n    chunks.append(bytearray(10**7))"
    result = run_then_check_clean(sandbox, growing, Limits(timeout_s=10, memory_mb=128))
    assert (result.status, result.reason) == ("error", "exit 1: MemoryError")


def test_100_mb_of_output_is_cut(sandbox):
    flood = "import sys\nfor _ in range(100):\n    sys.stdout.write('x' * 10**6)\n"
    result = run_then_check_clean(sandbox, flood)
    assert (result.status, result.truncated, len(result.stdout)) == ("error", True, LIMITS.max_output_bytes)
    assert result.reason == "output over 1000000 bytes: stopped, output cut"


def test_writing_outside_the_work_dir_fails(sandbox, tmp_path):
    target = tmp_path / "escaped.txt"
    paths = [str(target), "/tmp/escaped.txt", "/escaped.txt", "/usr/escaped.txt", str(Path.cwd() / "escaped.txt"),
             "/dev/shm/escaped.txt"]
    attempt = ("import os\nfor path in %r:\n    try:\n        open(path, 'w').write('x')\n"
               "        print('wrote', path)\n    except OSError as error:\n        print(type(error).__name__)\n")
    result = run_then_check_clean(sandbox, attempt % paths)
    assert "wrote" not in result.stdout, result.stdout
    assert len(result.stdout.splitlines()) == len(paths)
    assert not target.exists() and not (Path.cwd() / "escaped.txt").exists()


def test_the_parents_environment_is_unreadable(sandbox):
    assert os.environ[CANARY] == SECRET
    snoop = ("import os\nprint(dict(os.environ))\nfor pid in os.listdir('/proc'):\n"
             "    if pid.isdigit() or pid == 'self':\n        try:\n"
             "            print(pid, open(f'/proc/{pid}/environ', 'rb').read())\n"
             "        except OSError as error:\n            print(pid, type(error).__name__)\n")
    result = run_then_check_clean(sandbox, snoop)
    assert result.status == "ok"
    assert SECRET not in result.stdout and CANARY not in result.stdout
    assert "PermissionError" in result.stdout  # the server's and bwrap's, which are root's


def test_no_connection_reaches_a_server_on_the_hosts_loopback(sandbox):
    with socket.create_server(("127.0.0.1", 0)) as listener:
        listener.setblocking(False)  # a connection that got through would wait in the backlog
        port = listener.getsockname()[1]
        dial = ("import socket\nfor host in ('127.0.0.1', '1.1.1.1'):\n    try:\n"
                f"        socket.create_connection((host, {port}), timeout=0.5)\n        print('connected', host)\n"
                "    except OSError as error:\n        print(type(error).__name__)\n")
        result = run_then_check_clean(sandbox, dial)
        with pytest.raises(BlockingIOError):
            listener.accept()
    assert result.stdout == "ConnectionRefusedError\nOSError\n"  # no route at all off the sandbox's loopback


def test_a_double_forked_daemon_does_not_outlive_its_program(sandbox):
    daemon = ("import os, time\nif os.fork() == 0:\n    os.setsid()\n    if os.fork() == 0:\n"
              "        time.sleep(30)\n    os._exit(0)\nprint('parent done')\n")
    result = run_then_check_clean(sandbox, daemon)
    assert (result.status, result.stdout) == ("ok", "parent done\n")
    waits = run_then_check_clean(sandbox, daemon + "time.sleep(30)\n", Limits(timeout_s=0.5, memory_mb=256))
    assert waits.status == "timeout"


def test_ignoring_sigterm_does_not_help(sandbox):
    stubborn = "import signal\nsignal.signal(signal.SIGTERM, signal.SIG_IGN)\nwhile True: pass"
    assert run_then_check_clean(sandbox, stubborn, Limits(timeout_s=0.5, memory_mb=256)).status == "timeout"


def test_deep_recursion_crashes_only_itself(sandbox):
    deep = "import sys\nsys.setrecursionlimit(10**7)\ndef f(n): return f.__call__(n + 1)\nf(0)"  # C stack
    result = run_then_check_clean(sandbox, deep)
    assert (result.status, result.exit_code) == ("error", -11)
    assert result.reason == "crashed (SIGSEGV: stack overflow or memory error)"


def test_setsid_fails_and_a_new_session_child_is_still_killed(sandbox):
    result = run_then_check_clean(sandbox, "import os\nos.setsid()")
    assert (result.status, result.reason) == ("error", "exit 1: PermissionError: [Errno 1] Operation not permitted")
    escapee = "import os, time\nif os.fork() == 0:\n    os.setsid()\n    time.sleep(30)\nprint('forked')"
    assert run_then_check_clean(sandbox, escapee).stdout == "forked\n"


def test_killing_the_parent_and_everyone_is_refused_or_only_kills_itself(sandbox):
    parent = run_then_check_clean(sandbox, "import os, signal\nos.kill(os.getppid(), signal.SIGKILL)")
    assert parent.reason == "exit 1: PermissionError: [Errno 1] Operation not permitted"
    init = run_then_check_clean(sandbox, "import os, signal\nos.kill(1, signal.SIGKILL)")
    assert init.reason == "exit 1: PermissionError: [Errno 1] Operation not permitted"
    everyone = run_then_check_clean(sandbox, "import os, signal\nos.kill(-1, signal.SIGKILL)\nprint('alive')")
    assert (everyone.status, everyone.stdout) == ("ok", "alive\n")  # none it may signal: only itself is spared
    group = run_then_check_clean(sandbox, "import os, signal\nos.killpg(0, signal.SIGKILL)")
    assert (group.status, group.reason) == ("error", "killed by SIGKILL")


def test_closing_stdout(sandbox):
    closed = run_then_check_clean(sandbox, "import sys\nprint('before')\nsys.stdout.close()")
    assert (closed.status, closed.exit_code) == ("error", 120)
    fd_closed = run_then_check_clean(sandbox, "import os\nos.close(1)\nprint('lost')")
    assert (fd_closed.status, fd_closed.stdout) == ("error", "")
    assert fd_closed.reason == ("exit 120: Exception ignored on flushing sys.stdout: "
                                "OSError: [Errno 9] Bad file descriptor")  # as CPython exits


def test_module_functions_and_bad_limits():
    assert run_python(NORMAL, timeout_s=2, memory_mb=256).stdout == "499500\n"
    results = run_many(["print(1)", "print(2)", "while True: pass"], timeout_s=0.5, memory_mb=256)
    assert [(r.status, r.stdout) for r in results] == [("ok", "1\n"), ("ok", "2\n"), ("timeout", "")]
    with pytest.raises(ValueError, match="sandbox limit timeout_s must be a positive number, got 0"):
        Limits(timeout_s=0, memory_mb=256)
    with pytest.raises(ValueError, match="memory_mb must be at least 64"):
        Limits(timeout_s=1, memory_mb=10)


@pytest.mark.parametrize("isolation, missing", [
    ("unshare", ["bubblewrap", "read-only system files"]),
    ("none", ["bubblewrap", "pid namespace", "network namespace", "mount namespace", "IPC namespace",
              "read-only system files", "kill everything started"]),
])
def test_a_weaker_isolation_still_runs_and_warns_of_each_missing_layer(isolation, missing):
    missing = list(missing)
    with pytest.warns(SandboxWarning) as caught, Sandbox(isolation=isolation) as box:
        layers = box.layers()
        result = box.run("import os\nprint(os.getuid(), dict(os.environ))", LIMITS)
        timeout = box.run("while True: pass", Limits(timeout_s=0.3, memory_mb=256))
    if not readable_by_others(sysconfig.get_paths()["stdlib"]):  # e.g. Python under /root, as here
        missing.insert(missing.index("read-only system files"), "python library readable")
    assert [layer.name for layer in layers if not layer.active] == missing
    assert sorted(str(w.message).split(" unavailable")[0] for w in caught) == sorted(f"sandbox: {m}" for m in missing)
    assert (result.status, result.stdout, timeout.status) == ("ok", "65534 {}\n", "timeout")


def test_doctor_reports_every_layer_active_and_no_network():
    from typer.testing import CliRunner

    from reasonloop.cli import app

    result = CliRunner().invoke(app, ["doctor", "--json"])
    assert result.exit_code == 0, result.output
    report = json.loads(result.output)
    assert report["isolation"] == "bwrap"
    assert [layer["name"] for layer in report["layers"] if not layer["active"]] == []
    assert report["probes"] == {"program uid": 65534, "environment variables seen": 0,
                                "host environment readable": False, "system writes that succeeded": [],
                                "connections made": [], "host server accepted a connection": False,
                                "network probe failure": None}
    assert report["network_reachable"] is False


def test_doctor_fails_when_the_network_is_reachable():
    from typer.testing import CliRunner

    from reasonloop.cli import app

    result = CliRunner().invoke(app, ["doctor", "--isolation", "none"])
    assert result.exit_code == 1
    assert "  network namespace          UNAVAILABLE  shares the host's\n" in result.output
    verdict = result.output.splitlines()[-1]
    assert verdict in ("network reachable from inside: YES (it must not be)",  # python readable by nobody
                       "network reachable from inside: UNKNOWN (the probe failed)")  # not (this machine: /root)
