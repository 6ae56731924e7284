"""Connecting to MongoDB (a configured server, or the local store), and turning server failures into one line.

With no ``LEAF_MONGO_URI`` the local store serves (:mod:`leaf_mongo.local`): the same pymongo code talks to it
over the wire protocol, and moving to a server is a URI change. An explicit URI is used as given: never a
silent fallback from a configured server to the local store.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

from pymongo import AsyncMongoClient, MongoClient
from pymongo.driver_info import DriverInfo
from pymongo.errors import OperationFailure, PyMongoError, ServerSelectionTimeoutError
from pymongo.uri_parser import parse_uri

from leaf_mongo._version import __version__
from leaf_mongo.errors import ServerError
from leaf_mongo.local import default_path, ensure_server
from leaf_mongo.settings import LeafMongoSettings

SEARCH_NOT_ENABLED = 31082  # mongod has no mongot to talk to
UNAUTHORIZED = (13, 18)  # Unauthorized, AuthenticationFailed


_announced: set[Path] = set()


def local_store_folder(settings: LeafMongoSettings) -> Path:
    """The local store's data folder for these settings (named, or the per-user default)."""
    named = settings.local_store_path
    return Path(named).expanduser() if named else default_path()


def resolve_uri(settings: LeafMongoSettings) -> str:
    """The URI to connect to: the configured one, or the local store's (started on demand, announced once)."""
    if not settings.uses_local_store:
        assert settings.uri is not None
        return settings.uri.get_secret_value()
    folder = local_store_folder(settings)
    users = Path(settings.local_users) if settings.local_users else None
    uri = ensure_server(folder, users=users, test_commands=settings.local_test_commands)
    if folder not in _announced:
        _announced.add(folder)
        print(
            f"leaf-mongo: using the local store in {folder} ({uri}); to use a MongoDB server instead, set "
            "LEAF_MONGO_URI (or --uri)",
            file=sys.stderr,
        )
    return uri


def client_options(settings: LeafMongoSettings, uri: str) -> dict[str, Any]:
    """Keyword arguments for ``MongoClient`` / ``AsyncMongoClient`` built from settings.

    A single-host ``mongodb://`` URI that names no replica set connects directly (as ``mongosh`` does): the
    docker-compose replica set advertises its member as ``mongod:27017``, a name only the containers
    resolve, so topology discovery from the host would fail. An explicit ``directConnection`` or
    ``replicaSet`` in the URI wins.
    """
    opts: dict[str, Any] = {
        "serverSelectionTimeoutMS": settings.server_timeout_ms,
        "driver": DriverInfo(name="leaf-mongo", version=__version__),
    }
    if settings.uses_local_store and settings.local_username:  # a local store started with users
        password = settings.local_password.get_secret_value() if settings.local_password else ""
        opts.update(username=settings.local_username, password=password, authSource="admin")
    try:
        parsed = parse_uri(uri, validate=False, warn=True)
    except Exception:  # noqa: BLE001 - let MongoClient report a malformed URI itself
        return opts
    options = {k.lower() for k in parsed.get("options", {})}
    if (
        uri.startswith("mongodb://")
        and len(parsed.get("nodelist", [])) == 1
        and not options & {"directconnection", "replicaset", "loadbalanced"}
    ):
        opts["directConnection"] = True
    return opts


def make_client(settings: LeafMongoSettings) -> MongoClient[Any]:
    uri = resolve_uri(settings)
    return MongoClient(uri, **client_options(settings, uri))


def make_async_client(settings: LeafMongoSettings) -> AsyncMongoClient[Any]:
    uri = resolve_uri(settings)
    return AsyncMongoClient(uri, **client_options(settings, uri))


def check_server(client: MongoClient[Any]) -> None:
    """Fail fast (one line) when the server is unreachable or rejects our credentials."""
    try:
        client.admin.command("ping")
    except PyMongoError as exc:
        raise server_error(exc) from exc


def server_error(exc: Exception, action: str | None = None) -> ServerError:
    """Map a pymongo failure to the message a user can act on; never includes the URI."""
    prefix = f"{action}: " if action else ""
    if isinstance(exc, ServerSelectionTimeoutError):
        first = str(exc).split(",")[0].split(" (")[0]
        return ServerError(
            f"{prefix}cannot reach MongoDB ({first}). Point LEAF_MONGO_URI / --uri at a running server "
            "(`docker compose up -d --wait` starts one), or unset it to use the local store"
        )
    if isinstance(exc, OperationFailure):
        msg = (exc.details or {}).get("errmsg") or str(exc)
        if exc.code == SEARCH_NOT_ENABLED:
            return ServerError(
                f"{prefix}this MongoDB server has no search (SearchNotEnabled, code 31082): mongod is not "
                "wired to a mongot. Use MongoDB 8.2+ with mongot (see docker-compose.yml) or Atlas"
            )
        if exc.code in UNAUTHORIZED:
            return ServerError(f"{prefix}authentication failed or not authorized: {msg} (code {exc.code})")
        return ServerError(f"{prefix}{msg} (code {exc.code})")
    return ServerError(f"{prefix}{exc}")
