"""A query's deadline and the one-line errors of a failed search.

Every server round trip of a query (the spec and index reads of the first query, then the search's aggregate or
aggregates) runs under pymongo's client-side operation timeout (CSOT, :func:`pymongo.timeout`, the ``timeoutMS``
a pymongo user sets): a hung server or a lost connection ends at the deadline with an error that says so, rather
than a caller waiting forever; pymongo also retries a retryable read as often as the deadline allows. Without it,
a blocked socket waits as long as the operating system lets it.
"""

from __future__ import annotations

import contextlib
import inspect
from contextlib import AbstractContextManager
from typing import Any

import pymongo
from pymongo.errors import ConnectionFailure, OperationFailure, PyMongoError, ServerSelectionTimeoutError

from leaf_mongo.connection import server_error
from leaf_mongo.errors import ServerError
from leaf_mongo.redact import redact_text

DEFAULT_QUERY_TIMEOUT_MS = 10_000
UNRECOGNIZED_STAGE = 40324  # server code for a pipeline stage it does not know


def deadline(timeout_ms: int | None) -> AbstractContextManager[Any]:
    """``pymongo.timeout`` for ``timeout_ms`` (nested in a caller's own, the earlier deadline wins); no-op for None."""
    return pymongo.timeout(timeout_ms / 1000) if timeout_ms else contextlib.nullcontext()


def query_error(exc: PyMongoError, action: str, timeout_ms: int | None) -> ServerError:
    """A failure of a query step as one line: a timeout named as such (with the deadline and how to raise it), a
    lost connection (pymongo's retry failed too), a server's refusal with its code; never the URI."""
    detail = redact_text(str(exc))
    if isinstance(exc, ServerSelectionTimeoutError):
        pass  # server_error's "cannot reach MongoDB" says more
    elif getattr(exc, "timeout", False):
        limit = f"the query deadline of {timeout_ms} ms" if timeout_ms else "the client's timeoutMS"
        return ServerError(
            f"{action}: timed out, no answer from MongoDB within {limit} ({detail}); raise it with "
            "query_timeout_ms= (LEAF_MONGO_QUERY_TIMEOUT_MS) if the server is only slow"
        )
    elif isinstance(exc, ConnectionFailure):
        return ServerError(f"{action}: connection to MongoDB lost, and on every retry pymongo made ({detail})")
    error = server_error(exc, action)
    return ServerError(redact_text(error.message))


def search_error(exc: PyMongoError, where: str, search_mode: str, timeout_ms: int | None) -> ServerError:
    """:func:`query_error` for the search itself, with the one refusal that needs advice: no ``$rankFusion``."""
    if (
        search_mode == "hybrid"
        and isinstance(exc, OperationFailure)
        and (exc.code == UNRECOGNIZED_STAGE or "$rankFusion" in str(exc))
    ):
        return ServerError(
            f"hybrid search of {where} needs the $rankFusion stage, which this server does not have "
            "(MongoDB 8.1 or later with mongot has it). Upgrade the server, or fuse on the client "
            "explicitly: fusion='client' (LEAF_MONGO_FUSION=client, leaf-mongo search --fusion client) runs "
            "the vector and full-text searches separately and combines them with the same reciprocal rank "
            "formula"
        )
    return query_error(exc, f"searching {where}", timeout_ms)


async def to_list(cursor: Any) -> list[dict[str, Any]]:
    """Every document of an async cursor: pymongo async returns a coroutine, Motor a latent cursor."""
    if inspect.isawaitable(cursor):
        cursor = await cursor
    return list(await cursor.to_list(None))
