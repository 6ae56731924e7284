"""``python -m leaf_mongo.local serve PATH [--port N]``: what :func:`~leaf_mongo.local.ensure_server` spawns."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from leaf_mongo.local.serve import serve


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m leaf_mongo.local", description="The leaf-mongo local store.")
    sub = parser.add_subparsers(dest="command", required=True)
    run = sub.add_parser("serve", help="serve a data folder in the foreground (127.0.0.1)")
    run.add_argument("path", type=Path, help="data folder")
    run.add_argument("--port", type=int, default=0, help="TCP port (default: any free port)")
    run.add_argument("--prefer-port", type=int, default=0, help="use this port if it is free, else any")
    run.add_argument("--users", type=Path, default=None, help="owner-only JSON users file: SCRAM-SHA-256 auth")
    run.add_argument(
        "--enable-test-commands", action="store_true", help="configureFailPoint (failCommand), for fault tests"
    )
    args = parser.parse_args(argv)
    return serve(
        args.path,
        port=args.port,
        prefer_port=args.prefer_port,
        users=args.users,
        test_commands=args.enable_test_commands,
    )


if __name__ == "__main__":
    sys.exit(main())
