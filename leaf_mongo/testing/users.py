"""The emulator's users: read once from a JSON file, then kept only as SCRAM-SHA-256 credentials.

mongod keeps, for each user in ``admin.system.users``, a salt, an iteration count and the stored and server keys
derived from the password (``credentials.SCRAM-SHA-256``); the password itself is never stored. The emulator does
the same at load time: the file's passwords are turned into credentials (salt of 28 bytes, 15,000 iterations, as
mongod's ``scramSHA256IterationCount`` default; the password SASLprep'ed first, as RFC 7677 and mongod require) and
only those are kept in memory. The SCRAM math is ``scramp``'s (a maintained implementation of RFC 5802/7677).

File format (a JSON list; ``db`` defaults to ``admin``; ``roles``, if given, must be ``["root"]``, the only role the
emulator has: an authenticated user may run every command)::

    [{"user": "alice", "password": "s3cret", "db": "admin"}]

The file must be owner-only (no group/other permission bits), as mongod requires of its key file.
"""

from __future__ import annotations

import json
import os
import secrets
import stat
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from scramp import ScramMechanism

ITERATIONS = 15_000  # mongod's scramSHA256IterationCount default
SALT_BYTES = 28  # mongod: the SHA-256 digest length minus 4 (scram::Presecrets::saltLength)
MECHANISM = "SCRAM-SHA-256"
ROOT = "root"
_FIELDS = frozenset({"user", "password", "db", "roles"})

UserSource = str | os.PathLike[str] | Iterable[Mapping[str, Any]]


@dataclass(frozen=True)
class ScramCredential:
    """What mongod's ``credentials.SCRAM-SHA-256`` holds: never the password."""

    salt: bytes
    iterations: int
    stored_key: bytes
    server_key: bytes


class Users:
    """Users by ``(db, user)``, each with its SCRAM-SHA-256 credential."""

    def __init__(self, entries: Iterable[Mapping[str, Any]]) -> None:
        mechanism = ScramMechanism(MECHANISM)
        self._credentials: dict[tuple[str, str], ScramCredential] = {}
        for n, entry in enumerate(entries):
            db, user, password = _parse_entry(entry, n)
            if (db, user) in self._credentials:
                raise ValueError(f"users: user {user!r} on database {db!r} is defined twice")
            salt, stored_key, server_key, iterations = mechanism.make_auth_info(
                password, iteration_count=ITERATIONS, salt=secrets.token_bytes(SALT_BYTES)
            )
            self._credentials[(db, user)] = ScramCredential(salt, iterations, stored_key, server_key)

    @classmethod
    def load(cls, source: UserSource) -> Users:
        """From a JSON file (a path) or from entries given directly (a list of mappings)."""
        if isinstance(source, (str, os.PathLike)):
            return cls(read_users_file(source))
        if isinstance(source, Mapping):
            raise ValueError('users: give a list of {"user", "password", "db"} objects, not one object')
        return cls(source)

    def credential(self, db: str, user: str) -> ScramCredential | None:
        return self._credentials.get((db, user))

    def __len__(self) -> int:
        return len(self._credentials)


def read_users_file(path: str | os.PathLike[str]) -> list[Mapping[str, Any]]:
    """The file's entries; refused when it is not a regular owner-only file or not a JSON list of objects."""
    p = Path(path)
    st = p.stat()
    if not stat.S_ISREG(st.st_mode):
        raise ValueError(f"users file {p} is not a regular file")
    if os.name == "posix" and st.st_mode & 0o077:
        raise ValueError(f"permissions on users file {p} are too open: it must not be readable by group or others")
    try:
        data = json.loads(p.read_text(encoding="utf-8"))
    except ValueError as exc:
        raise ValueError(f"users file {p} is not valid JSON: {exc}") from None
    if not isinstance(data, list) or not all(isinstance(e, dict) for e in data):
        raise ValueError(f'users file {p} must hold a JSON list of {{"user", "password", "db"}} objects')
    return data


def _parse_entry(entry: Mapping[str, Any], n: int) -> tuple[str, str, str]:
    if not isinstance(entry, Mapping):
        raise ValueError(f'users: entry {n} is not a {{"user", "password", "db"}} object')
    unknown = sorted(set(entry) - _FIELDS)
    if unknown:
        raise ValueError(f"users: entry {n} has unknown field(s) {unknown}; allowed: user, password, db, roles")
    user, password, db = entry.get("user"), entry.get("password"), entry.get("db", "admin")
    if not isinstance(user, str) or not user:
        raise ValueError(f"users: entry {n} needs a non-empty string 'user'")
    if not isinstance(password, str) or not password:
        raise ValueError(f"users: entry {n} ({user!r}) needs a non-empty string 'password'")
    if not isinstance(db, str) or not db:
        raise ValueError(f"users: entry {n} ({user!r}) has an invalid 'db'")
    roles = entry.get("roles", [ROOT])
    if roles != [ROOT] and roles != [{"role": ROOT, "db": "admin"}]:
        raise ValueError(
            f"users: entry {n} ({user!r}): roles other than root are not supported; every authenticated user may "
            "run every command (emulator limitation)"
        )
    return db, user, password
