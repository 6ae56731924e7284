"""``python -m leaf_mongo.testing``: run the emulator as a process (tests, walkthroughs).

Prints exactly one line once it accepts connections and exits 0 on SIGINT/SIGTERM.
"""

from __future__ import annotations

import argparse
import sys

from leaf_mongo.errors import LeafMongoError
from leaf_mongo.testing.embedding import EmbeddingConfig
from leaf_mongo.testing.emulator import MongoEmulator, stop_on_signals


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m leaf_mongo.testing",
        description="MongoDB 8.2 + mongot vector-search emulator (for tests; not a database).",
    )
    parser.add_argument("--port", type=int, default=27017, help="TCP port (0 = any free port)")
    parser.add_argument("--host", default="127.0.0.1", help="interface to bind (default: 127.0.0.1 only)")
    parser.add_argument("--index-delay", type=float, default=1.0, help="seconds a search index takes to become READY")
    parser.add_argument("--data", default=None, help="data folder: load it, and commit every write there (SQLite)")
    parser.add_argument("--embedding-endpoint", default=None, help="autoEmbed provider URL (mongot providerEndpoint)")
    parser.add_argument("--indexing-key-file", default=None, help="owner-only file: the key for document embeddings")
    parser.add_argument("--query-key-file", default=None, help="owner-only file: the key for query embeddings")
    parser.add_argument(
        "--enable-test-commands",
        action="store_true",
        help="mongod's --setParameter enableTestCommands=1: configureFailPoint (failCommand) for fault tests",
    )
    parser.add_argument(
        "--users",
        default=None,
        help='owner-only JSON file [{"user", "password", "db"}]: SCRAM-SHA-256 authentication (mongod --auth)',
    )
    args = parser.parse_args(argv)
    embedding = None
    if args.embedding_endpoint or args.indexing_key_file or args.query_key_file:
        if not (args.embedding_endpoint and args.indexing_key_file and args.query_key_file):
            parser.error("--embedding-endpoint, --indexing-key-file and --query-key-file go together")
        embedding = EmbeddingConfig(args.embedding_endpoint, args.indexing_key_file, args.query_key_file)

    stop = stop_on_signals()
    try:
        emulator = MongoEmulator(
            host=args.host,
            port=args.port,
            index_build_delay=args.index_delay,
            data_path=args.data,
            embedding=embedding,
            test_commands=args.enable_test_commands,
            users=args.users,
        )
    except (LeafMongoError, OSError, ValueError) as exc:
        print(f"leaf-mongo emulator: {exc}", file=sys.stderr)
        return exc.exit_code if isinstance(exc, LeafMongoError) else 2
    try:
        emulator.start()
    except OSError as exc:
        print(f"leaf-mongo emulator: cannot listen on {args.host}:{args.port}: {exc}", file=sys.stderr)
        return 1
    print(f"leaf-mongo emulator listening on {emulator.uri}", flush=True)
    try:
        while not stop.wait(0.2):
            pass
    finally:
        emulator.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
