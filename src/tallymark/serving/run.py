"""The endpoint process: load one version, bind, answer, serve until deleted or told to stop.

``python -m tallymark.serving --workspace WS --endpoint NAME [--host H] [--port P]`` serves the
endpoint row ``NAME`` (created by ``Model.deploy`` / ``tallymark deploy``), with the store named by
the usual client settings (``TALLYMARK_URL`` + ``TALLYMARK_API_KEY``, or ``TALLYMARK_HOME``).

Two ways to start, one result:

- by itself: read the row (a Deleted one: exit), fetch and verify the model
  (:func:`tallymark.serving.model.prepare`), load it, bind the port (0: the kernel picks one),
  report ``InService`` (url, host, port, pid, machine), say so on ``--ready-fd``;
- ``--launch FILE`` (what ``Model.deploy`` does): the deploying process, whose store is open
  already, fetched and verified the file and wrote what it found; this process checks the file's
  sha256 again, loads it, binds, and answers at once — its own store connection (for the row
  checks below and, without ``--starter-reports``, the InService report) opens afterwards, in the
  background, so the ~0.3 s that costs is not on the way to the first answer.

Any failure before serving is said on the ready pipe and (unless the starter reports) reported as
``Failed`` with the reason; the process exits 2 — it never serves half loaded.

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
    p.add_argument(
        "--launch",
        type=Path,
        default=None,
        help="JSON from the starter: the model already fetched (model.prepare), host, port; "
        "the process then answers before it opens the store",
    )
    p.add_argument("--starter-reports", action="store_true", help="the starter reports InService/Failed")
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


class _Store:
    """The endpoint's own connection to the store, opened on first use (in launch mode only after
    the endpoint answers: opening the embedded store costs ~0.3 s of imports)."""

    def __init__(self, ws: str, name: str) -> None:
        self.ws, self.name = ws, name
        self._t: Any = None
        self.client: Any = None

    @property
    def t(self) -> Any:
        if self._t is None:
            from tallymark.sdk.transport import default_transport
            from tallymark.settings import ClientSettings

            self.client = self.client or ClientSettings.from_env()
            self._t = default_transport(settings=self.client)
        return self._t

    def report(self, **body: Any) -> dict[str, Any]:
        out: dict[str, Any] = self.t.call("endpoint_status", workspace=self.ws, name=self.name, body=body)
        return out

    def report_failure(self, reason: str) -> None:
        from tallymark.sdk.transport import TallymarkError, Unavailable

        try:
            self.report(status="Failed", failure_reason=reason, pid=os.getpid())
        except (TallymarkError, Unavailable) as exc:
            log.error("could not report the failure: %s", getattr(exc, "message", exc))

    def close(self) -> None:
        if self._t is not None:
            self._t.close()


def main(argv: list[str] | None = None) -> int:
    from tallymark.serving import imports

    imports.block()  # before anything imports xgboost (see the module)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    a = _args(argv)
    ready = _Ready(a.ready_fd)
    store = _Store(a.workspace, a.endpoint)
    try:
        return _main(a, ready, store)
    finally:
        store.close()


def _main(a: argparse.Namespace, ready: _Ready, store: _Store) -> int:
    from tallymark.serving import model as model_mod
    from tallymark.settings import ClientSettings

    name = a.endpoint
    store.client = ClientSettings.from_env()
    directory = a.dir or store.client.home_path / "endpoints" / name
    reports = not a.starter_reports

    def fail(reason: str) -> int:
        log.error("endpoint %s failed: %s", name, reason)
        ready.say(error=reason)
        if reports:
            store.report_failure(reason)
        return 2

    if a.launch is not None:
        try:
            spec = json.loads(a.launch.read_text())
            prep, host, port = (
                spec["model"],
                a.host or spec["host"],
                a.port if a.port is not None else spec["port"],
            )
        except (OSError, ValueError, KeyError, TypeError) as exc:
            return fail(f"unreadable launch file {a.launch}: {exc}")
    else:
        from tallymark.sdk.transport import TallymarkError, Unavailable

        try:
            ep = store.t.call("get_endpoint", workspace=a.workspace, name=name)
        except (TallymarkError, Unavailable) as exc:
            ready.say(error=f"endpoint {name!r}: {getattr(exc, 'message', exc)}")
            return 2
        if ep["status"] == "Deleted":
            ready.say(error=f"endpoint {name!r} is deleted")
            return 2
        m = ep["model"]
        host = a.host or ep.get("host") or "127.0.0.1"
        port = a.port if a.port is not None else int(ep.get("port") or 0)
        try:
            prep = model_mod.prepare(
                store.t, m["workspace"], m["name"], m["version"], directory / "model", m.get("trustedBy")
            )
        except model_mod.LoadError as exc:
            return fail(str(exc))
    try:
        loaded = model_mod.from_prepared(prep)
        sock = _bind(host, int(port or 0))
    except (model_mod.LoadError, OSError) as exc:
        return fail(str(exc))
    port = sock.getsockname()[1]
    url = f"http://{_public_host(host)}:{port}"
    predlog = _predlog(name, a.workspace, directory, store.client, loaded.schema.names, loaded.output_name)
    from tallymark import __version__
    from tallymark.serving.app import MAX_BODY, EndpointApp, plain_error

    app = EndpointApp(loaded, name, predlog, __version__)
    where = {"url": url, "host": host, "port": port, "pid": os.getpid(), "machine": socket.gethostname()}
    return asyncio.run(_serve(app, plain_error, sock, MAX_BODY, ready, where, store, a, predlog, reports))


async def _serve(
    app: Any,
    error: Any,
    sock: socket.socket,
    max_body: int,
    ready: _Ready,
    where: dict[str, Any],
    store: _Store,
    a: argparse.Namespace,
    predlog: Any,
    reports: bool,
) -> int:
    from tallymark.sdk.transport import TallymarkError, Unavailable
    from tallymark.serving import http

    loop = asyncio.get_running_loop()
    stop = asyncio.Event()
    server = await http.serve(app, error, where["host"], where["port"], max_body, sock=sock)
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    if reports and a.launch is None:  # the store is open already: report before saying ready
        try:
            store.report(status="InService", **where)
        except (TallymarkError, Unavailable) as exc:
            ready.say(error=f"could not report InService: {getattr(exc, 'message', exc)}")
            server.close()
            return 2
        reports = False
    ready.say(**where)
    log.info("endpoint %s serving %s:%s at %s", a.endpoint, app.model.name, app.model.version, where["url"])
    done = threading.Event()
    watcher = threading.Thread(
        target=_watch, args=(store, where, reports, a.poll, done, loop, stop), daemon=True
    )
    watcher.start()
    try:
        await stop.wait()
    finally:
        done.set()
        server.close()
        if predlog is not None:
            try:
                predlog.close(timeout=5.0)
            except Exception as exc:  # the log's own failure must not turn a clean stop into a crash
                log.error("prediction log close failed: %r", exc)
    log.info("endpoint %s stopped", a.endpoint)
    return 0


def _watch(
    store: _Store,
    where: dict[str, Any],
    report: bool,
    every: float,
    done: threading.Event,
    loop: asyncio.AbstractEventLoop,
    stop: asyncio.Event,
) -> None:
    """Report InService (when still to be done), then re-read the row every ``every`` seconds; a
    row still Creating (a starter that stopped waiting before it reported) is reported here."""
    from tallymark.sdk.transport import TallymarkError, Unavailable

    me = os.getpid()
    while report and not done.is_set():
        try:
            store.report(status="InService", **where)
            report = False
        except TallymarkError as exc:
            log.info("endpoint %s stops: cannot report InService: %s", store.name, exc.message)
            loop.call_soon_threadsafe(stop.set)
            return
        except (Unavailable, OSError):
            done.wait(every)
    while not done.wait(every):
        try:
            row = store.t.call("get_endpoint", workspace=store.ws, name=store.name)
        except TallymarkError as exc:
            if exc.status != 404:
                continue
            why = "its row is gone"
        except (Unavailable, OSError):
            continue  # the store is down: keep serving, check again later
        else:
            if row["status"] == "Creating" and row.get("pid") is None:
                try:
                    store.report(status="InService", **where)
                except (TallymarkError, Unavailable):
                    pass
                continue
            if row["status"] == "Deleted":
                why = "it was deleted"
            elif row.get("pid") not in (None, me) and row["status"] != "Failed":
                why = f"process {row.get('pid')} took it over"
            else:
                continue
        log.info("endpoint %s stops: %s", store.name, why)
        loop.call_soon_threadsafe(stop.set)
        return


def _predlog(name: str, ws: str, directory: Path, client: Any, columns: list[str], output: str) -> Any:
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
    return PredictionLog(name, ws, directory / "spool", settings, columns, outputs=[output])
