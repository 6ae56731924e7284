"""What a sentence-transformers model folder says about itself, read from its JSON files without loading it.

A LEAF ``-asym`` packaging is one model whose first module is a ``Router``: queries go through the leaf's
modules, documents through the teacher's. Plain ``encode()`` takes the Router's default route (the teacher), so
leaf-mongo never calls it on a Router; it loads one *route* as a model of its own instead (a folder of links to
that route's modules): the query side then holds only the 23M leaf, not the teacher tower, and the document side
chunks with the teacher's own tokenizer and sequence limit.
"""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path
from typing import Any, Literal

from leaf_mongo.models.hub import available

Task = Literal["query", "document"]
ROUTER_TYPE_SUFFIX = ".Router"
DOCUMENT_PROMPT_NAMES = ("document", "passage", "corpus")  # what encode_document looks for, in order
ROUTES_DIR = Path("~/.cache/leaf-mongo/routes")


def _read_json(path: Path) -> Any:
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None


def modules(folder: Path) -> list[dict[str, Any]]:
    data = _read_json(folder / "modules.json")
    return list(data) if isinstance(data, list) else []


def router_entry(folder: Path) -> dict[str, Any] | None:
    """The ``modules.json`` entry of the folder's Router, if it has one."""
    return next((m for m in modules(folder) if str(m.get("type", "")).endswith(ROUTER_TYPE_SUFFIX)), None)


def router_config(folder: Path) -> dict[str, Any] | None:
    entry = router_entry(folder)
    if entry is None:
        return None
    data = _read_json(folder / entry.get("path", "") / "router_config.json")
    return data if isinstance(data, dict) else None


def routes(folder: Path) -> list[str]:
    """Route names of a Router model (``[]`` for a plain model)."""
    config = router_config(folder)
    return list((config or {}).get("structure", {}))


def is_query_document_router(folder: Path) -> bool:
    return {"query", "document"} <= set(routes(folder))


def st_config(folder: Path) -> dict[str, Any]:
    data = _read_json(folder / "config_sentence_transformers.json")
    return data if isinstance(data, dict) else {}


def has_configured_prompt(folder: Path, task: Task) -> bool:
    """Whether the model's own configuration sets a prompt for ``task`` (even an empty one)."""
    config = st_config(folder)
    prompts = config.get("prompts") or {}
    names = ("query",) if task == "query" else DOCUMENT_PROMPT_NAMES
    return any(n in prompts and prompts[n] is not None for n in names) or bool(config.get("default_prompt_name"))


def route_view(folder: Path, route: str) -> Path:
    """A model folder holding only ``route`` of ``folder``'s Router (links, no copies), made once and reused.

    Its ``modules.json`` lists the route's modules followed by the modules after the Router (e.g. a top-level
    ``Normalize``); ``config_sentence_transformers.json`` (prompts, similarity) is the Router model's own.
    """
    entry = router_entry(folder)
    config = router_config(folder)
    if entry is None or config is None or route not in config.get("structure", {}):
        raise ValueError(f"{folder} has no Router route {route!r}")
    router_dir = folder / entry.get("path", "")
    key = hashlib.sha256(f"{folder.resolve()}\x00{route}".encode()).hexdigest()[:16]
    view = ROUTES_DIR.expanduser() / f"{folder.name}-{route}-{key}"
    listing: list[dict[str, Any]] = []
    links: dict[str, Path] = {}
    for name in config["structure"][route]:
        links[name] = router_dir / name
        listing.append({"path": name, "type": config["types"][name]})
    after = False
    for m in modules(folder):
        if m is entry:
            after = True
            continue
        if after:
            links[m["path"]] = folder / m["path"]
            listing.append({"path": m["path"], "type": m["type"]})
    wanted = [{"idx": i, "name": str(i), **m} for i, m in enumerate(listing)]
    if modules(view) == wanted and all((view / n).resolve() == p.resolve() for n, p in links.items()):
        return view
    tmp = view.with_name(view.name + f".tmp{os.getpid()}")
    tmp.mkdir(parents=True, exist_ok=True)
    for name, target in links.items():
        link = tmp / name
        if link.is_symlink() or link.exists():
            link.unlink()
        link.symlink_to(target.resolve(), target_is_directory=True)
    (tmp / "modules.json").write_text(json.dumps(wanted, indent=2))
    for extra in ("config_sentence_transformers.json", "README.md"):
        if (folder / extra).is_file():
            (tmp / extra).write_bytes((folder / extra).read_bytes())
    if view.exists():
        for child in view.iterdir():
            child.unlink()
        view.rmdir()
    tmp.rename(view)
    return view


def config_folder(name_or_path: str) -> Path | None:
    """A folder holding the model's JSON configuration (a local folder, or the hub files, fetched alone)."""
    path = Path(name_or_path).expanduser()
    if path.is_dir():
        return path
    if not available(name_or_path):
        return None  # the model load says why, in one line
    try:
        from huggingface_hub import hf_hub_download

        return Path(hf_hub_download(name_or_path, "config_sentence_transformers.json")).parent
    except Exception:
        return None  # offline, or the model has no such file: nothing configured that we can see


def local_folder(name_or_path: str) -> Path | None:
    """A local model folder for ``name_or_path``: the folder itself, or the hub snapshot of a Router model.

    Plain hub models return ``None`` (sentence-transformers loads them by id). A hub Router model is fetched
    with only its JSON files first, then the files of the routes that are used.
    """
    path = Path(name_or_path).expanduser()
    if path.is_dir():
        return path
    if not available(name_or_path):
        return None  # the model load says why, in one line
    try:
        from huggingface_hub import hf_hub_download, snapshot_download
    except ImportError:  # pragma: no cover - a dependency of sentence-transformers
        return None
    try:
        mods = json.loads(Path(hf_hub_download(name_or_path, "modules.json")).read_text(encoding="utf-8"))
    except Exception:
        return None  # let sentence-transformers report what is wrong with the id
    if not any(str(m.get("type", "")).endswith(ROUTER_TYPE_SUFFIX) for m in mods):
        return None
    return Path(snapshot_download(name_or_path))
