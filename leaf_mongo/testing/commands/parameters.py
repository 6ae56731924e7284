"""``getParameter``, ``getCmdLineOpts`` and the test command ``configureFailPoint``; ``failCommand`` applied.

Test commands exist only on a server started with ``--setParameter enableTestCommands=1``
(``MongoEmulator(test_commands=True)``, ``python -m leaf_mongo.testing --enable-test-commands``); without it
mongod has no ``configureFailPoint`` command at all, so the emulator answers ``no such command`` as mongod does.
"""

from __future__ import annotations

import sys
import threading
from typing import Any

from leaf_mongo.testing.errors import (
    BAD_VALUE,
    INVALID_OPTIONS,
    UNAUTHORIZED,
    CloseConnection,
    CommandError,
    not_implemented,
)
from leaf_mongo.testing.failpoints import (
    FAIL_COMMAND,
    PRIMARY_TRANSACTIONAL_WRITE,
    FailCommand,
    PrimaryTransactionalWrite,
    command_namespace,
)
from leaf_mongo.testing.time_limit import exceeded, sleep_within

# mongod adds RetryableWriteError to these errors of a retryable write (src/mongo/db/error_labels.cpp,
# ErrorCodes::isRetriableError in error_codes.yml).
RETRYABLE_CODES = frozenset({6, 7, 89, 91, 134, 189, 262, 9001, 10107, 11600, 11602, 13435, 13436})
_RETRYABLE_WRITES = frozenset({"insert", "update", "delete", "findandmodify", "bulkwrite"})
# Commands whose invocation ``supportsWriteConcern()``: mongod adds failCommand's writeConcernError only in
# RunCommandAndWaitForWriteConcern, which no other command reaches (the search-index commands, find, and an
# aggregate without $out/$merge do not take a write concern, so the fail point never fires for them).
_WRITE_CONCERN_COMMANDS = frozenset(
    {"insert", "update", "delete", "findandmodify", "bulkwrite", "create", "drop", "dropdatabase", "createindexes",
     "dropindexes", "deleteindexes", "collmod", "renamecollection"}
)  # fmt: skip


class ParameterCommands:
    """Server parameters, the command line, and the ``failCommand`` fail point."""

    test_commands: bool
    fail_command: FailCommand
    primary_write: PrimaryTransactionalWrite
    _per_connection: threading.local

    def _parameters(self) -> dict[str, Any]:
        fcv = ".".join(self.server_version.split(".")[:2])  # type: ignore[attr-defined]
        return {
            "enableTestCommands": self.test_commands,
            "featureCompatibilityVersion": {"version": fcv},
            "requireApiVersion": False,
        }

    def _get_parameter(self, db: str, cmd: dict[str, Any], conn: int) -> dict[str, Any]:
        """``{getParameter: 1, <name>: 1}``, ``{getParameter: "*"}`` and ``{getParameter: {allParameters: true}}``."""
        if db != "admin":
            raise CommandError("getParameter may only be run against the admin database.", UNAUTHORIZED)
        arg = cmd["getParameter"]
        options = arg if isinstance(arg, dict) else {}
        if options.get("showDetails"):
            raise not_implemented("getParameter's showDetails is not supported (emulator limitation)")
        params = self._parameters()
        if arg == "*" or options.get("allParameters"):
            return dict(params)
        wanted = [k for k in cmd if k not in ("getParameter", "$db", "lsid", "$clusterTime", "$readPreference")]
        reply = {k: params[k] for k in wanted if k in params}
        if not reply:
            raise CommandError("no option found to get", INVALID_OPTIONS)
        return reply

    def _get_cmd_line_opts(self, db: str, cmd: dict[str, Any], conn: int) -> dict[str, Any]:
        if db != "admin":
            raise CommandError("getCmdLineOpts may only be run against the admin database.", UNAUTHORIZED)
        argv = list(sys.argv) if sys.argv and sys.argv[0] else ["leaf-mongo-emulator"]
        parsed: dict[str, Any] = {}
        if self.test_commands:
            parsed["setParameter"] = {"enableTestCommands": "1"}
            if "--enable-test-commands" not in argv:
                argv += ["--setParameter", "enableTestCommands=1"]
        return {"argv": argv, "parsed": parsed}

    def _configure_fail_point(self, db: str, cmd: dict[str, Any], conn: int) -> dict[str, Any]:
        if db != "admin":
            raise CommandError("configureFailPoint may only be run against the admin database.", UNAUTHORIZED)
        name = cmd["configureFailPoint"]
        points = {FAIL_COMMAND: self.fail_command, PRIMARY_TRANSACTIONAL_WRITE: self.primary_write}
        if name not in points:
            raise not_implemented(
                f"fail point {name!r} is not supported; only failCommand and onPrimaryTransactionalWrite are "
                "(emulator limitation)"
            )
        if "mode" not in cmd:
            raise CommandError("Missing mode", BAD_VALUE)
        return {"count": points[name].configure(cmd)}

    def _fail_before(
        self, db: str, name: str, cmd: dict[str, Any], deadline: float | None = None
    ) -> dict[str, Any] | None:
        """Apply ``failCommand`` before a command runs: block, hang up, or the error reply to send instead.

        A block is interruptible, as in mongod: past the command's ``maxTimeMS`` it ends in MaxTimeMSExpired.
        """
        data = self.fail_command.before_command(name, self._app_name, command_namespace(db, name, cmd))
        if data is None:
            return None
        if data.get("blockConnection"):
            block = data.get("blockTimeMS")
            if isinstance(block, bool) or not isinstance(block, int):  # mongod fails the command itself
                refused = CommandError("must specify 'blockTimeMS' when 'blockConnection' is true", INVALID_OPTIONS)
                return _labelled(refused.to_reply(), data, name, cmd, INVALID_OPTIONS)
            if block < 0:
                refused = CommandError("'blockTimeMS' must be non-negative", INVALID_OPTIONS)
                return _labelled(refused.to_reply(), data, name, cmd, INVALID_OPTIONS)
            if sleep_within(block / 1000, deadline):
                return exceeded()
        if data.get("closeConnection"):
            raise CloseConnection("Failing command due to 'failCommand' failpoint")
        if "errorCode" not in data:
            return None
        code = int(data["errorCode"])
        reply = CommandError("Failing command via 'failCommand' failpoint", code).to_reply()
        return _labelled(reply, data, name, cmd, code)

    def _fail_after(self, db: str, name: str, cmd: dict[str, Any], reply: dict[str, Any]) -> dict[str, Any]:
        """Add ``failCommand``'s ``writeConcernError`` to the reply of a command that ran."""
        if not reply.get("ok") or not _supports_write_concern(name, cmd):
            return reply
        data = self.fail_command.after_command(name, self._app_name, command_namespace(db, name, cmd))
        if data is None:
            return reply
        wce = dict(data["writeConcernError"])
        reply["writeConcernError"] = wce
        return _labelled(reply, data, name, cmd, wce.get("code"))

    def _fail_retryable_write(self) -> bool:
        """``onPrimaryTransactionalWrite`` for one retryable write: True to hang up once it has committed.

        With ``failBeforeCommitExceptionCode`` nothing runs: the connection is closed (``closeConnection``, the
        default) or the write fails with that code.
        """
        data = self.primary_write.fire() if self.test_commands else None
        if data is None:
            return False
        close = bool(data.get("closeConnection", True))
        code = data.get("failBeforeCommitExceptionCode")
        if code:
            if close:
                raise CloseConnection("Failing write for test due to 'onPrimaryTransactionalWrite' failpoint")
            raise CommandError("Failing write for test due to 'onPrimaryTransactionalWrite' failpoint", int(code))
        return close

    @property
    def _app_name(self) -> str | None:
        """The application name this connection's ``hello`` gave (``client.application.name``)."""
        return getattr(self._per_connection, "app_name", None)


def _supports_write_concern(name: str, cmd: dict[str, Any]) -> bool:
    if name.lower() == "aggregate":
        stages = cmd.get("pipeline") or []
        return any(isinstance(s, dict) and ("$out" in s or "$merge" in s) for s in stages)
    return name.lower() in _WRITE_CONCERN_COMMANDS


def _labelled(reply: dict[str, Any], data: dict[str, Any], name: str, cmd: dict[str, Any], code: Any) -> dict[str, Any]:
    """``errorLabels``: the fail point's own if given, else those mongod adds (RetryableWriteError)."""
    if "errorLabels" in data:
        labels = list(data["errorLabels"])
    else:
        retryable_write = name.lower() in _RETRYABLE_WRITES and "txnNumber" in cmd and "autocommit" not in cmd
        labels = ["RetryableWriteError"] if retryable_write and code in RETRYABLE_CODES else []
    if labels:
        reply["errorLabels"] = labels
    return reply
