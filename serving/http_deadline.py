"""`urllib.request.urlopen` with a deadline for the whole exchange, not for each socket read.

urllib's `timeout` bounds each blocking socket operation, so a server that sends its reply a
byte at a time, each well within the timeout, keeps a caller waiting as long as it likes.
Here every connect, send and read waits at most for the time left until one deadline (the
socket timeout shrinks as the call goes on) and fails with `TimeoutError` once it has passed.
The rest is urllib's own machinery: proxies from the environment, HTTPS, redirects, errors.
"""

from __future__ import annotations

import functools
import http.client
import io
import socket
import time
import urllib.request
from typing import Any

__all__ = ["urlopen_with_deadline"]


def urlopen_with_deadline(request: urllib.request.Request, timeout: float) -> Any:
    """Opens `request` like `urllib.request.urlopen`; connecting, sending and reading the
    response (its body included, through the returned response) must all end within
    `timeout` seconds of this call, or raise `TimeoutError` (as itself, or as the reason of a
    `urllib.error.URLError` while connecting or sending)."""
    deadline = _Deadline(timeout)
    opener = urllib.request.build_opener(_HTTPHandler(deadline), _HTTPSHandler(deadline))
    return opener.open(request, timeout=timeout)


class _Deadline:
    """The end of one call, on the monotonic clock."""

    def __init__(self, seconds: float) -> None:
        self._end = time.monotonic() + seconds

    def left(self) -> float:
        """The seconds left; TimeoutError when none are."""
        left = self._end - time.monotonic()
        if left <= 0:
            raise TimeoutError("deadline exceeded")
        return left


class _DeadlineSocket:
    """A connected socket whose every send and read waits at most for the time left, so a
    server that trickles its reply byte by byte cannot stretch the call (a plain socket
    timeout bounds each read, not the call)."""

    def __init__(self, sock: socket.socket, deadline: _Deadline) -> None:
        self._sock = sock
        self._deadline = deadline

    def sendall(self, data: bytes) -> None:
        self._sock.settimeout(self._deadline.left())
        self._sock.sendall(data)

    def makefile(self, mode: str = "rb", *args: Any, **kwargs: Any) -> io.BufferedReader:
        """The reply's stream: http.client reads the status, headers and body from it."""
        return io.BufferedReader(_DeadlineReader(self._sock, self._deadline))

    def __getattr__(self, name: str) -> Any:
        return getattr(self._sock, name)


class _DeadlineReader(io.RawIOBase):
    def __init__(self, sock: socket.socket, deadline: _Deadline) -> None:
        super().__init__()
        self._sock = sock
        self._raw = sock.makefile("rb", buffering=0)  # keeps the socket open until closed
        self._deadline = deadline

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: Any) -> int:
        self._sock.settimeout(self._deadline.left())
        return self._raw.readinto(buffer)

    def fileno(self) -> int:
        return self._raw.fileno()

    def close(self) -> None:
        self._raw.close()
        super().close()


class _DeadlineConnectionMixin:
    """An http.client connection whose connect, TLS handshake, sends and reads all end at
    the deadline."""

    def __init__(self, *args: Any, deadline: _Deadline, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._deadline = deadline
        self._create_connection = self._open_socket

    def _open_socket(self, address: Any, timeout: Any, source_address: Any = None) -> Any:
        sock = socket.create_connection(address, self._deadline.left(), source_address)
        sock.settimeout(self._deadline.left())  # what a TLS handshake may take
        return sock

    def connect(self) -> None:
        super().connect()
        self.sock = _DeadlineSocket(self.sock, self._deadline)


class _HTTPConnection(_DeadlineConnectionMixin, http.client.HTTPConnection):
    pass


class _HTTPSConnection(_DeadlineConnectionMixin, http.client.HTTPSConnection):
    pass


class _HTTPHandler(urllib.request.HTTPHandler):
    def __init__(self, deadline: _Deadline) -> None:
        super().__init__()
        self._deadline = deadline

    def http_open(self, req: urllib.request.Request) -> Any:
        connection = functools.partial(_HTTPConnection, deadline=self._deadline)
        return self.do_open(connection, req)


class _HTTPSHandler(urllib.request.HTTPSHandler):
    def __init__(self, deadline: _Deadline) -> None:
        super().__init__()
        self._deadline = deadline

    def https_open(self, req: urllib.request.Request) -> Any:
        connection = functools.partial(_HTTPSConnection, deadline=self._deadline)
        return self.do_open(connection, req, context=self._context)
