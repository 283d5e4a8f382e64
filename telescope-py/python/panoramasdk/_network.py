"""networkRoutingRules on a host without containers.

On the appliance a rule routes the device's ``hostPort`` to ``containerPort`` of a code
node's container. Here the app runs on this host and listens on ``containerPort`` itself;
for a rule whose host port differs, ``127.0.0.1:hostPort`` is forwarded to
``127.0.0.1:containerPort`` so that clients (and an app calling itself at the host port, as
the developer guide's debug server does) reach it as on the device. Only loopback is
served.
"""

from __future__ import annotations

import socket
import threading
from typing import List

from panoramasdk._graph import Route

_CONNECT_TIMEOUT = 5.0


class Forwards:
    """The forwarders started for a run, and what could not be started (as notes)."""

    def __init__(self):
        self.listeners: List[socket.socket] = []
        self.notes: List[str] = []

    def close(self) -> None:
        for s in self.listeners:
            try:
                s.close()
            except OSError:
                pass


def forward(routes: List[Route], host: str = "127.0.0.1") -> Forwards:
    out = Forwards()
    for r in routes:
        if r.host_port is None or r.host_port == r.container_port:
            continue
        try:
            ls = socket.create_server((host, r.host_port))
        except OSError as e:
            out.notes.append(f"networkRoutingRule: cannot forward {host}:{r.host_port} to port "
                             f"{r.container_port}: {e.strerror or e}")
            continue
        out.listeners.append(ls)
        threading.Thread(target=_accept, args=(ls, host, r.container_port),
                         name=f"panorama-forward-{r.host_port}", daemon=True).start()
    return out


def _accept(ls: socket.socket, host: str, port: int) -> None:
    while True:
        try:
            client, _ = ls.accept()
        except OSError:
            return  # closed
        threading.Thread(target=_connect, args=(client, host, port), daemon=True).start()


def _connect(client: socket.socket, host: str, port: int) -> None:
    try:
        upstream = socket.create_connection((host, port), timeout=_CONNECT_TIMEOUT)
        upstream.settimeout(None)
    except OSError:
        client.close()  # nothing listens on the container port (yet): as a refused route
        return
    threading.Thread(target=_pump, args=(upstream, client), daemon=True).start()
    _pump(client, upstream)


def _pump(src: socket.socket, dst: socket.socket) -> None:
    try:
        while True:
            data = src.recv(65536)
            if not data:
                break
            dst.sendall(data)
    except OSError:
        pass
    finally:
        try:
            dst.shutdown(socket.SHUT_WR)
        except OSError:
            pass
        try:
            src.shutdown(socket.SHUT_RD)
        except OSError:
            pass
