"""A loopback TCP proxy whose link can be cut and restored, or stalled: a real outage or a server that stops
answering, without touching the service."""

from __future__ import annotations

import contextlib
import socket
import threading


class TcpProxy:
    def __init__(self, upstream_port: int) -> None:
        self._upstream = ("127.0.0.1", upstream_port)
        self._listener = socket.create_server(("127.0.0.1", 0))
        self.port: int = self._listener.getsockname()[1]
        self._up = threading.Event()
        self._up.set()
        self._flowing = threading.Event()
        self._flowing.set()
        self._open: set[socket.socket] = set()
        self._lock = threading.Lock()
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self) -> None:
        while True:
            try:
                client, _ = self._listener.accept()
            except OSError:
                return  # closed
            if not self._up.is_set():
                client.close()
                continue
            try:
                server = socket.create_connection(self._upstream)
            except OSError:
                client.close()
                continue
            with self._lock:  # cut() may have run while we connected upstream
                if not self._up.is_set():
                    client.close()
                    server.close()
                    continue
                self._open.update((client, server))
            for source, target in ((client, server), (server, client)):
                threading.Thread(target=self._pump, args=(source, target), daemon=True).start()

    def _pump(self, source: socket.socket, target: socket.socket) -> None:
        try:
            while chunk := source.recv(65536):
                self._flowing.wait()
                target.sendall(chunk)
        except OSError:
            pass
        finally:
            for sock in (source, target):
                sock.close()

    def cut(self) -> None:
        """Drop every open connection and refuse new ones, as a crashed or unreachable server would."""
        self._up.clear()
        with self._lock:
            for sock in self._open:
                with contextlib.suppress(OSError):
                    sock.shutdown(socket.SHUT_RDWR)
                sock.close()
            self._open.clear()

    def restore(self) -> None:
        self._up.set()

    def stall(self) -> None:
        """Keep every connection open but forward nothing: a server that hangs on each request."""
        self._flowing.clear()

    def flow(self) -> None:
        self._flowing.set()

    def __enter__(self) -> TcpProxy:
        return self

    def __exit__(self, *exc: object) -> None:
        self.cut()
        self.flow()  # the pumps waiting to forward wake, find their sockets closed and end
        self._listener.close()
