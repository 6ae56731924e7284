"""``status()``: what a data folder holds and whether a server runs for it, read from the SQLite file itself.

Reading the file (WAL lets a reader in while the server writes) rather than asking the server means a stopped
store reports its collections too, and ``status`` never starts a server.
"""

from __future__ import annotations

import sqlite3
from pathlib import Path
from typing import Any

from leaf_mongo.local.files import is_served, read_state
from leaf_mongo.testing.durable import FILE_NAME, FORMAT_VERSION, decode, read_format


def status(path: Path | None = None) -> dict[str, Any] | None:
    """The folder, its server (pid, ``mongodb://`` URI, users file, test commands, or not running), its collections
    with document counts, data bytes and search indexes, and its size on disk; None when the folder holds no store."""
    from leaf_mongo.local.server import default_path

    folder = (path or default_path()).expanduser().resolve()
    store = folder / FILE_NAME
    if not store.exists():
        return None
    state = read_state(folder) if is_served(folder) else None
    files = [store, store.with_name(FILE_NAME + "-wal")]
    found = read_format(folder)
    return {
        "path": str(folder),
        "running": state is not None,
        "pid": state.pid if state else None,
        "uri": state.uri if state else None,
        "version": state.version if state else None,
        "users": state.users if state else None,  # the users file it authenticates against, None: no authentication
        "test_commands": state.test_commands if state else None,
        "format": found,
        "disk_bytes": sum(f.stat().st_size for f in files if f.exists()),
        "collections": _collections(store) if found == FORMAT_VERSION else [],  # another format: not ours to read
    }


def _collections(store: Path) -> list[dict[str, Any]]:
    with sqlite3.connect(f"file:{store}?mode=ro", uri=True, timeout=10) as db:
        names = db.execute("SELECT db, name FROM collections ORDER BY db, name").fetchall()
        counts = {
            (d, c): (n, size)
            for d, c, n, size in db.execute(
                "SELECT db, coll, COUNT(*), SUM(LENGTH(doc)) FROM documents GROUP BY db, coll"
            )
        }
        search: dict[tuple[str, str], list[dict[str, Any]]] = {}
        for d, c, spec in db.execute("SELECT db, coll, spec FROM search_indexes ORDER BY rowid"):
            rec = decode(spec)
            search.setdefault((d, c), []).append({"name": rec["name"], "type": rec["type"]})
    out = []
    for d, c in names:
        n, size = counts.get((d, c), (0, 0))
        out.append({"database": d, "name": c, "documents": n, "data_bytes": size or 0,
                    "search_indexes": search.get((d, c), [])})  # fmt: skip
    return out
