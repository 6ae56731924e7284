"""The wire-protocol side: MockupDB's message parsing, with a server loop fit for real drivers.

MockupDB is built for scripted tests (a queue of requests that the test answers
one by one). We keep its protocol code (``OpMsg``/``Command`` unpacking, reply
encoding, socket binding) and replace the pieces that break real driver use:

* its receive loop concatenates ``bytes`` chunk by chunk, which is quadratic: a
  16 MB insert took seconds. We read each message into one preallocated buffer;
* any exception in a handler killed the connection thread and the socket with
  it, which drivers see as a network error; we always reply with a command error;
* OP_MSG requests flagged ``moreToCome`` (w=0 writes) must get no reply at all;
* ``failCommand``'s ``closeConnection`` hangs up without a reply (the handler raises ``CloseConnection``);
* ``stop()`` must not leave threads or sockets behind (the accept loop polls with
  a short timeout and every connection socket is shut down and joined).
"""

from __future__ import annotations

import contextlib
import itertools
import select
import socket
import struct
import threading
from collections.abc import Callable
from typing import Any

from mockupdb import OPCODES, MockupDB, OpMsg, OpQuery, bind_tcp_socket

from leaf_mongo.testing.errors import INTERNAL_ERROR, LEGACY_OP_QUERY, CloseConnection, CommandError

_MORE_TO_COME = 1 << 1
_HEADER = struct.Struct("<iiii")
MAX_MESSAGE = 48_000_000 + 16 * 1024

Handler = Callable[[str, dict[str, Any], int, str], dict[str, Any]]
Admit = Callable[[socket.socket], bool]


def recv_exact(sock: socket.socket, n: int) -> bytes:
    """Read exactly ``n`` bytes in linear time (MockupDB's version is quadratic)."""
    buf = bytearray(n)
    view = memoryview(buf)
    pos = 0
    while pos < n:
        got = sock.recv_into(view[pos:], n - pos)
        if got == 0:
            raise ConnectionResetError("client closed the connection")
        pos += got
    return bytes(buf)


class WireServer(MockupDB):  # type: ignore[misc]
    """A MockupDB that dispatches every command to ``handler(db, command, connection_id, local_address)``."""

    def __init__(self, handler: Handler, host: str = "127.0.0.1", port: int = 0, admit: Admit | None = None) -> None:
        super().__init__(port=port, request_timeout=int(1e6))
        self._admit = admit  # a new connection is hung up at once unless admit(socket) is true
        self._address = (host, port)
        self._handler = handler
        self._connection_ids = itertools.count(1)
        self._threads: set[threading.Thread] = set()
        self._socks: set[socket.socket] = set()
        self._state_lock = threading.Lock()
        self._stopped: bool = False

    def run(self) -> int:
        """Bind and start accepting; returns the bound port."""
        self._listening_sock, self._address = bind_tcp_socket(self._address)
        self._accept_thread = threading.Thread(
            target=self._accept_loop, name=f"leaf-mongo-emulator-accept-{self.port}", daemon=True
        )
        self._accept_thread.start()
        return int(self.port)

    def stop(self) -> None:
        """Stop accepting, hang up every client, and join all threads."""
        if self._stopped:
            return
        self._stopped = True
        if self._accept_thread is not None:
            self._accept_thread.join(5)
        if self._listening_sock is not None:
            self._listening_sock.close()
        with self._state_lock:
            socks = list(self._socks)
            threads = list(self._threads)
        for sock in socks:
            with contextlib.suppress(OSError):
                sock.shutdown(socket.SHUT_RDWR)
        for thread in threads:
            thread.join(5)

    def _accept_loop(self) -> None:
        listener = self._listening_sock
        while not self._stopped:
            try:
                ready, _, _ = select.select([listener], [], [], 0.05)
                if not ready:
                    continue
                client, addr = listener.accept()
            except (OSError, ValueError):
                if self._stopped:
                    break
                continue
            if self._admit is not None and not self._admit(client):
                client.close()
                continue
            client.setblocking(True)
            client.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            thread = threading.Thread(
                target=self._serve, args=(client,), name=f"leaf-mongo-emulator-conn-{addr[1]}", daemon=True
            )
            with self._state_lock:
                if self._stopped:
                    client.close()
                    break
                self._socks.add(client)
                self._threads.add(thread)
            thread.start()

    def _serve(self, client: socket.socket) -> None:
        conn_id = next(self._connection_ids)
        local = _host_port(client)
        try:
            while not self._stopped:
                try:
                    header = recv_exact(client, 16)
                    length, request_id, _, opcode = _HEADER.unpack(header)
                    if not 16 <= length <= MAX_MESSAGE:
                        break
                    body = recv_exact(client, length - 16)
                except OSError:
                    break
                try:
                    self._dispatch(client, opcode, body, request_id, conn_id, local)
                except OSError:
                    break
        finally:
            with self._state_lock:
                self._socks.discard(client)
                self._threads.discard(threading.current_thread())
            with contextlib.suppress(OSError):
                client.close()

    def _dispatch(
        self, client: socket.socket, opcode: int, body: bytes, request_id: int, conn_id: int, local: str
    ) -> None:
        cls = OPCODES.get(opcode)
        if cls not in (OpMsg, OpQuery):
            raise ConnectionAbortedError(f"unsupported opcode {opcode}")  # legacy opcodes: hang up
        try:
            request = cls.unpack(body, client, self, request_id)
        except Exception as exc:  # noqa: BLE001 - malformed message: hang up like mongod
            raise ConnectionAbortedError(str(exc)) from exc
        if isinstance(request, OpMsg):
            db = request.doc.get("$db", "admin")
            no_reply = bool(request.flags & _MORE_TO_COME)
        elif getattr(request, "is_command", False):  # OP_QUERY on <db>.$cmd: initial handshake
            db, no_reply = request.namespace, False
        else:
            request.replies({"$err": "legacy OP_QUERY is not supported", "code": LEGACY_OP_QUERY})
            return
        try:
            reply = self._handler(db, dict(request.doc), conn_id, local)
        except CloseConnection as exc:  # failCommand's closeConnection: hang up, no reply
            raise ConnectionAbortedError(str(exc)) from exc
        except Exception as exc:  # noqa: BLE001 - never let a bug drop the connection
            reply = CommandError(f"{type(exc).__name__}: {exc}", INTERNAL_ERROR).to_reply()
        if no_reply:
            return
        request.replies(reply)


def _host_port(sock: socket.socket) -> str:
    """``host:port`` of our end of a connection: the address this client can reach us at."""
    addr = sock.getsockname()
    host, port = addr[0], addr[1]
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"
