"""Whether a model id can be had: from a local folder, the local Hugging Face cache, or a reachable hub.

Without this check, a hub id on a machine that cannot reach the hub costs minutes of retries (each file,
each backoff, each printed) before the one error that matters. One TCP connect to the hub endpoint, made
once per process with a short timeout, tells in seconds; a model already in the local cache then loads
offline, and any other id fails at once with one line that says what to do.
"""

from __future__ import annotations

import os
import socket
from functools import lru_cache
from pathlib import Path
from urllib.parse import urlsplit

from leaf_mongo.errors import ModelLoadError

PROBE_SECONDS = 3.0
"""How long the one connect to the hub may take before the hub counts as unreachable."""


def looks_like_path(name: str) -> bool:
    """HF ids are ``org/name``; anything else with path syntax is meant as a folder."""
    return name.startswith((".", "/", "~")) or name.count("/") > 1 or "\\" in name


@lru_cache(maxsize=1)
def hub_unreachable() -> str | None:
    """Why the hub cannot be used (offline mode, or its endpoint refuses or times out); None when it can."""
    from huggingface_hub import constants

    if constants.HF_HUB_OFFLINE:
        return "HF_HUB_OFFLINE=1 is set"
    endpoint = urlsplit(os.environ.get("HF_ENDPOINT") or constants.ENDPOINT)
    host = endpoint.hostname or "huggingface.co"
    port = endpoint.port or (443 if endpoint.scheme == "https" else 80)
    try:
        with socket.create_connection((host, port), timeout=PROBE_SECONDS):
            return None
    except OSError as exc:
        return f"cannot connect to {host}:{port} ({exc.strerror or type(exc).__name__})"


def _cached(name: str) -> bool:
    from huggingface_hub import try_to_load_from_cache

    return any(isinstance(try_to_load_from_cache(name, f), str) for f in ("modules.json", "config.json"))


def available(name: str) -> bool:
    """Whether ``name`` can be read: a local folder, a reachable hub, or the local cache.

    A cached id on a machine without the hub switches huggingface_hub to offline mode, so it loads from the
    cache without a retry.
    """
    if looks_like_path(name) or Path(name).expanduser().is_dir() or hub_unreachable() is None:
        return True
    if _cached(name):
        from huggingface_hub import constants

        constants.HF_HUB_OFFLINE = True
        return True
    return False


def require_available(name: str) -> None:
    """Fail in one line, within seconds, when ``name`` is a hub id that is neither cached nor downloadable."""
    if not available(name):
        raise ModelLoadError(
            f"model {name!r} is not in the local Hugging Face cache and the hub is unreachable "
            f"({hub_unreachable()}): set LEAF_MONGO_TEACHER_MODEL / LEAF_MONGO_LEAF_MODEL to a local model "
            "folder, or run once where the hub is reachable to cache it"
        )
