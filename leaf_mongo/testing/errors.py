"""Server-shaped errors.

Every failure inside a command handler is turned into a command error reply
(``{ok: 0, errmsg, code, codeName}``) because a Python exception escaping the
connection thread would simply drop the socket, which drivers report as a
network error (and retry) instead of the real server's ``OperationFailure``.
"""

from __future__ import annotations

from typing import Any

# Subset of mongo/base/error_codes.yml that the emulator emits.
CODE_NAMES: dict[int, str] = {
    1: "InternalError",
    2: "BadValue",
    8: "UnknownError",
    9: "FailedToParse",
    11000: "DuplicateKey",
    14: "TypeMismatch",
    20: "IllegalOperation",
    26: "NamespaceNotFound",
    27: "IndexNotFound",
    40: "ConflictingUpdateOperators",
    40414: "Location40414",
    40415: "Location40415",
    40324: "Location40324",
    40602: "Location40602",
    43: "CursorNotFound",
    48: "NamespaceExists",
    59: "CommandNotFound",
    68: "IndexAlreadyExists",
    73: "InvalidNamespace",
    85: "IndexOptionsConflict",
    86: "IndexKeySpecsConflict",
    115: "CommandNotSupported",
    125: "CommandFailed",
    166: "CommandNotSupportedOnView",
    238: "NotImplemented",
    50768: "NotARetryableWriteCommand",
}


class CommandError(Exception):
    """A command failure that becomes ``{ok: 0, errmsg, code, codeName}``."""

    def __init__(self, errmsg: str, code: int = 8, code_name: str | None = None) -> None:
        super().__init__(errmsg)
        self.errmsg = errmsg
        self.code = code
        self.code_name = code_name or CODE_NAMES.get(code, f"Location{code}")

    def to_reply(self) -> dict[str, Any]:
        """The error document a real mongod would send."""
        return {"ok": 0.0, "errmsg": self.errmsg, "code": self.code, "codeName": self.code_name}


def bad_value(msg: str) -> CommandError:
    """Shorthand for the most common validation failure (BadValue, code 2)."""
    return CommandError(msg, 2)
