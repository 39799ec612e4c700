"""The fork server that runs inside the sandbox: started once, it forks one fresh child per program.

This file is run as `python -I -c SOURCE CONFIG_JSON` inside the namespaces that `sandbox.py`
sets up, so it imports only the standard library and nothing from reasonloop. It stays
privileged where it can (root without most capabilities, inside the namespaces) while each
child drops to the unprivileged user before any model code runs: the program then cannot
signal, trace or read the server, and the server can always kill and clean up after it.

Protocol over the server's stdin/stdout, one frame each way per program:
a frame is `>II` (JSON header length, payload length), the JSON header, the payload.
Request header: code and limits; payload: stdin bytes. Response header: exit code,
timed_out, truncated, seconds, stdout length; payload: stdout then stderr bytes.
"""

import atexit
import ctypes
import gc
import io
import json
import linecache
import os
import resource
import selectors
import signal
import struct
import sys
import time
import traceback
import types

FRAME = struct.Struct(">II")
PR_SET_CHILD_SUBREAPER = 36
PR_SET_NO_NEW_PRIVS = 38
NAMESPACES = ("pid", "net", "mnt", "ipc", "uts", "user")
FLUSH_FAILED = 120  # what CPython exits with when flushing stdout fails at exit


def read_exact(fd, size):
    chunks, left = [], size
    while left:
        chunk = os.read(fd, min(left, 1 << 20))
        if not chunk:
            return None
        chunks.append(chunk)
        left -= len(chunk)
    return b"".join(chunks)


def read_frame(fd):
    head = read_exact(fd, FRAME.size)
    if head is None:
        return None, None
    header_len, payload_len = FRAME.unpack(head)
    header = json.loads(read_exact(fd, header_len))
    return header, read_exact(fd, payload_len) if payload_len else b""


def write_frame(fd, header, payload=b""):
    data = json.dumps(header).encode()
    view = memoryview(FRAME.pack(len(data), len(payload)) + data + payload)
    while view:
        view = view[os.write(fd, view):]


LIBC = ctypes.CDLL(None, use_errno=True)


def prctl(option, value):
    return LIBC.prctl(option, value, 0, 0, 0) == 0


def namespaces():
    found = {}
    for name in NAMESPACES:
        try:
            found[name] = os.readlink(f"/proc/self/ns/{name}")
        except OSError:
            found[name] = None
    return found


class Server:
    def __init__(self, config):
        self.work_root = config["work_root"]
        self.uid, self.gid = config["uid"], config["gid"]
        self.drop = self.uid is not None and os.getuid() == 0
        # Killing "every other process" is only safe where that means the sandbox's own.
        self.own_pid_namespace = namespaces()["pid"] not in (None, config["host_pid_namespace"])
        self.count = 0
        self.subreaper = prctl(PR_SET_CHILD_SUBREAPER, 1)
        prctl(PR_SET_NO_NEW_PRIVS, 1)  # inherited by every child: no setuid binary can raise it again
        # The programs' text streams over fds 0-2, made once here (each child dup2s its own pipes
        # onto those fds first): building them in every child costs a tenth of a fork.
        self.streams = (
            open(0, "r", encoding="utf-8", errors="surrogateescape", closefd=False),  # noqa: SIM115
            open(1, "w", encoding="utf-8", errors="surrogateescape", closefd=False),  # noqa: SIM115
            open(2, "w", encoding="utf-8", errors="backslashreplace", closefd=False, buffering=1),  # noqa: SIM115
        )

    def hello(self):
        return {"pid": os.getpid(), "uid": os.getuid(), "child_uid": self.uid if self.drop else os.getuid(),
                "namespaces": namespaces(), "own_pid_namespace": self.own_pid_namespace,
                "subreaper": self.subreaper, "python": sys.version.split()[0]}

    def run(self, request, stdin):
        self.count += 1
        workdir = f"{self.work_root}/{self.count}"
        out_r, out_w = os.pipe()
        err_r, err_w = os.pipe()
        start = time.monotonic()
        pid = os.fork()
        if pid == 0:
            try:
                os.close(out_r)
                os.close(err_r)
                Child(self, request, workdir).run(stdin, out_w, err_w)
            finally:
                os._exit(127)
        os.close(out_w)
        os.close(err_w)
        outcome = self.collect(pid, out_r, err_r, request, start)
        self.remove(workdir)
        return outcome

    def collect(self, pid, out_r, err_r, request, start):
        streams = {out_r: bytearray(), err_r: bytearray()}
        cap = request["max_output_bytes"]
        pidfd = os.pidfd_open(pid)
        selector = selectors.DefaultSelector()
        for fd in (out_r, err_r, pidfd):
            selector.register(fd, selectors.EVENT_READ)
        deadline = start + request["timeout_s"]
        exited = timed_out = truncated = False
        while not (exited or timed_out or truncated):
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                timed_out = True
                break
            for key, _ in selector.select(remaining):
                if key.fd == pidfd:
                    exited = True
                elif not self.read_into(key.fd, streams, selector, cap):
                    truncated = True
        seconds = time.monotonic() - start
        selector.close()
        os.close(pidfd)
        status = self.kill_everything(pid)
        truncated = self.drain(streams, cap) or truncated
        for fd in streams:
            os.close(fd)
        return {"exit_code": None if status is None else os.waitstatus_to_exitcode(status),
                "timed_out": timed_out, "truncated": truncated, "seconds": seconds,
                "stdout_len": len(streams[out_r])}, bytes(streams[out_r]) + bytes(streams[err_r])

    @staticmethod
    def read_into(fd, streams, selector, cap):
        """Append what `fd` has; False once the output is over `cap` (the rest is cut)."""
        data = os.read(fd, 1 << 16)
        if not data:
            selector.unregister(fd)
            return True
        buffer = streams[fd]
        room = max(0, cap - len(buffer))
        buffer += data[:room]
        return len(data) <= room

    @staticmethod
    def drain(streams, cap):
        """Read what the (now dead) writers left in the pipes; True if some of it was cut."""
        cut = False
        for fd, buffer in streams.items():
            os.set_blocking(fd, False)
            while True:
                try:
                    data = os.read(fd, 1 << 16)
                except BlockingIOError:
                    break
                if not data:
                    break
                room = max(0, cap - len(buffer))
                cut = cut or len(data) > room
                buffer += data[:room]
        return cut

    def kill_everything(self, pid):
        """SIGKILL the program and all it started (daemons, setsid, fork bombs); reap them all.

        In the sandbox's own pid namespace every process but pid 1 and this server is the
        program's, so each is killed until none is left; without that namespace only the
        program's process group (its session) can be reached."""
        status = None
        try:
            os.kill(pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        _, status = os.waitpid(pid, 0)
        if not self.own_pid_namespace:
            try:
                os.killpg(pid, signal.SIGKILL)
            except (ProcessLookupError, PermissionError):
                pass
            self.reap()
            return status
        me = os.getpid()
        for _ in range(100000):
            others = [int(name) for name in os.listdir("/proc") if name.isdigit() and int(name) not in (1, me)]
            if not others:
                break
            for other in others:
                try:
                    os.kill(other, signal.SIGKILL)
                except ProcessLookupError:
                    pass
            if not self.reap():
                time.sleep(0.0002)
        return status

    @staticmethod
    def reap():
        reaped = 0
        while True:
            try:
                pid, _ = os.waitpid(-1, os.WNOHANG)
            except ChildProcessError:
                return reaped
            if pid == 0:
                return reaped
            reaped += 1

    @staticmethod
    def remove(workdir):
        try:
            os.rmdir(workdir)  # the usual case: the program left nothing
            return
        except FileNotFoundError:
            return
        except OSError:
            pass
        for root, dirs, files in os.walk(workdir, topdown=False):
            for name in files + [d for d in dirs if os.path.islink(os.path.join(root, d))]:
                os.unlink(os.path.join(root, name))
            for name in dirs:
                path = os.path.join(root, name)
                if not os.path.islink(path):
                    os.rmdir(path)
        os.rmdir(workdir)


class Child:
    """The forked child: becomes the unprivileged program, then runs the code in a fresh `__main__`."""

    def __init__(self, server, request, workdir):
        self.server, self.request, self.workdir = server, request, workdir

    def run(self, stdin, out_w, err_w):
        os.setsid()  # its own session and process group
        os.mkdir(self.workdir, 0o700)
        if self.server.drop:
            os.chown(self.workdir, self.server.uid, self.server.gid)
        os.chdir(self.workdir)
        self.redirect(stdin, out_w, err_w)
        self.limit()
        if self.server.drop:
            os.setgroups([])
            os.setgid(self.server.gid)
            os.setuid(self.server.uid)  # from root to a plain uid: every capability is gone
        os._exit(self.execute(self.request["code"]))

    @staticmethod
    def redirect(stdin, out_w, err_w):
        if stdin:
            fd = os.memfd_create("stdin")
            os.write(fd, stdin)
            os.lseek(fd, 0, os.SEEK_SET)
        else:
            fd = os.open("/dev/null", os.O_RDONLY)
        os.dup2(fd, 0)
        os.dup2(out_w, 1)
        os.dup2(err_w, 2)
        os.closerange(3, resource.getrlimit(resource.RLIMIT_NOFILE)[0])

    def limit(self):
        r = self.request
        cpu = int(r["timeout_s"]) + 1
        for name, value in (("RLIMIT_CPU", cpu), ("RLIMIT_AS", r["memory_mb"] << 20),
                            ("RLIMIT_FSIZE", r["file_size_mb"] << 20), ("RLIMIT_NOFILE", r["open_files"]),
                            ("RLIMIT_NPROC", r["processes"]), ("RLIMIT_CORE", 0)):
            resource.setrlimit(getattr(resource, name), (value, value))

    def execute(self, code):
        sys.stdin, sys.stdout, sys.stderr = self.server.streams
        sys.__stdin__, sys.__stdout__, sys.__stderr__ = self.server.streams
        sys.argv = ["<program>"]
        sys.path.insert(0, self.workdir)
        main = types.ModuleType("__main__")
        main.__dict__["__builtins__"] = __builtins__
        sys.modules["__main__"] = main
        exit_code = 0
        try:
            exec(compile(code, "<program>", "exec"), main.__dict__)  # noqa: S102 - inside the sandbox, as nobody
        except SystemExit as stop:
            exit_code = self.exit_code_of(stop)
        except BaseException as error:  # noqa: BLE001 - the program's own failure, printed like python does
            error = error.with_traceback(error.__traceback__.tb_next)  # from the program's own frame on
            if sys.excepthook is sys.__excepthook__:  # the C hook cannot show lines of code not in a file
                linecache.cache["<program>"] = (len(code), None, code.splitlines(True), "<program>")
                traceback.print_exception(error)
            else:
                sys.excepthook(type(error), error, error.__traceback__)
            exit_code = 1
        return self.finish(exit_code)

    @staticmethod
    def exit_code_of(stop):
        if stop.code is None:
            return 0
        if isinstance(stop.code, int):
            return stop.code & 0xFF
        print(stop.code, file=sys.stderr)
        return 1

    @staticmethod
    def finish(exit_code):
        try:
            atexit._run_exitfuncs()
        except BaseException:  # noqa: BLE001
            pass
        for name in ("stdout", "stderr"):
            try:
                getattr(sys, name).flush()
            except BaseException as error:  # noqa: BLE001 - e.g. the program closed its stdout
                exit_code = exit_code or FLUSH_FAILED
                report = f"Exception ignored on flushing sys.{name}: {type(error).__name__}: {error}\n"
                try:
                    os.write(2, report.encode())
                except OSError:
                    pass
        return exit_code


def main():
    config = json.loads(sys.argv[1])
    sys.path.extend(config["site_packages"])  # importable, without running their .pth files
    os.environ.clear()
    requests, responses = os.dup(0), os.dup(1)
    null = os.open("/dev/null", os.O_RDWR)
    os.dup2(null, 0)
    os.dup2(null, 1)  # a stray print must not corrupt the protocol
    signal.signal(signal.SIGPIPE, signal.SIG_IGN)
    server = Server(config)
    gc.freeze()  # the children's collector then skips the server's objects: fewer copied pages per fork
    write_frame(responses, server.hello())
    while True:
        request, stdin = read_frame(requests)
        if request is None:
            return
        header, payload = server.run(request, stdin)
        write_frame(responses, header, payload)


if __name__ == "__main__":
    main()
