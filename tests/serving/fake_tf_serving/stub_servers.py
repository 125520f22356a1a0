"""Servers with no model behind them, for a client's timeouts and its checks of a reply: one
that never answers, one that answers a byte at a time, one that gives every request the same
reply."""

from __future__ import annotations

import contextlib
import socket
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

__all__ = ["canned_rest_server", "silent_server", "trickling_server"]


@contextlib.contextmanager
def silent_server() -> Iterator[str]:
    """A "host:port" that accepts connections (the kernel's backlog) and never answers."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as listener:
        listener.bind(("127.0.0.1", 0))
        listener.listen(16)
        yield f"127.0.0.1:{listener.getsockname()[1]}"


@contextlib.contextmanager
def trickling_server(
    interval: float = 0.05, duration: float = 3.0, whole_reply: bool = False
) -> Iterator[str]:
    """An "http://host:port" that answers each request with a 200 header at once and then a
    JSON body one byte every `interval` seconds (`whole_reply`: the header too); after
    `duration` seconds it closes the connection, the reply unfinished. Each byte comes well
    within any per-read timeout."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as listener:
        listener.bind(("127.0.0.1", 0))
        listener.listen(16)
        listener.settimeout(0.05)
        stop = threading.Event()

        def trickle(connection: socket.socket) -> None:
            body = b'{"predictions": [' + b" " * 100_000 + b"]}"
            header = f"HTTP/1.0 200 OK\r\nContent-Length: {len(body)}\r\n\r\n".encode()
            with connection:
                connection.recv(1 << 16)  # the request (small): read, not parsed
                end = time.monotonic() + duration
                try:
                    if not whole_reply:
                        connection.sendall(header)
                    for byte in header + body if whole_reply else body:
                        if stop.is_set() or time.monotonic() > end:
                            return
                        connection.sendall(bytes([byte]))
                        time.sleep(interval)
                except OSError:  # the client gave up
                    return

        def serve() -> None:
            while not stop.is_set():
                try:
                    connection, _ = listener.accept()
                except TimeoutError:
                    continue
                except OSError:
                    return
                threading.Thread(target=trickle, args=(connection,), daemon=True).start()

        thread = threading.Thread(target=serve, daemon=True)
        thread.start()
        try:
            yield f"http://127.0.0.1:{listener.getsockname()[1]}"
        finally:
            stop.set()
            thread.join()


@contextlib.contextmanager
def canned_rest_server(body: bytes, status: int = 200) -> Iterator[str]:
    """An "http://host:port" that gives every GET and POST the same reply (a JSON `body`)."""

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def do_POST(self) -> None:
            self.rfile.read(int(self.headers.get("Content-Length") or 0))
            self.do_GET()

        def log_message(self, format: str, *args: Any) -> None:
            """Quiet."""

    httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    httpd.daemon_threads = True
    thread = threading.Thread(target=httpd.serve_forever, args=(0.05,), daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{httpd.server_address[1]}"
    finally:
        httpd.shutdown()
        httpd.server_close()
        thread.join()
