"""SCRAM-SHA-256 authentication as mongod does it: ``saslStart``/``saslContinue``, speculative authentication in
``hello``, ``saslSupportedMechs``, and the refusal of commands before authentication.

Sources: mongod's ``src/mongo/db/auth/sasl_commands.cpp`` (``conversationId`` is always 1, every failure of a step
reaches the client as ``AuthenticationFailed`` "Authentication failed.", a failed speculative ``saslStart`` is
dropped silently so the driver authenticates the ordinary way), ``authentication_session.cpp`` (``saslContinue``
without a session: ProtocolError "No SASL session state found"), ``sasl_mechanism_registry.cpp`` (an unknown
mechanism: BadValue; ``saslSupportedMechs`` names only the user's mechanisms, and is left out for an unknown
user), and ``service_entry_point_common.cpp`` ("Command <name> requires authentication", Unauthorized).

State is per connection (``_per_connection``, one thread per connection: wire.py), as mongod keeps it on the
``Client``: the user a connection authenticated as, and the conversation in progress.
"""

from __future__ import annotations

import base64
import threading
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from bson import Binary
from scramp import ScramException, ScramMechanism
from scramp.core import ScramServer

from leaf_mongo.testing.errors import (
    BAD_VALUE,
    MISSING_REQUIRED_FIELD,
    PROTOCOL_ERROR,
    TYPE_MISMATCH,
    UNAUTHORIZED,
    CommandError,
    authentication_failed,
    not_implemented,
)
from leaf_mongo.testing.failpoints import canonical_name
from leaf_mongo.testing.state import version_tuple
from leaf_mongo.testing.users import MECHANISM, Users

# Commands mongod runs before authentication (requiresAuth() false): the handshake, the SASL steps, ping,
# connectionStatus, and configureFailPoint (enabled only from the command line). buildInfo needs authentication
# from 8.1 (SERVER-90284: the buildInfoAuthMode parameter, default requiresAuth); an older server runs it before.
PRE_AUTH = frozenset({"hello", "ismaster", "ping", "saslstart", "saslcontinue", "connectionstatus",
                      "configurefailpoint", "authenticate"})  # fmt: skip
# User and role management: users come from the users file, so these are refused as a limitation (after the
# authentication check, as mongod checks it first).
USER_ADMIN = frozenset({"createuser", "updateuser", "dropuser", "dropallusersfromdatabase", "usersinfo",
                        "grantrolestouser", "revokerolesfromuser", "createrole", "updaterole", "droprole",
                        "dropallrolesfromdatabase", "rolesinfo", "grantprivilegestorole", "revokeprivilegesfromrole",
                        "grantrolestorole", "revokerolesfromrole", "invalidateusercache"})  # fmt: skip
BUILD_INFO_NEEDS_AUTH = (8, 1)
AUTHENTICATED_ONCE = 5626701  # authorization_session_impl.cpp: another user of another database
AUTHENTICATED_ON_ONE_DATABASE = 5626702  # another user of the same database
SCRAM_MECHANISMS = ("SCRAM-SHA-1", MECHANISM)
_MECHANISM = "saslStart.mechanism"
NO_USERS = (
    "Authentication failed. (the leaf-mongo emulator has no users configured, so no credentials can be checked: "
    "start it with users, e.g. `python -m leaf_mongo.testing --users FILE`, or connect without credentials)"
)


@dataclass
class _Conversation:
    """One SASL conversation in progress on a connection."""

    server: ScramServer
    db: str
    user: str
    skip_empty_exchange: bool
    as_base64: bool  # the client sent a base64 string payload: the reply payloads are strings too
    proof_checked: bool = False


class AuthCommands:
    """saslStart, saslContinue, connectionStatus; the ``hello`` fields; the pre-authentication gate."""

    users: Users | None
    server_version: str
    _per_connection: threading.local

    @property
    def _authenticated(self) -> tuple[str, str] | None:
        """``(user, db)`` this connection authenticated as, if any."""
        return getattr(self._per_connection, "user", None)

    def _refuse_unauthenticated(self, name: str, known: bool) -> dict[str, Any] | None:
        """mongod's reply to a command that needs authentication on a connection without it (None: may run)."""
        if not self.users or not known or name.lower() in PRE_AUTH or self._authenticated is not None:
            return None
        if name.lower() == "buildinfo" and version_tuple(self.server_version) < BUILD_INFO_NEEDS_AUTH:
            return None
        return CommandError(f"Command {canonical_name(name)} requires authentication", UNAUTHORIZED).to_reply()

    def _connection_status(self, db: str, cmd: dict[str, Any], conn: int) -> dict[str, Any]:
        who = self._authenticated
        users = [{"user": who[0], "db": who[1]}] if who else []
        roles = [{"role": "root", "db": "admin"}] if who else []
        return {"authInfo": {"authenticatedUsers": users, "authenticatedUserRoles": roles}}

    def _user_admin(self, db: str, cmd: dict[str, Any], conn: int) -> dict[str, Any]:
        raise not_implemented(
            f"{next(iter(cmd))}: users and roles come from the users file given at start (--users FILE, "
            "MongoEmulator(users=...)); user and role management commands are not supported (emulator limitation)"
        )

    def _authenticate_command(self, db: str, cmd: dict[str, Any], conn: int) -> dict[str, Any]:
        mechanism = cmd.get("mechanism")
        raise not_implemented(
            f"authenticate with {mechanism!r}: the emulator authenticates with SCRAM-SHA-256 (saslStart) only; "
            "it has no TLS, hence no MONGODB-X509 (emulator limitation)"
        )

    def _sasl_start(self, db: str, cmd: dict[str, Any], conn: int) -> dict[str, Any]:
        self._per_connection.sasl = None  # a new saslStart abandons the conversation in progress
        mechanism = cmd.get("mechanism")
        if mechanism is None:
            raise CommandError(f"BSON field '{_MECHANISM}' is missing but a required field", MISSING_REQUIRED_FIELD)
        if not isinstance(mechanism, str):
            raise CommandError(f"BSON field '{_MECHANISM}' is the wrong type, expected type 'string'", TYPE_MISMATCH)
        if mechanism not in SCRAM_MECHANISMS:
            raise CommandError(f"Unsupported mechanism '{mechanism}' on authentication database '{db}'", BAD_VALUE)
        payload, as_base64 = _payload(cmd, "saslStart")
        options = cmd.get("options") or {}
        skip = bool(options.get("skipEmptyExchange")) if isinstance(options, Mapping) else False
        if not self.users:
            raise authentication_failed(NO_USERS)
        if mechanism != MECHANISM:  # users hold SCRAM-SHA-256 credentials only (createUser mechanisms: [SHA-256])
            raise authentication_failed()
        users = self.users
        found: list[str] = []

        def lookup(user: Any) -> tuple[bytes, bytes, bytes, int]:
            cred = users.credential(db, str(user))
            if cred is None:
                raise ScramException("unknown user")
            found.append(str(user))
            return cred.salt, cred.stored_key, cred.server_key, cred.iterations

        server = ScramMechanism(MECHANISM).make_server(lookup)
        try:
            server.set_client_first(payload.decode("utf-8"))
            server_first = server.get_server_first()
        except (ScramException, UnicodeDecodeError, ValueError):
            raise authentication_failed() from None
        self._per_connection.sasl = _Conversation(server, db, found[0], skip, as_base64)
        return _reply(server_first.encode("utf-8"), as_base64, done=False)

    def _sasl_continue(self, db: str, cmd: dict[str, Any], conn: int) -> dict[str, Any]:
        conversation: _Conversation | None = getattr(self._per_connection, "sasl", None)
        if conversation is None:
            raise CommandError("No SASL session state found", PROTOCOL_ERROR)
        if cmd.get("conversationId") != 1:
            raise CommandError("sasl: Mismatched conversation id", PROTOCOL_ERROR)
        payload, _ = _payload(cmd, "saslContinue")
        if conversation.proof_checked:  # the empty third exchange of a client without skipEmptyExchange
            return self._authenticate(conversation, b"")
        self._per_connection.sasl = None
        try:
            conversation.server.set_client_final(payload.decode("utf-8"))
            server_final = conversation.server.get_server_final().encode("utf-8")
        except (ScramException, UnicodeDecodeError, ValueError):
            raise authentication_failed() from None
        if conversation.skip_empty_exchange:
            return self._authenticate(conversation, server_final)
        conversation.proof_checked = True
        self._per_connection.sasl = conversation
        return _reply(server_final, conversation.as_base64, done=False)

    def _authenticate(self, conversation: _Conversation, payload: bytes) -> dict[str, Any]:
        """Mark the connection authenticated; as mongod's ``addAndAuthorizeUser``, once per connection (the same
        user again is allowed), with its assertion codes and (verbatim) messages otherwise."""
        self._per_connection.sasl = None
        user = (conversation.user, conversation.db)
        before = self._authenticated
        if before is not None and before != user:
            name = f"{before[0]}@{before[1]}"
            if before[1] != user[1]:
                raise CommandError(
                    f"Each client connection may only be authenticated once. Previously authenticated as: {name}",
                    AUTHENTICATED_ONCE,
                )
            raise CommandError(
                f"Client has attempted to authenticate on multiple databases.Already authenticated as: {name}",
                AUTHENTICATED_ON_ONE_DATABASE,
            )
        self._per_connection.user = user
        return _reply(payload, conversation.as_base64, done=True)

    def _hello_auth(self, cmd: Mapping[str, Any], reply: dict[str, Any]) -> None:
        """``saslSupportedMechs`` and ``speculativeAuthenticate`` of a ``hello``, as mongod adds them."""
        asked = cmd.get("saslSupportedMechs")
        if isinstance(asked, str):
            db, dot, user = asked.partition(".")
            if not dot:
                raise CommandError("username must contain a '.' separated database.user pair", BAD_VALUE)
            if self.users and self.users.credential(db, user) is not None:
                reply["saslSupportedMechs"] = [MECHANISM]
        speculative = cmd.get("speculativeAuthenticate")
        if isinstance(speculative, Mapping) and next(iter(speculative), None) == "saslStart":
            if not isinstance(speculative.get("db"), str):
                return  # mongod: no db field, no speculative start
            try:
                started = self._sasl_start(speculative["db"], dict(speculative), 0)
            except CommandError:
                self._per_connection.sasl = None
                return  # "Treat failure like we never even got a speculative start."
            reply["speculativeAuthenticate"] = started


def _payload(cmd: Mapping[str, Any], command: str) -> tuple[bytes, bool]:
    """The SASL payload: BinData, or a base64 string (mongod's SaslPayload takes both)."""
    payload = cmd.get("payload")
    if payload is None:
        raise CommandError(f"BSON field '{command}.payload' is missing but a required field", MISSING_REQUIRED_FIELD)
    if isinstance(payload, str):
        try:
            return base64.b64decode(payload, validate=True), True
        except ValueError:
            raise CommandError("Invalid base64 in SASL payload", BAD_VALUE) from None
    if isinstance(payload, bytes):  # bson decodes BinData subtype 0 to bytes
        return bytes(payload), False
    raise CommandError(f"BSON field '{command}.payload' is the wrong type", TYPE_MISMATCH)


def _reply(payload: bytes, as_base64: bool, done: bool) -> dict[str, Any]:
    out: Any = base64.b64encode(payload).decode("ascii") if as_base64 else Binary(payload)
    return {"conversationId": 1, "done": done, "payload": out}
