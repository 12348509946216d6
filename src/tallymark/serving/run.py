"""The endpoint process: load one version, bind, report, serve until deleted or told to stop.

``python -m tallymark.serving --workspace WS --endpoint NAME [--host H] [--port P]`` serves the
endpoint row ``NAME`` (created by ``Model.deploy`` / ``tallymark deploy``), with the store named by
the usual client settings (``TALLYMARK_URL`` + ``TALLYMARK_API_KEY``, or ``TALLYMARK_HOME``).

Start-up, in order: read the row (a Deleted one: exit), fetch and verify the model
(:mod:`tallymark.serving.model`), bind the port (0: the kernel picks one), report ``InService``
with url, host, port and pid, then tell the parent on ``--ready-fd`` (one JSON line). Any failure
before that is reported as ``Failed`` with the reason (and on the ready pipe), and the process
exits 2 — it never serves half loaded.

While serving, a thread re-reads the row every ``--poll`` seconds: a row that is Deleted, gone, or
taken over by another process (another pid) ends this one, so ``tallymark endpoints delete`` from
any machine stops it. SIGTERM/SIGINT stop it too; the prediction log is drained before exit.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import os
import signal
import socket
import sys
import threading
from pathlib import Path
from typing import Any

log = logging.getLogger("tallymark.serving")

__all__ = ["main"]


def _args(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(
        prog="python -m tallymark.serving", description="Serve one tallymark endpoint."
    )
    p.add_argument("--workspace", required=True)
    p.add_argument("--endpoint", required=True, help="the endpoint row's name")
    p.add_argument("--host", default=None, help="default: the row's host, else 127.0.0.1")
    p.add_argument("--port", type=int, default=None, help="default: the row's port, else 0 (a free one)")
    p.add_argument(
        "--dir", type=Path, default=None, help="model cache and spool (default HOME/endpoints/NAME)"
    )
    p.add_argument("--ready-fd", type=int, default=None, help="write one JSON line here once serving")
    p.add_argument("--poll", type=float, default=2.0, help="seconds between checks that the row still exists")
    return p.parse_args(argv)


class _Ready:
    def __init__(self, fd: int | None) -> None:
        self.fd = fd

    def say(self, **msg: Any) -> None:
        if self.fd is None:
            return
        try:
            os.write(self.fd, (json.dumps(msg) + "\n").encode())
            os.close(self.fd)
        except OSError:
            pass  # the parent stopped waiting; the row says the same
        self.fd = None


def _bind(host: str, port: int) -> socket.socket:
    try:
        family, kind, proto, _, addr = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)[0]
    except socket.gaierror as exc:
        raise OSError(f"cannot resolve host {host!r}: {exc.strerror}") from None
    sock = socket.socket(family, kind, proto)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind(addr)
    except OSError as exc:
        sock.close()
        if exc.errno == 98:  # EADDRINUSE
            raise OSError(f"port {port} on {host} is already in use") from None
        raise OSError(f"cannot listen on {host}:{port}: {exc.strerror}") from None
    sock.listen(1024)
    sock.setblocking(False)
    return sock


def _public_host(host: str) -> str:
    if host in ("0.0.0.0", "::", ""):
        return socket.gethostname()
    return f"[{host}]" if ":" in host else host


def main(argv: list[str] | None = None) -> int:
    from tallymark.serving import imports

    imports.block()  # before anything imports xgboost (see the module)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    a = _args(argv)
    ready = _Ready(a.ready_fd)
    from tallymark.sdk.transport import TallymarkError, Unavailable, default_transport
    from tallymark.settings import ClientSettings

    client = ClientSettings.from_env()
    t = default_transport(settings=client)
    ws, name = a.workspace, a.endpoint

    def report(**body: Any) -> dict[str, Any]:
        return t.call("endpoint_status", workspace=ws, name=name, body=body)  # type: ignore[no-any-return]

    def fail(reason: str) -> int:
        log.error("endpoint %s failed: %s", name, reason)
        try:
            report(status="Failed", failure_reason=reason, pid=os.getpid())
        except (TallymarkError, Unavailable) as exc:
            log.error("could not report the failure: %s", getattr(exc, "message", exc))
        ready.say(error=reason)
        return 2

    try:
        ep = t.call("get_endpoint", workspace=ws, name=name)
    except (TallymarkError, Unavailable) as exc:
        ready.say(error=f"endpoint {name!r}: {getattr(exc, 'message', exc)}")
        return 2
    if ep["status"] == "Deleted":
        ready.say(error=f"endpoint {name!r} is deleted")
        return 2
    m = ep["model"]
    directory = a.dir or client.home_path / "endpoints" / name
    host = a.host or ep.get("host") or "127.0.0.1"
    port = a.port if a.port is not None else int(ep.get("port") or 0)
    from tallymark.serving import model as model_mod

    try:
        loaded = model_mod.load(
            t, m["workspace"], m["name"], m["version"], directory / "model", m.get("trustedBy")
        )
        sock = _bind(host, port)
    except (model_mod.LoadError, OSError) as exc:
        return fail(str(exc))
    port = sock.getsockname()[1]
    url = f"http://{_public_host(host)}:{port}"
    predlog = _predlog(name, ws, directory, client, loaded.schema.names)
    from tallymark import __version__
    from tallymark.serving.app import MAX_BODY, EndpointApp, plain_error

    app = EndpointApp(loaded, name, predlog, __version__)
    try:
        return asyncio.run(
            _serve(app, plain_error, sock, MAX_BODY, report, ready, url, host, port, t, a, predlog)
        )
    finally:
        t.close()


async def _serve(
    app: Any,
    error: Any,
    sock: socket.socket,
    max_body: int,
    report: Any,
    ready: _Ready,
    url: str,
    host: str,
    port: int,
    t: Any,
    a: argparse.Namespace,
    predlog: Any,
) -> int:
    from tallymark.sdk.transport import TallymarkError, Unavailable
    from tallymark.serving import http

    loop = asyncio.get_running_loop()
    stop = asyncio.Event()
    server = await http.serve(app, error, host, port, max_body, sock=sock)
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    try:
        report(
            status="InService", url=url, host=host, port=port, pid=os.getpid(), machine=socket.gethostname()
        )
    except (TallymarkError, Unavailable) as exc:
        reason = f"could not report InService: {getattr(exc, 'message', exc)}"
        ready.say(error=reason)
        server.close()
        return 2
    ready.say(url=url, port=port, pid=os.getpid())
    log.info("endpoint %s serving %s:%s at %s", a.endpoint, app.model.name, app.model.version, url)
    done = threading.Event()
    watcher = threading.Thread(
        target=_watch, args=(t, a.workspace, a.endpoint, a.poll, done, loop, stop), daemon=True
    )
    watcher.start()
    try:
        await stop.wait()
    finally:
        done.set()
        server.close()
        await server.wait_closed() if sys.version_info >= (3, 12, 1) else None
        if predlog is not None:
            try:
                predlog.close(timeout=5.0)
            except Exception as exc:  # the log's own failure must not turn a clean stop into a crash
                log.error("prediction log close failed: %r", exc)
    log.info("endpoint %s stopped", a.endpoint)
    return 0


def _watch(
    t: Any,
    ws: str,
    name: str,
    every: float,
    done: threading.Event,
    loop: asyncio.AbstractEventLoop,
    stop: asyncio.Event,
) -> None:
    from tallymark.sdk.transport import TallymarkError, Unavailable

    me = os.getpid()
    while not done.wait(every):
        try:
            row = t.call("get_endpoint", workspace=ws, name=name)
        except TallymarkError as exc:
            if exc.status != 404:
                continue
            why = "its row is gone"
        except (Unavailable, OSError):
            continue  # the store is down: keep serving, check again later
        else:
            if row["status"] == "Deleted":
                why = "it was deleted"
            elif row.get("pid") not in (None, me) and row["status"] != "Failed":
                why = f"process {row.get('pid')} took it over"
            else:
                continue
        log.info("endpoint %s stops: %s", name, why)
        loop.call_soon_threadsafe(stop.set)
        return


def _predlog(name: str, ws: str, directory: Path, client: Any, columns: list[str]) -> Any:
    """The prediction log (tallymark.serving.predlog), when that module is installed."""
    try:
        from tallymark.serving.predlog import PredictionLog  # type: ignore[import-not-found,unused-ignore]
    except ImportError:
        return None
    settings = {
        "url": client.url,
        "api_key": client.api_key,
        "home": str(client.home_path),
        "user": client.user,
    }
    return PredictionLog(name, ws, directory / "spool", settings, columns)
