"""What every command shares: the console, settings flags, connecting, and turning errors into one line."""

from __future__ import annotations

import functools
import inspect
import json
import os
import sys
from collections.abc import Callable
from typing import Any, TypeVar

import typer
from pymongo.errors import PyMongoError
from rich.console import Console

from leaf_mongo.connection import server_error
from leaf_mongo.errors import LeafMongoError
from leaf_mongo.redact import redact_text
from leaf_mongo.settings import LeafMongoSettings, load_settings

console = Console(stderr=True)
out = Console()

F = TypeVar("F", bound=Callable[..., Any])

# The settings flags commands share, declared once: name -> (type, option). A command names the ones it takes
# with @settings_flags(...) and receives their values as one ``flags`` dict for :func:`settings_from_flags`.
SETTINGS_FLAGS: dict[str, tuple[Any, Any]] = {
    "uri": (str | None, typer.Option(None, "--uri", help="MongoDB URI (env LEAF_MONGO_URI)", show_default=False)),
    "database": (str | None, typer.Option(None, "--database", "--db", help="Database (env LEAF_MONGO_DATABASE)")),
    "collection": (
        str | None,
        typer.Option(None, "--collection", "-c", help="Collection (env LEAF_MONGO_COLLECTION)"),
    ),
    "index_name": (
        str | None,
        typer.Option(None, "--index-name", help="vectorSearch index name (env LEAF_MONGO_INDEX_NAME)"),
    ),
    "profile": (
        str | None,
        typer.Option(None, "--profile", help="ir | mt | ir-asym | mt-asym (env LEAF_MONGO_PROFILE)"),
    ),
    "teacher_model": (
        str | None,
        typer.Option(None, "--teacher-model", help="Teacher: HF id or folder (env LEAF_MONGO_TEACHER_MODEL)"),
    ),
    "leaf_model": (
        str | None,
        typer.Option(None, "--leaf-model", help="Leaf query model: HF id or folder (env LEAF_MONGO_LEAF_MODEL)"),
    ),
    "dimensions": (
        int | None,
        typer.Option(None, "--dimensions", "-d", help="MRL truncation (env LEAF_MONGO_DIMENSIONS)"),
    ),
    "dtype": (str | None, typer.Option(None, "--dtype", help="float32 | int8 | binary (env LEAF_MONGO_DTYPE)")),
    "quantization": (
        str | None,
        typer.Option(None, "--quantization", help="none | scalar | binary (env LEAF_MONGO_QUANTIZATION)"),
    ),
    "similarity": (
        str | None,
        typer.Option(None, "--similarity", help="cosine | dotProduct | euclidean (env LEAF_MONGO_SIMILARITY)"),
    ),
}
SERVER = ("uri", "database", "collection", "index_name")
MODELS = ("profile", "teacher_model", "leaf_model")
VECTORS = ("dimensions", "dtype", "quantization", "similarity")
DebugOpt = typer.Option(False, "--debug", help="Show tracebacks")


def settings_flags(*names: str) -> Callable[[F], F]:
    """Add the named :data:`SETTINGS_FLAGS` to a command's options; the command gets them as ``flags``."""

    def decorate(func: F) -> F:
        sig = inspect.signature(func)
        own = [p for p in sig.parameters.values() if p.name != "flags"]
        added = [
            inspect.Parameter(n, inspect.Parameter.POSITIONAL_OR_KEYWORD, default=opt, annotation=typ)
            for n, (typ, opt) in ((n, SETTINGS_FLAGS[n]) for n in names)
        ]
        tail = [p for p in own if p.name == "debug"]  # --debug stays last in --help

        @functools.wraps(func)
        def wrapper(*args: Any, **kwargs: Any) -> Any:
            return func(*args, flags={n: kwargs.pop(n) for n in names}, **kwargs)

        # Typer calls commands with keyword arguments only, so every parameter can be keyword-only here.
        params = [p for p in own if p.name != "debug"] + added + tail
        params = [p.replace(kind=inspect.Parameter.KEYWORD_ONLY) for p in params]
        wrapper.__signature__ = sig.replace(parameters=params)  # type: ignore[attr-defined]
        return wrapper  # type: ignore[return-value]

    return decorate


def settings_from_flags(**flags: Any) -> LeafMongoSettings:
    """Env and .env first, then the flags that were given."""
    return load_settings(**flags)


def run_command(func: F) -> F:
    """Run a command body; a LeafMongoError (or a pymongo failure) becomes one redacted line and an exit code.

    With ``--json`` the same error is also printed on stdout as one JSON object (``error``, ``exit_code``), so
    a script reading stdout never gets nothing.
    """

    @functools.wraps(func)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        debug = bool(kwargs.get("debug")) or os.environ.get("LEAF_MONGO_DEBUG") == "1"
        uri = kwargs.get("uri") or os.environ.get("LEAF_MONGO_URI")

        def fail(message: str, code: int) -> typer.Exit:
            text = redact_text(message, uri)
            console.print(f"[bold red]error:[/] {text}", highlight=False, soft_wrap=True)
            if kwargs.get("as_json"):
                out.print_json(json.dumps({"error": text, "exit_code": code}))
            return typer.Exit(code)

        try:
            return func(*args, **kwargs)
        except typer.Exit:
            raise
        except LeafMongoError as exc:
            if debug:
                console.print_exception()
            raise fail(str(exc), exc.exit_code) from None
        except KeyboardInterrupt:
            console.print("[yellow]interrupted[/]")
            raise typer.Exit(130) from None
        except PyMongoError as exc:
            err = server_error(exc)
            if debug:
                console.print_exception()
            raise fail(str(err), err.exit_code) from None
        except Exception as exc:
            if debug:
                raise
            raise fail(f"{type(exc).__name__}: {exc} (run with --debug for details)", 1) from None

    return wrapper  # type: ignore[return-value]


def stdout_is_tty() -> bool:
    return sys.stdout.isatty()
