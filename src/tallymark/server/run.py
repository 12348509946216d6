"""Running the server: a pre-bound socket with TCP_NODELAY, then uvicorn.

uvicorn with several workers leaves Nagle's algorithm on for accepted connections (uvicorn issue
#3149), which adds ~44 ms to every response on a reused keep-alive connection. Linux copies
TCP_NODELAY from the listening socket to the sockets it accepts, so we bind the socket ourselves,
set the option, and hand uvicorn the descriptor.
"""

from __future__ import annotations

import ipaddress
import socket
from typing import Any

from tallymark.settings import Settings


def is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def bind_socket(host: str, port: int) -> socket.socket:
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    sock.bind((host, port))
    sock.listen(2048)
    sock.set_inheritable(True)
    return sock


def app_from_env() -> Any:
    """App factory for uvicorn worker processes (they cannot receive Python objects)."""
    from tallymark.server.app import create_app

    return create_app(Settings.from_worker_env())


def serve(settings: Settings, host: str, port: int, workers: int = 1, log_level: str = "warning") -> None:
    import uvicorn

    sock = bind_socket(host, port)
    if workers > 1:
        settings.export_to_workers()
        config = uvicorn.Config(
            "tallymark.server.run:app_from_env",
            factory=True,
            workers=workers,
            log_level=log_level,
            access_log=False,
        )
        from uvicorn.supervisors import Multiprocess

        Multiprocess(config, sockets=[sock]).run()
    else:
        from tallymark.server.app import create_app

        config = uvicorn.Config(create_app(settings), log_level=log_level, access_log=False)
        uvicorn.Server(config).run(sockets=[sock])
