"""Only the owner's processes may talk to a local store: 127.0.0.1 is reachable by every user of the machine and,
unless it was given users, the server authenticates no one, so each new connection's peer is looked up and hung
up on unless it runs as the server's own user (with users, both checks apply).

Linux reports the owner of each TCP socket in ``/proc/net/tcp`` (and ``tcp6``); the client's end of a loopback
connection is the row whose local address is our peer and whose remote address is us. Where there is no
``/proc`` (macOS) the check cannot be made and every local connection is admitted, as it said in the README.
"""

from __future__ import annotations

import ipaddress
import os
import socket
import struct
from pathlib import Path

TABLES = (Path("/proc/net/tcp"), Path("/proc/net/tcp6"))


def _proc_address(host: str, port: int) -> str:
    """An address as ``/proc/net/tcp*`` prints it: the IP in host byte order (32-bit words), then the port."""
    packed = ipaddress.ip_address(host).packed
    words = struct.unpack(f"<{len(packed) // 4}I", packed)
    return "".join(f"{w:08X}" for w in words) + f":{port:04X}"


def peer_uid(sock: socket.socket) -> int | None:
    """The uid owning the other end of a loopback TCP connection, or None when it cannot be told."""
    try:
        peer, ours = sock.getpeername(), sock.getsockname()
    except OSError:
        return None
    local, remote = _proc_address(peer[0], peer[1]), _proc_address(ours[0], ours[1])
    for table in TABLES:
        try:
            lines = table.read_text().splitlines()[1:]
        except OSError:
            continue
        for line in lines:
            fields = line.split()
            if len(fields) > 7 and fields[1] == local and fields[2] == remote:
                return int(fields[7])
    return None


def same_user(sock: socket.socket) -> bool:
    """Admit a connection from this user's processes (or any, where the owner cannot be looked up)."""
    if not any(t.exists() for t in TABLES):
        return True
    return peer_uid(sock) == os.getuid()
