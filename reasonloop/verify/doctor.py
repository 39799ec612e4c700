"""`reasonloop doctor`: which sandbox layers this machine gives, and whether the network leaks in.

It starts the sandbox as `run_python` would (`Sandbox()`'s defaults; `--isolation` picks a
weaker one to compare), lists each isolation
layer as active or unavailable, then runs probes inside: who the program runs as, whether
it sees any environment (a canary set in this process's own environment first), whether
it can write to the system, and whether it can open a TCP connection to a server this
command starts on the host's 127.0.0.1 or to an outside address. Exit code 1 unless the
network is shown unreachable from inside.
"""

from __future__ import annotations

import json
import logging
import os
import socket
import warnings

import typer

CANARY = ("REASONLOOP_DOCTOR_CANARY", "canary-7f3a9c")
OUTSIDE = ("1.1.1.1", 53)
PROBE_TIMEOUT_S = 1.0

IDENTITY = "import os\nprint(os.getuid(), len(os.environ))"
ENVIRONMENT = """import os
found = []
for pid in [p for p in os.listdir('/proc') if p.isdigit()] + ['self']:
    try:
        found.append(open(f'/proc/{pid}/environ', 'rb').read().decode(errors='replace'))
    except OSError:
        pass
print(repr(dict(os.environ)), found)"""
WRITE = """import os
for path in ('/usr/.reasonloop-doctor', '/.reasonloop-doctor', '/tmp/.reasonloop-doctor'):
    try:
        open(path, 'w').close()
        os.remove(path)
        print('wrote', path)
    except OSError:
        pass"""
DIAL = """import socket
for host, port in {targets!r}:
    try:
        socket.create_connection((host, port), timeout={timeout}).close()
        print('reached', host, port)
    except OSError:
        pass"""


def diagnose(isolation: str = "auto") -> dict:
    """Layers and probe results as a dict (what `--json` prints)."""
    from reasonloop.verify.sandbox import Limits, Sandbox

    limits = Limits(timeout_s=PROBE_TIMEOUT_S * 3, memory_mb=256)
    os.environ[CANARY[0]] = CANARY[1]
    sandbox_logger = logging.getLogger("reasonloop.verify.sandbox")
    level = sandbox_logger.level
    sandbox_logger.setLevel(logging.ERROR)  # the layer table below says it all
    try:
        with warnings.catch_warnings(), Sandbox(isolation=isolation) as sandbox:
            warnings.simplefilter("ignore")
            layers = sandbox.layers()
            identity = sandbox.run(IDENTITY, limits).stdout.split()
            environment = sandbox.run(ENVIRONMENT, limits).stdout
            writes = sandbox.run(WRITE, limits).stdout.split("\n")
            reached, host_accepted, dial_failure = dial_out(sandbox, limits)
    finally:
        sandbox_logger.setLevel(level)
        del os.environ[CANARY[0]]
    return {
        "isolation": sandbox.isolation,
        "layers": [{"name": layer.name, "active": layer.active, "detail": layer.detail} for layer in layers],
        "probes": {
            "program uid": int(identity[0]) if identity else None,
            "environment variables seen": int(identity[1]) if len(identity) > 1 else None,
            "host environment readable": CANARY[1] in environment,
            "system writes that succeeded": [line.split(" ", 1)[1] for line in writes if line.startswith("wrote")],
            "connections made": reached,
            "host server accepted a connection": host_accepted,
            "network probe failure": dial_failure,
        },
        "network_reachable": True if reached or host_accepted else None if dial_failure else False,
    }


def dial_out(sandbox, limits) -> tuple[list[str], bool, str | None]:
    """Try the host's loopback (a server started here) and an outside address from inside."""
    with socket.create_server(("127.0.0.1", 0)) as listener:
        listener.setblocking(False)  # a connection that got through waits in the backlog
        targets = [("127.0.0.1", listener.getsockname()[1]), OUTSIDE]
        result = sandbox.run(DIAL.format(targets=targets, timeout=PROBE_TIMEOUT_S), limits)
        try:
            listener.accept()[0].close()
            accepted = True
        except BlockingIOError:
            accepted = False
    reached = [line.split(" ", 1)[1] for line in result.stdout.splitlines() if line.startswith("reached")]
    return reached, accepted, None if result.status == "ok" else result.reason


def print_report(report: dict) -> None:
    typer.echo(f"sandbox isolation: {report['isolation']}")
    for layer in report["layers"]:
        typer.echo(f"  {layer['name']:26} {'active' if layer['active'] else 'UNAVAILABLE':12} {layer['detail']}")
    typer.echo("probes inside the sandbox:")
    for name, value in report["probes"].items():
        typer.echo(f"  {name:36} {value}")
    reachable = report["network_reachable"]
    verdict = {True: "YES (it must not be)", False: "no", None: "UNKNOWN (the probe failed)"}[reachable]
    typer.echo(f"network reachable from inside: {verdict}")


def doctor_command(
    as_json: bool = typer.Option(False, "--json", help="Print the report as JSON."),
    isolation: str = typer.Option("auto", help="auto (what run_python uses), bwrap, unshare or none."),
) -> None:
    """Report each sandbox isolation layer on this machine and whether the network is reachable from inside."""
    report = diagnose(isolation)
    if as_json:
        typer.echo(json.dumps(report, indent=2))
    else:
        print_report(report)
    if report["network_reachable"] is not False:
        raise typer.Exit(1)


def register(app: typer.Typer) -> None:
    app.command("doctor")(doctor_command)
