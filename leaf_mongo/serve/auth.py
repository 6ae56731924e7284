"""Bearer keys, as mongot sends them: the indexing key may embed documents and queries, the query key queries only.

mongot reads each key from a file (``indexingKeyFile``, ``queryKeyFile``; owner-only, trimmed) and sends it as
``Authorization: Bearer <key>``; the service reads the same files. Keys are compared in constant time
(``hmac.compare_digest``, every key, no early exit) and never logged or echoed: errors say which rule failed, not
what was sent. Without any key the service is open, which is only allowed on a loopback address.
"""

from __future__ import annotations

import hmac
import ipaddress
import os
import stat
from dataclasses import dataclass
from pathlib import Path

from leaf_mongo.errors import SettingsError
from leaf_mongo.models.layout import Task

SCOPES: dict[str, frozenset[Task]] = {
    "indexing": frozenset({"document", "query"}),
    "query": frozenset({"query"}),
}


class AuthError(Exception):
    """A request without the right key: ``status`` 401 (no or unknown key) or 403 (key lacks the scope)."""

    def __init__(self, message: str, status: int) -> None:
        super().__init__(message)
        self.message, self.status = message, status


def read_key_file(path: str | Path, setting: str) -> bytes:
    """A key file's trimmed content (as mongot's ``SecretsParser`` reads it); refused if empty or world-readable."""
    file = Path(path).expanduser()
    try:
        mode = file.stat().st_mode
        key = file.read_bytes().strip()
    except OSError as exc:
        raise SettingsError(setting, f"cannot read the key file {str(file)!r} ({exc.strerror})") from None
    if os.name == "posix" and mode & (stat.S_IRWXG | stat.S_IRWXO):
        raise SettingsError(
            setting, f"the key file {str(file)!r} is readable by others; make it owner-only (chmod 600)"
        )
    if not key:
        raise SettingsError(setting, f"the key file {str(file)!r} is empty")
    return key


@dataclass(frozen=True)
class Keys:
    """The configured keys and what each may embed."""

    indexing: bytes | None = None
    query: bytes | None = None

    @property
    def enabled(self) -> bool:
        return self.indexing is not None or self.query is not None

    def describe(self) -> str:
        """For the startup line: which keys exist, never their values."""
        names = [n for n, k in (("indexing", self.indexing), ("query", self.query)) if k is not None]
        return f"Bearer keys: {', '.join(names)}" if names else "no keys (open, loopback only)"

    def scopes(self, authorization: str | None) -> frozenset[Task]:
        """What the header's key may embed (everything when no key is configured); 401 without a valid key.

        Checked before the body is read, so an unauthenticated caller costs no parsing and learns nothing."""
        if not self.enabled:
            return SCOPES["indexing"]
        scheme, _, token = (authorization or "").partition(" ")
        if scheme.lower() != "bearer" or not token.strip():
            raise AuthError("missing API key: send 'Authorization: Bearer <key>'", 401)
        sent = token.strip().encode()
        granted: set[Task] = set()
        for name, key in (("indexing", self.indexing), ("query", self.query)):
            if key is not None and hmac.compare_digest(sent, key):  # every key compared: no early exit
                granted |= SCOPES[name]
        if not granted:
            raise AuthError("invalid API key", 401)
        return frozenset(granted)

    @staticmethod
    def require(scopes: frozenset[Task], side: Task) -> None:
        """403 when the key may not embed ``side`` (the query key asking for documents)."""
        if side not in scopes:
            raise AuthError(f"this key may not embed {side}s: use the indexing key", 403)


def is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


def require_key_off_loopback(host: str, keys: Keys) -> None:
    """Listening beyond this machine without a key would hand the models to anyone who can reach the port."""
    if not is_loopback(host) and not keys.enabled:
        raise SettingsError(
            "LEAF_MONGO_SERVE_HOST",
            f"refusing to listen on {host!r} without an API key; set --indexing-key-file (and --query-key-file), "
            "or listen on 127.0.0.1",
        )
