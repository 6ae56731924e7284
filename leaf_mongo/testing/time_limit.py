"""``maxTimeMS``: a command's time limit, counted from its arrival, as mongod applies it.

mongod sets the operation's deadline before it runs the command; everything after that is interruptible:
waiting for a lock, ``failCommand``'s ``blockConnection`` (jstests/noPassthrough/block_connection_max_time_ms:
an insert blocked 1,000 ms with ``maxTimeMS: 100`` fails with MaxTimeMSExpired and inserts nothing), and a
read's work. The emulator checks the deadline at the same points: during a block, once the engine's lock is
held, and when a read has run (its result is then discarded, as an interrupted query returns none). A write
that has started runs to the end (the emulator's writes are atomic), where mongod might stop between
documents. pymongo sends ``maxTimeMS`` under a client-side timeout (``timeoutMS``, ``pymongo.timeout()``).
"""

from __future__ import annotations

import time
from typing import Any

from leaf_mongo.testing.errors import BAD_VALUE, CommandError

MAX_TIME_MS_EXPIRED = 50
INT32_MAX = 2**31 - 1
# Commands that only read (an aggregate ending in $out or $merge writes): their result is dropped past the deadline.
_READS = frozenset({"find", "aggregate", "count", "distinct", "getmore", "listindexes", "listcollections"})


def command_deadline(cmd: dict[str, Any]) -> float | None:
    """The ``time.monotonic()`` by which the command must finish; None without a limit (absent or 0)."""
    value = cmd.get("maxTimeMS")
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise CommandError("maxTimeMS must be a number", BAD_VALUE)
    if not 0 <= value <= INT32_MAX:
        raise CommandError("maxTimeMS is out of range", BAD_VALUE)
    return None if int(value) == 0 else time.monotonic() + int(value) / 1000


def expired(deadline: float | None) -> bool:
    return deadline is not None and time.monotonic() >= deadline


def exceeded() -> dict[str, Any]:
    """mongod's reply for a command interrupted at its deadline."""
    return CommandError("operation exceeded time limit", MAX_TIME_MS_EXPIRED).to_reply()


def sleep_within(seconds: float, deadline: float | None) -> bool:
    """Sleep ``seconds``, or until the deadline if that comes first; True if the deadline cut the sleep short."""
    if deadline is not None and time.monotonic() + seconds >= deadline:
        time.sleep(max(0.0, deadline - time.monotonic()))
        return True
    time.sleep(seconds)
    return False


def is_read(name: str, cmd: dict[str, Any]) -> bool:
    if name.lower() not in _READS:
        return False
    pipeline = cmd.get("pipeline") if name.lower() == "aggregate" else None
    if isinstance(pipeline, list) and pipeline and isinstance(pipeline[-1], dict):
        return not ({"$out", "$merge"} & set(pipeline[-1]))
    return True
