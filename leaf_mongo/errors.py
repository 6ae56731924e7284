"""Errors that end a command with one clear line and a stable exit code.

Every failure a user can cause (bad settings, an unreachable server, a spec mismatch) is raised as a
:class:`LeafMongoError` subclass, so the CLI can print ``str(error)`` alone and exit with ``exit_code``
instead of a traceback.
"""

from __future__ import annotations


class LeafMongoError(Exception):
    """Base class: a message meant for the user and the CLI exit code it maps to."""

    exit_code: int = 1

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message

    def __str__(self) -> str:
        return self.message


class SettingsError(LeafMongoError):
    """A setting, or a combination of settings, that MongoDB or the models cannot honour."""

    exit_code = 2

    def __init__(self, setting: str, message: str) -> None:
        super().__init__(f"{setting}: {message}")
        self.setting = setting


class InputError(LeafMongoError):
    """Paths to ingest that do not exist or hold nothing leaf-mongo can read."""

    exit_code = 2


class ModelLoadError(LeafMongoError):
    """A model id or folder that cannot be loaded."""

    exit_code = 2


class SpecMismatchError(LeafMongoError):
    """Stored vectors and the requested spec (or query model) are not comparable.

    A real server answers such a query with an empty result and no error; we refuse instead.
    """

    exit_code = 2


class ServerError(LeafMongoError):
    """The MongoDB deployment is unreachable, rejects us, or lacks vector search."""

    exit_code = 3


class SearchIndexError(ServerError):
    """The vectorSearch index failed to build or did not become queryable in time."""


class FilterError(LeafMongoError):
    """A pre-filter that MongoDB would reject (undeclared field or unsupported operator)."""

    exit_code = 2


class LocalStoreError(LeafMongoError):
    """The local store (``leaf_mongo.local``) cannot be started, reached or read."""

    exit_code = 3


class StoreFormatError(LocalStoreError):
    """A local store data folder written by a leaf-mongo whose store format this version cannot read."""

    exit_code = 2
