"""Run untrusted Python (program-aided and tool-integrated reasoning) in a warm sandbox.

    from reasonloop.verify.sandbox import run_python, run_many
    run_python("print(sum(range(1000)))", timeout_s=5, memory_mb=512).stdout   # '499500\\n'
    [r.status for r in run_many(["print(1)", "1/0", "while True: pass"], timeout_s=1, memory_mb=512)]
    # ['ok', 'error', 'timeout']

Model code never runs in this process. A fork server (`_forkserver.py`) is started once
per worker inside bubblewrap's pid, network, mount, IPC and UTS namespaces, with the
system mounted read-only, a size-capped private /tmp, an empty environment and all
capabilities dropped except those it needs to hand each program to an unprivileged user.
Per program it forks a fresh child that gets its own session, working directory (removed
afterwards) and rlimits (CPU seconds, address space, file size, open files, processes),
becomes `nobody` (uid 65534), and runs the code in a new `__main__`. When the program
exits, overruns its wall-clock timeout or its output limit, everything it started is
killed (every other process in the sandbox's pid namespace) and reaped.

Without bubblewrap, `unshare` gives the namespaces but no read-only mounts; without either,
only the user switch, rlimits and the process group remain. Each missing layer is
reported with `warnings.warn` and `logging` when the sandbox starts, never silently;
`reasonloop doctor` lists them. Model code never makes these functions raise: syntax
errors, crashes, limits, non-UTF-8 or missing output all come back as an `ExecResult`
whose `status` is `ok`, `error` or `timeout`, with a one-line `reason`.
"""

from __future__ import annotations

import atexit
import json
import logging
import os
import queue
import selectors
import shutil
import signal
import stat
import struct
import subprocess
import sys
import sysconfig
import tempfile
import threading
import time
import warnings
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Literal

from reasonloop.errors import ReasonloopError

logger = logging.getLogger(__name__)

ISOLATIONS = ("auto", "bwrap", "unshare", "none")
NOBODY = 65534  # uid and gid of `nobody` / `nogroup` on Debian
TMP_SIZE = 256 << 20  # the sandbox's private /tmp (work directories), per worker
START_TIMEOUT_S = 60.0
ANSWER_GRACE_S = 10.0  # how long past a program's timeout the server may take to answer
FRAME = struct.Struct(">II")
SERVER_SOURCE = Path(__file__).with_name("_forkserver.py")
Status = Literal["ok", "error", "timeout"]


class SandboxError(ReasonloopError):
    """The sandbox itself cannot be started (never raised for anything model code does)."""


class SandboxWarning(UserWarning):
    """An isolation layer is unavailable on this machine."""


@dataclass(frozen=True)
class Limits:
    """What one program may use. Every field is enforced in the sandbox, per program."""

    timeout_s: float  # wall clock; CPU seconds are capped at int(timeout_s) + 1 as well
    memory_mb: int  # address space (RLIMIT_AS) of each process
    max_output_bytes: int = 1_000_000  # per stream; past it the program is stopped and the output cut
    file_size_mb: int = 16  # largest file it may write (RLIMIT_FSIZE)
    open_files: int = 64  # RLIMIT_NOFILE
    processes: int = 32  # RLIMIT_NPROC: processes of the unprivileged user at once

    def __post_init__(self) -> None:
        for name, value in asdict(self).items():
            if isinstance(value, bool) or not isinstance(value, (int, float)) or not value > 0:
                raise ValueError(f"sandbox limit {name} must be a positive number, got {value!r}")
        if self.memory_mb < 64:
            raise ValueError(f"sandbox limit memory_mb must be at least 64 (python itself needs it), "
                             f"got {self.memory_mb}")


@dataclass(frozen=True)
class ExecResult:
    """What one program did. `status`: ok (exit 0 within limits), error, or timeout."""

    status: Status
    reason: str  # one line a person can read
    stdout: str
    stderr: str
    exit_code: int | None  # negative: killed by that signal (as in subprocess)
    timed_out: bool
    truncated: bool  # output over the limit: the program was stopped and the output cut
    seconds: float  # wall clock inside the sandbox


@dataclass(frozen=True)
class Layer:
    name: str
    active: bool
    detail: str


def run_python(code: str, *, timeout_s: float, memory_mb: int, stdin: str | None = None,
               **limits: int) -> ExecResult:
    """Run one program in the shared warm sandbox. Never raises on anything the code does."""
    return default_sandbox().run(code, Limits(timeout_s, memory_mb, **limits), stdin=stdin)


def run_many(codes: Sequence[str], *, timeout_s: float, memory_mb: int, stdins: Sequence[str | None] | None = None,
             **limits: int) -> list[ExecResult]:
    """Run programs in parallel on the shared sandbox's workers; results in input order."""
    return default_sandbox().run_many(codes, Limits(timeout_s, memory_mb, **limits), stdins=stdins)


_default: Sandbox | None = None
_default_lock = threading.Lock()


def default_sandbox() -> Sandbox:
    """One sandbox per process (a worker per CPU), started on first use and closed at exit."""
    global _default
    with _default_lock:
        if _default is None:
            _default = Sandbox(workers=os.cpu_count() or 1)
            atexit.register(_default.close)
        return _default


class Sandbox:
    """A pool of warm fork servers. Thread-safe; use as a context manager or call `close()`."""

    def __init__(self, workers: int = 1, isolation: str = "auto") -> None:
        if isolation not in ISOLATIONS:
            raise ValueError(f"unknown isolation {isolation!r}; choose one of {', '.join(ISOLATIONS)}")
        if workers < 1:
            raise ValueError(f"workers must be at least 1, got {workers}")
        self.workers = workers
        self.requested = isolation
        self.isolation: str | None = None  # chosen when the first server starts
        self.hello: dict | None = None
        self._lock = threading.Lock()
        self._idle: queue.Queue[_Server] = queue.Queue()
        for _ in range(workers):
            self._idle.put(_Server(self))
        self._closed = False

    def __enter__(self) -> Sandbox:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def run(self, code: str, limits: Limits, *, stdin: str | None = None) -> ExecResult:
        server = self._idle.get()
        try:
            return server.execute(code, limits, stdin)
        finally:
            self._idle.put(server)

    def run_many(self, codes: Sequence[str], limits: Limits, *,
                 stdins: Sequence[str | None] | None = None) -> list[ExecResult]:
        stdins = list(stdins) if stdins is not None else [None] * len(codes)
        if len(stdins) != len(codes):
            raise ValueError(f"run_many: {len(codes)} programs but {len(stdins)} stdins")
        with ThreadPoolExecutor(max_workers=self.workers) as pool:
            return list(pool.map(lambda item: self.run(item[0], limits, stdin=item[1]), zip(codes, stdins)))

    def layers(self) -> list[Layer]:
        """Each isolation layer, active or not, as found by starting a server."""
        self.start()
        return describe_layers(self.isolation or "none", self.hello or {})

    def server_pids(self) -> list[int]:
        """Host pids of the running servers' outermost processes (bwrap, unshare or python)."""
        return [server.process.pid for server in list(self._idle.queue) if server.process is not None]

    def start(self) -> None:
        """Start one server now (otherwise the first program does), choosing the isolation."""
        server = self._idle.get()
        try:
            server.ensure_started()
        finally:
            self._idle.put(server)

    def close(self) -> None:
        self._closed = True
        for _ in range(self.workers):
            self._idle.get().stop()
        for _ in range(self.workers):
            self._idle.put(_Server(self))

    def launch(self) -> subprocess.Popen:
        """Start a server process under the chosen isolation (choosing it, with warnings, the first time).

        Always from one long-lived thread: bwrap's --die-with-parent follows the thread that
        started it, so a server started from a pool thread would die with that thread."""
        return _launcher().submit(self._launch).result()

    def _launch(self) -> subprocess.Popen:
        with self._lock:
            if self.hello is not None:  # chosen and reported already
                return start_server(self.isolation, self)
            for isolation in [self.requested] if self.requested != "auto" else ["bwrap", "unshare", "none"]:
                try:
                    process = start_server(isolation, self)
                except SandboxError as error:
                    if self.requested != "auto":
                        raise
                    warn(f"sandbox: {isolation} isolation unavailable ({error}); trying the next")
                    continue
                self.isolation = isolation
                for layer in describe_layers(isolation, self.hello or {}):
                    if not layer.active:
                        warn(f"sandbox: {layer.name} unavailable: {layer.detail}")
                return process
            raise SandboxError("sandbox: no isolation could be started")  # pragma: no cover - 'none' always starts


_launcher_pool: ThreadPoolExecutor | None = None


def _launcher() -> ThreadPoolExecutor:
    global _launcher_pool
    with _default_lock:
        if _launcher_pool is None:
            _launcher_pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="sandbox-launcher")
        return _launcher_pool


def warn(message: str) -> None:
    logger.warning(message)
    warnings.warn(message, SandboxWarning, stacklevel=3)


class _ServerLost(Exception):
    pass


@dataclass
class _Server:
    """One fork server process; one program at a time."""

    sandbox: Sandbox
    process: subprocess.Popen | None = field(default=None, repr=False)

    def ensure_started(self) -> None:
        if self.process is None or self.process.poll() is not None:
            self.stop()
            self.process = self.sandbox.launch()

    def execute(self, code: str, limits: Limits, stdin: str | None) -> ExecResult:
        if not isinstance(code, str):
            return failed(f"not a program: {type(code).__name__}, expected str")
        self.ensure_started()
        request = {"code": code, **asdict(limits)}
        try:
            payload = (stdin or "").encode("utf-8", "surrogateescape")
            send_frame(self.process.stdin.fileno(), request, payload)
            header, output = read_frame(self.process.stdout.fileno(), time.monotonic() + limits.timeout_s
                                        + ANSWER_GRACE_S)
        except (_ServerLost, OSError) as error:
            self.stop()
            return failed(f"sandbox server lost ({error}); it is restarted for the next program")
        return make_result(header, output, limits)

    def stop(self) -> None:
        process, self.process = self.process, None
        if process is None:
            return
        if process.poll() is None:
            try:
                os.killpg(process.pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
        process.wait()
        for stream in (process.stdin, process.stdout):
            stream.close()


def failed(reason: str) -> ExecResult:
    return ExecResult("error", reason, "", "", None, False, False, 0.0)


def make_result(header: dict, output: bytes, limits: Limits) -> ExecResult:
    raw_out, raw_err = output[: header["stdout_len"]], output[header["stdout_len"]:]
    stdout, stderr = raw_out.decode("utf-8", "replace"), raw_err.decode("utf-8", "replace")
    exit_code, timed_out, truncated = header["exit_code"], header["timed_out"], header["truncated"]
    if timed_out:
        status, reason = "timeout", f"timed out after {limits.timeout_s:g} s (wall clock)"
    elif truncated:
        status, reason = "error", f"output over {limits.max_output_bytes} bytes: stopped, output cut"
    elif exit_code == 0:
        status, reason = "ok", "exit 0" if raw_out.strip() else "exit 0, printed nothing"
    else:
        status, reason = "error", failure_reason(exit_code, stderr, limits)
    if stdout.encode("utf-8", "surrogateescape") != raw_out:
        reason += "; stdout was not valid UTF-8 (bad bytes replaced)"
    return ExecResult(status, reason, stdout, stderr, exit_code, timed_out, truncated, header["seconds"])


def failure_reason(exit_code: int | None, stderr: str, limits: Limits) -> str:
    if exit_code is None:
        return "no exit status"
    if exit_code < 0:
        name = signal.Signals(-exit_code).name if -exit_code in signal.valid_signals() else str(-exit_code)
        if name == "SIGXCPU":
            return f"CPU time limit ({int(limits.timeout_s) + 1} s) exceeded"
        if name == "SIGSEGV":
            return "crashed (SIGSEGV: stack overflow or memory error)"
        return f"killed by {name}"
    last = next((line.strip() for line in reversed(stderr.splitlines()) if line.strip()), "")
    return f"exit {exit_code}" + (f": {last[:200]}" if last else "")


# --- the wire -------------------------------------------------------------------------------


def send_frame(fd: int, header: dict, payload: bytes = b"") -> None:
    data = json.dumps(header).encode()
    view = memoryview(FRAME.pack(len(data), len(payload)) + data + payload)
    while view:
        view = view[os.write(fd, view):]


def read_frame(fd: int, deadline: float) -> tuple[dict, bytes]:
    header_len, payload_len = FRAME.unpack(read_exact(fd, FRAME.size, deadline))
    header = json.loads(read_exact(fd, header_len, deadline))
    return header, read_exact(fd, payload_len, deadline)


def read_exact(fd: int, size: int, deadline: float) -> bytes:
    chunks, left = [], size
    with selectors.DefaultSelector() as selector:
        selector.register(fd, selectors.EVENT_READ)
        while left:
            remaining = deadline - time.monotonic()
            if remaining <= 0 or not selector.select(remaining):
                raise _ServerLost("no answer in time")
            chunk = os.read(fd, min(left, 1 << 20))
            if not chunk:
                raise _ServerLost("it exited")
            chunks.append(chunk)
            left -= len(chunk)
    return b"".join(chunks)


# --- starting a server under each isolation -------------------------------------------------


def start_server(isolation: str, sandbox: Sandbox) -> subprocess.Popen:
    work_root = "/tmp" if isolation == "bwrap" else host_work_root()
    paths = sysconfig.get_paths()
    config = {"work_root": work_root, "uid": NOBODY if os.getuid() == 0 else None, "gid": NOBODY,
              "host_pid_namespace": own_namespace("pid"),
              "site_packages": sorted({paths["purelib"], paths["platlib"]})}
    python = os.path.realpath(sys.executable)
    # -S: no site module, whose .pth files import a few dozen modules that make each fork 3x dearer
    server = [python, "-I", "-S", "-c", SERVER_SOURCE.read_text(), json.dumps(config)]
    command = {"bwrap": bwrap_prefix, "unshare": unshare_prefix, "none": list}[isolation]() + server
    try:
        process = subprocess.Popen(command, stdin=subprocess.PIPE, stdout=subprocess.PIPE, env={},
                                   start_new_session=True, cwd="/")
    except OSError as error:
        raise SandboxError(f"cannot start {command[0]}: {error}") from error
    try:
        hello, _ = read_frame(process.stdout.fileno(), time.monotonic() + START_TIMEOUT_S)
    except _ServerLost as error:
        process.kill()
        process.wait()
        raise SandboxError(f"{command[0]} exited at start (code {process.returncode})") from error
    sandbox.hello = hello
    return process


def own_namespace(name: str) -> str | None:
    try:
        return os.readlink(f"/proc/self/ns/{name}")
    except OSError:
        return None


_host_work_root: str | None = None


def host_work_root() -> str:
    """Without bubblewrap's private /tmp: one host directory for the work dirs, removed at exit."""
    global _host_work_root
    if _host_work_root is None:
        _host_work_root = tempfile.mkdtemp(prefix="reasonloop-sandbox-")
        os.chmod(_host_work_root, 0o711)
        atexit.register(shutil.rmtree, _host_work_root, True)
    return _host_work_root


def bwrap_prefix() -> list[str]:
    bwrap = shutil.which("bwrap")
    if bwrap is None:
        raise SandboxError("bwrap not found (Debian/Ubuntu: apt-get install bubblewrap)")
    root = os.getuid() == 0
    command = [bwrap, "--die-with-parent", "--unshare-pid", "--unshare-net", "--unshare-ipc", "--unshare-uts",
               "--unshare-cgroup-try", "--hostname", "sandbox"]
    if not root:
        command += ["--unshare-user"]
    command += system_mounts()
    command += ["--proc", "/proc", "--dev", "/dev", "--size", str(TMP_SIZE), "--tmpfs", "/tmp",
                "--remount-ro", "/", "--chdir", "/", "--clearenv"]
    if root:  # the server keeps only what it needs to hand programs to `nobody` and clean up after them
        command += ["--cap-drop", "ALL"]
        for cap in ("SETUID", "SETGID", "KILL", "CHOWN", "DAC_OVERRIDE", "FOWNER"):
            command += ["--cap-add", f"CAP_{cap}"]
    return command


def system_mounts() -> list[str]:
    """Read-only binds of the system and the Python installation; nothing else of the host."""
    binds = ["/usr"]
    mounts: list[str] = []
    for name in ("bin", "sbin", "lib", "lib32", "lib64", "libx32"):
        path = Path("/") / name
        if path.is_symlink():
            mounts += ["--symlink", os.readlink(path), str(path)]
        elif path.is_dir():
            binds.append(str(path))
    binds += [path for path in ("/etc/ld.so.cache",) if os.path.exists(path)] + python_directories()
    # bwrap would create the parents of a bind (/root, /etc) readable by root only
    parents = sorted({str(parent) for path in binds for parent in Path(path).parents if str(parent) != "/"},
                     key=lambda parent: parent.count("/"))
    for parent in parents:
        mounts += ["--perms", "0755", "--dir", parent]
    for path in binds:
        mounts += ["--ro-bind", path, path]
    return mounts


def python_directories() -> list[str]:
    paths = sysconfig.get_paths()
    candidates = {sys.base_prefix, sys.prefix, paths["purelib"], paths["platlib"], paths["stdlib"],
                  os.path.dirname(os.path.dirname(os.path.realpath(sys.executable)))}
    real = sorted({os.path.realpath(path) for path in candidates if os.path.isdir(path)})
    kept = [path for path in real if not path.startswith("/usr/")]
    return [path for path in kept if not any(path.startswith(other + "/") for other in kept)]


def unshare_prefix() -> list[str]:
    unshare = shutil.which("unshare")
    if unshare is None:
        raise SandboxError("unshare not found (util-linux)")
    command = [unshare, "--fork", "--pid", "--mount-proc", "--net", "--ipc", "--uts", "--kill-child"]
    if os.getuid() != 0:
        command.insert(1, "--map-root-user")
    return command


# --- what is active -------------------------------------------------------------------------


def readable_by_others(directory: str) -> bool:
    """Can any user list `directory` and pass through all its parents?"""
    path = Path(directory)
    try:
        return bool(path.stat().st_mode & stat.S_IROTH) and all(
            parent.stat().st_mode & stat.S_IXOTH for parent in [path, *path.parents])
    except OSError:
        return False


def describe_layers(isolation: str, hello: dict) -> list[Layer]:
    inside = hello.get("namespaces", {})
    host_uid = os.getuid()
    child_uid = hello.get("child_uid", host_uid)
    layers = [Layer("bubblewrap", isolation == "bwrap",
                    f"{shutil.which('bwrap')}" if isolation == "bwrap" else
                    "not used: install Debian's bubblewrap (apt-get install bubblewrap)")]
    layers.append(Layer("unprivileged user", child_uid not in (0, host_uid),
                        f"programs run as uid {child_uid}, the server as uid {hello.get('uid')}"
                        if child_uid not in (0, host_uid) else
                        f"programs run as uid {child_uid}, the invoking user's (switching users needs root)"))
    for name, label in (("pid", "pid namespace"), ("net", "network namespace"), ("mnt", "mount namespace"),
                        ("ipc", "IPC namespace")):
        separate = inside.get(name) not in (None, own_namespace(name))
        layers.append(Layer(label, separate, "own namespace" if separate else "shares the host's"))
    if isolation != "bwrap" and child_uid not in (0, host_uid) and not readable_by_others(sysconfig.get_paths()["stdlib"]):
        layers.append(Layer("python library readable", False,
                            f"{sysconfig.get_paths()['stdlib']} is not readable by uid {child_uid}: programs can "
                            "import only what the server imported (install Python outside a private home)"))
    layers.append(Layer("read-only system files", isolation == "bwrap",
                        "/ and the Python installation mounted read-only; nothing else of the host visible"
                        if isolation == "bwrap" else "no read-only mounts: host files protected only by permissions"))
    layers.append(Layer("private work directory", True,
                        f"one per program, removed afterwards, in a {TMP_SIZE >> 20} MB private /tmp"
                        if isolation == "bwrap" else "one per program under a host temp dir, removed afterwards"))
    layers.append(Layer("empty environment", True, "the server and programs start with no variables"))
    layers.append(Layer("rlimits", True, "CPU seconds, address space, file size, open files, processes"))
    layers.append(Layer("kill everything started", bool(hello.get("own_pid_namespace")),
                        "every process in the sandbox's pid namespace is killed after each program"
                        if hello.get("own_pid_namespace") else
                        "process group only: a program that calls setsid can outlive its timeout"))
    return layers
