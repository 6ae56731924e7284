"""Server-shaped errors.

Every failure inside a command handler is turned into a command error reply
(``{ok: 0, errmsg, code, codeName}``) because a Python exception escaping the
connection thread would simply drop the socket, which drivers report as a
network error (and retry) instead of the real server's ``OperationFailure``.

Codes are named here once: the ones with a name in ``mongo/base/error_codes.yml``
by that name, and the server's assertion-location codes (``LocationNNNNN``) by
what they reject.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

# mongo/base/error_codes.yml (the subset the emulator sends)
INTERNAL_ERROR = 1
BAD_VALUE = 2
UNAUTHORIZED = 13
UNKNOWN_ERROR = 8
FAILED_TO_PARSE = 9
TYPE_MISMATCH = 14
PROTOCOL_ERROR = 17
AUTHENTICATION_FAILED = 18
ILLEGAL_OPERATION = 20
NAMESPACE_NOT_FOUND = 26
INDEX_NOT_FOUND = 27
CONFLICTING_UPDATE_OPERATORS = 40
CURSOR_NOT_FOUND = 43
NAMESPACE_EXISTS = 48
COMMAND_NOT_FOUND = 59
CANNOT_CREATE_INDEX = 67
INDEX_ALREADY_EXISTS = 68
INVALID_OPTIONS = 72
INVALID_NAMESPACE = 73
INDEX_OPTIONS_CONFLICT = 85
INDEX_KEY_SPECS_CONFLICT = 86
COMMAND_NOT_SUPPORTED = 115
COMMAND_FAILED = 125
COMMAND_NOT_SUPPORTED_ON_VIEW = 166
NOT_IMPLEMENTED = 238
DUPLICATE_KEY = 11000
NOT_A_RETRYABLE_WRITE_COMMAND = 50768

# Assertion locations (codeName ``Location<code>``), named by what they reject.
LOOKUP_NOT_A_DOCUMENT = 40319  # "the $lookup stage specification must be an object"
STAGE_NOT_ONE_FIELD = 40323  # "A pipeline stage specification object must contain exactly one field."
UNRECOGNIZED_STAGE = 40324  # "Unrecognized pipeline stage name"
UNION_WITH_NOT_A_DOCUMENT = 40413  # "the $unionWith stage specification must be an object or string"
MISSING_REQUIRED_FIELD = 40414  # IDL: "BSON field '...' is missing but a required field"
UNKNOWN_FIELD = 40415  # IDL: "BSON field '...' is an unknown field."
NOT_ALLOWED_IN_FACET = 40600  # "<stage> is not allowed to be used within a $facet stage"
NOT_FIRST_STAGE = 40602  # "<stage> is only valid as the first stage in a pipeline"
NOT_ALLOWED_IN_LOOKUP = 51047  # "<stage> is not allowed to be used within a $lookup stage"
LEGACY_OP_QUERY = 5739101  # legacy OP_QUERY outside the handshake

CODE_NAMES: dict[int, str] = {
    INTERNAL_ERROR: "InternalError",
    BAD_VALUE: "BadValue",
    UNKNOWN_ERROR: "UnknownError",
    FAILED_TO_PARSE: "FailedToParse",
    DUPLICATE_KEY: "DuplicateKey",
    TYPE_MISMATCH: "TypeMismatch",
    ILLEGAL_OPERATION: "IllegalOperation",
    NAMESPACE_NOT_FOUND: "NamespaceNotFound",
    INDEX_NOT_FOUND: "IndexNotFound",
    CONFLICTING_UPDATE_OPERATORS: "ConflictingUpdateOperators",
    CURSOR_NOT_FOUND: "CursorNotFound",
    NAMESPACE_EXISTS: "NamespaceExists",
    COMMAND_NOT_FOUND: "CommandNotFound",
    CANNOT_CREATE_INDEX: "CannotCreateIndex",
    INDEX_ALREADY_EXISTS: "IndexAlreadyExists",
    INVALID_OPTIONS: "InvalidOptions",
    INVALID_NAMESPACE: "InvalidNamespace",
    INDEX_OPTIONS_CONFLICT: "IndexOptionsConflict",
    INDEX_KEY_SPECS_CONFLICT: "IndexKeySpecsConflict",
    COMMAND_NOT_SUPPORTED: "CommandNotSupported",
    COMMAND_FAILED: "CommandFailed",
    COMMAND_NOT_SUPPORTED_ON_VIEW: "CommandNotSupportedOnView",
    NOT_IMPLEMENTED: "NotImplemented",
    NOT_A_RETRYABLE_WRITE_COMMAND: "NotARetryableWriteCommand",
    UNAUTHORIZED: "Unauthorized",
    PROTOCOL_ERROR: "ProtocolError",
    AUTHENTICATION_FAILED: "AuthenticationFailed",
    # codes a failCommand fail point typically injects (its errorCode may be any code)
    6: "HostUnreachable",
    7: "HostNotFound",
    50: "MaxTimeMSExpired",
    64: "WriteConcernFailed",
    89: "NetworkTimeout",
    91: "ShutdownInProgress",
    100: "UnsatisfiableWriteConcern",
    134: "ReadConcernMajorityNotAvailableYet",
    189: "PrimarySteppedDown",
    262: "ExceededTimeLimit",
    9001: "SocketException",
    10107: "NotWritablePrimary",
    11600: "InterruptedAtShutdown",
    11602: "InterruptedDueToReplStateChange",
    13435: "NotPrimaryNoSecondaryOk",
    13436: "NotPrimaryOrSecondary",
}


class CloseConnection(Exception):  # noqa: N818 - an instruction to the wire layer, not an error
    """Hang up this client's connection without a reply (``failCommand``'s ``closeConnection``)."""


class CommandError(Exception):
    """A command failure that becomes ``{ok: 0, errmsg, code, codeName}`` (plus ``extra``, e.g. ``keyPattern``)."""

    def __init__(
        self, errmsg: str, code: int = UNKNOWN_ERROR, code_name: str | None = None, extra: dict[str, Any] | None = None
    ) -> None:
        super().__init__(errmsg)
        self.errmsg = errmsg
        self.code = code
        self.code_name = code_name or CODE_NAMES.get(code, f"Location{code}")
        self.extra = extra or {}

    def to_reply(self) -> dict[str, Any]:
        """The error document a real mongod would send."""
        return {"ok": 0.0, "errmsg": self.errmsg, "code": self.code, "codeName": self.code_name, **self.extra}

    def to_write_error(self) -> dict[str, Any]:
        """The same failure as one entry of a write command's ``writeErrors`` (without its ``index``)."""
        return {"code": self.code, "errmsg": self.errmsg, **self.extra}


def bad_value(msg: str) -> CommandError:
    """BadValue (2): an argument of the right type with a value the server refuses."""
    return CommandError(msg, BAD_VALUE)


def failed_to_parse(msg: str) -> CommandError:
    """FailedToParse (9): a malformed command argument, such as an index definition mongot's parser rejects."""
    return CommandError(msg, FAILED_TO_PARSE)


def unknown_error(msg: str) -> CommandError:
    """UnknownError (8): how mongot's query errors reach the client through mongod."""
    return CommandError(msg, UNKNOWN_ERROR)


def authentication_failed(msg: str = "Authentication failed.") -> CommandError:
    """AuthenticationFailed (18): mongod tells a client no more than this, whatever went wrong (sasl_commands.cpp)."""
    return CommandError(msg, AUTHENTICATION_FAILED)


def not_implemented(msg: str) -> CommandError:
    """NotImplemented (238): what the emulator refuses rather than silently ignores (its limitations).

    The message always says "emulator limitation", the phrase the README's list and the spec-test skip list use.
    """
    if "emulator limitation" not in msg:
        msg = f"{msg} (emulator limitation)"
    return CommandError(msg, NOT_IMPLEMENTED)


def reject_unknown_fields(doc: Mapping[str, Any], allowed: set[str], ctx: str) -> None:
    """FailedToParse for fields an index definition (or a part of it, ``ctx``) does not take, as mongot words it."""
    unknown = sorted(set(doc) - allowed)
    if unknown:
        where = f'"{ctx}"' if ctx else "index definition"
        raise failed_to_parse(f"{where} has unrecognized field(s): {', '.join(repr(u) for u in unknown)}")
