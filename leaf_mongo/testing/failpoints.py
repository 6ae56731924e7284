"""The ``failCommand`` fail point, as mongod implements it (``configureFailPoint``, test commands only).

mongod's ``FailPoint`` (src/mongo/util/fail_point.cpp) has a mode (``alwaysOn``, ``off``,
``{times: n}``, ``{skip: n}``, ``{activationProbability: p}``) and a data document; ``failCommand``
(src/mongo/db/commands.cpp, ``CommandHelpers::evaluateFailCommandFailPoint``) reads that data. Its
predicate (``shouldActivateFailCommandFailPoint``) holds when the command's registered name is in ``failCommands``
and, if ``appName`` is given, the connection's ``hello`` named that application; ``configureFailPoint``
itself never matches. The mode is consulted (and a ``times`` budget spent) only when the predicate holds,
in two places as in mongod: before the command (``blockConnection``, ``closeConnection``, ``errorCode``)
and after it (``writeConcernError`` added to a reply of a command that did run).
"""

from __future__ import annotations

import random
import threading
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from leaf_mongo.testing.errors import BAD_VALUE, TYPE_MISMATCH, CommandError, not_implemented

FAIL_COMMAND = "failCommand"
PRIMARY_TRANSACTIONAL_WRITE = "onPrimaryTransactionalWrite"
_DATA_FIELDS = frozenset(
    {"failCommands", "closeConnection", "errorCode", "errorLabels", "writeConcernError",
     "blockConnection", "blockTimeMS", "appName", "failInternalCommands", "failLocalClients", "namespace"}
)  # fmt: skip
_NEVER_FAILED = frozenset({"configurefailpoint"})  # mongod: "Banned even if in failCommands"
# mongod compares failCommands, case-sensitively, with the command's registered name (``cmd->getName()``), which
# an alias or another spelling (``ismaster``, ``findandmodify``) resolves to.
_CANONICAL = {
    name.lower(): name
    for name in (
        "hello", "isMaster", "ping", "buildInfo", "hostInfo", "serverStatus", "getParameter", "getCmdLineOpts",
        "connectionStatus", "whatsmyuri", "endSessions", "killAllSessions", "insert", "update", "delete",
        "findAndModify", "find", "getMore", "killCursors", "aggregate", "explain", "count", "distinct", "create",
        "drop", "listCollections", "dropDatabase", "listDatabases", "createIndexes", "listIndexes", "dropIndexes",
        "createSearchIndexes", "updateSearchIndex", "dropSearchIndex", "saslStart", "saslContinue",
        "bulkWrite",
    )
}  # fmt: skip
_CANONICAL["deleteindexes"] = "dropIndexes"


def canonical_name(name: str) -> str:
    """The command's registered name, as mongod names it in failCommands and in its error messages."""
    return _CANONICAL.get(name.lower(), name)


@dataclass
class FailCommand:
    """One ``failCommand`` fail point: mode, data, and how often it fired (``count`` in replies)."""

    mode: str = "off"
    remaining: int = 0  # times: activations left; skip: matches still to pass over
    probability: float = 0.0
    data: dict[str, Any] = field(default_factory=dict)
    entered: int = 0
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def configure(self, cmd: Mapping[str, Any]) -> int:
        """Apply ``{configureFailPoint: "failCommand", mode, data}``; returns the previous ``count``."""
        mode, remaining, probability = _parse_mode(cmd.get("mode"))
        data = cmd.get("data", {})
        if not isinstance(data, Mapping):
            raise CommandError("'data' must be an object", TYPE_MISMATCH)
        data = dict(data)
        self._check(data)
        with self._lock:
            before = self.entered
            self.mode, self.remaining, self.probability, self.data = mode, remaining, probability, data
            return before

    def _check(self, data: dict[str, Any]) -> None:
        _check_data(data)

    def before_command(self, name: str, app_name: str | None, nss: str) -> dict[str, Any] | None:
        """The data if the fail point fires before ``name`` runs (block, close or error)."""
        keys = ("closeConnection", "errorCode", "blockConnection")
        return self._fire(name, app_name, nss, lambda data: any(k in data for k in keys))

    def after_command(self, name: str, app_name: str | None, nss: str) -> dict[str, Any] | None:
        """The data if the fail point adds its ``writeConcernError`` to the reply of ``name``."""
        return self._fire(name, app_name, nss, lambda data: "writeConcernError" in data)

    def _fire(self, name: str, app_name: str | None, nss: str, wanted: Any) -> dict[str, Any] | None:
        with self._lock:
            if self.mode == "off" or not self._matches(name, app_name, nss) or not wanted(self.data):
                return None
            if not self._should_fire():
                return None
            self.entered += 1
            return dict(self.data)

    def _matches(self, name: str, app_name: str | None, nss: str) -> bool:
        if name.lower() in _NEVER_FAILED:
            return False
        if "namespace" in self.data and self.data["namespace"] != nss:
            return False
        if "appName" in self.data and self.data["appName"] != (app_name or ""):
            return False
        return canonical_name(name) in self.data.get("failCommands", [])

    def _should_fire(self) -> bool:
        if self.mode == "alwaysOn":
            return True
        if self.mode == "times":
            if self.remaining <= 0:
                self.mode = "off"
                return False
            self.remaining -= 1
            if self.remaining == 0:
                self.mode = "off"
            return True
        if self.mode == "skip":
            if self.remaining > 0:
                self.remaining -= 1
                return False
            return True
        return random.random() < self.probability  # activationProbability  # noqa: S311 - not cryptographic


class PrimaryTransactionalWrite(FailCommand):
    """mongod's ``onPrimaryTransactionalWrite`` fail point (the retryable-write tests use it), per retryable write.

    mongod checks it as a retryable write (or transaction) statement completes on the primary
    (``TransactionParticipant``): with ``failBeforeCommitExceptionCode`` the write is not committed and fails with
    that code; ``closeConnection`` (default true) hangs up, after the commit when there is one. The emulator
    checks it once per retryable write command (``txnNumber``), which the spec tests cannot tell apart.
    """

    def _check(self, data: dict[str, Any]) -> None:
        unknown = sorted(set(data) - {"closeConnection", "failBeforeCommitExceptionCode"})
        if unknown:
            raise not_implemented(f"onPrimaryTransactionalWrite data field(s) {unknown} are not supported")
        code = data.get("failBeforeCommitExceptionCode", 0)
        if isinstance(code, bool) or not isinstance(code, int):
            raise CommandError("'failBeforeCommitExceptionCode' must be an integer", TYPE_MISMATCH)

    def fire(self) -> dict[str, Any] | None:
        """The data if the fail point fires for this retryable write."""
        with self._lock:
            if self.mode == "off" or not self._should_fire():
                return None
            self.entered += 1
            return dict(self.data)


def _parse_mode(mode: Any) -> tuple[str, int, float]:
    """mongod's ``FailPoint::parseBSON`` for ``mode``."""
    if isinstance(mode, str):
        if mode in ("off", "alwaysOn"):
            return mode, 0, 0.0
        raise CommandError(f"unknown mode: {mode}", BAD_VALUE)
    if not isinstance(mode, Mapping):
        raise CommandError("'mode' must be a string or JSON object", TYPE_MISMATCH)
    if "times" in mode:
        times = _integer(mode["times"], "times")
        return ("times" if times > 0 else "off"), times, 0.0
    if "skip" in mode:
        return "skip", _integer(mode["skip"], "skip"), 0.0
    if "activationProbability" in mode:
        p = mode["activationProbability"]
        if isinstance(p, bool) or not isinstance(p, (int, float)):
            raise CommandError("the 'activationProbability' option to 'mode' must be a double", TYPE_MISMATCH)
        if not 0.0 <= float(p) <= 1.0:
            raise CommandError("activationProbability must be between 0.0 and 1.0", BAD_VALUE)
        return "probability", 0, float(p)
    raise CommandError("'mode' must be one of 'off', 'alwaysOn', 'times', and 'activationProbability'", BAD_VALUE)


def _integer(value: Any, option: str) -> int:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or int(value) != value:
        raise CommandError(f"The '{option}' option to 'mode' must be a number", TYPE_MISMATCH)
    if value < 0:
        raise CommandError(f"The '{option}' option to 'mode' must be positive", BAD_VALUE)
    return int(value)


def command_namespace(db: str, name: str, cmd: Mapping[str, Any]) -> str:
    """The namespace mongod's ``invocation->ns()`` gives a command, which ``namespace`` is compared with."""
    if name.lower() == "getmore":
        return f"{db}.{cmd.get('collection')}"
    target = cmd.get(name)
    if isinstance(target, str):
        return f"{db}.{target}"
    if name.lower() == "aggregate":
        return f"{db}.$cmd.aggregate"  # a collectionless aggregate
    return db


def _check_data(data: dict[str, Any]) -> None:
    unknown = sorted(set(data) - _DATA_FIELDS)
    if unknown:
        raise not_implemented(f"failCommand data field(s) {unknown} are not supported (emulator limitation)")
    if not isinstance(data.get("namespace", ""), str):
        raise CommandError("'namespace' must be a string", TYPE_MISMATCH)
    if data.get("failInternalCommands"):
        raise not_implemented("failInternalCommands: the emulator has no internal clients (emulator limitation)")
    commands = data.get("failCommands", [])
    if not isinstance(commands, list) or not all(isinstance(c, str) for c in commands):
        raise CommandError("'failCommands' must be an array of strings", TYPE_MISMATCH)
    if "errorCode" in data and (isinstance(data["errorCode"], bool) or not isinstance(data["errorCode"], int)):
        raise CommandError("'errorCode' must be an integer", TYPE_MISMATCH)
    labels = data.get("errorLabels", [])
    if not isinstance(labels, list) or not all(isinstance(label, str) for label in labels):
        raise CommandError("'errorLabels' must be an array of strings", TYPE_MISMATCH)
    if "writeConcernError" in data and not isinstance(data["writeConcernError"], Mapping):
        raise CommandError("'writeConcernError' must be an object", TYPE_MISMATCH)
    # blockTimeMS is checked when the fail point fires, as mongod does (commands/parameters.py)
