#!/usr/bin/env bash
# Validate the compose files offline against the Compose Specification JSON schema.
#
# Uses check-jsonschema (PyPI) with its vendored schema `vendor.compose-spec`: no network, no
# Docker engine. Exits non-zero if a file is invalid or the validator is missing.
# This only checks the files' structure (unknown keys, wrong types); it starts nothing.
#
# Usage: scripts/validate-compose.sh [FILE...]   (default: the compose files in the repo root)
set -euo pipefail

repo_root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"

if [ -x "$repo_root/.venv/bin/check-jsonschema" ]; then
  validator="$repo_root/.venv/bin/check-jsonschema"
elif command -v check-jsonschema >/dev/null 2>&1; then
  validator="$(command -v check-jsonschema)"
else
  echo "validate-compose: check-jsonschema not found; install it with: pip install 'check-jsonschema>=0.39'" >&2
  exit 2
fi

if [ "$#" -eq 0 ]; then
  set -- "$repo_root/docker-compose.yml" "$repo_root/docker-compose.atlas-local.yml" \
    "$repo_root/docker-compose.autoembed.yml" "$repo_root/docker-compose.test-commands.yml"
fi

"$validator" --builtin-schema vendor.compose-spec "$@"

# If a Docker CLI with the compose plugin is available, let it resolve the files too (also
# offline: `config` parses and interpolates without contacting an engine).
if docker compose version >/dev/null 2>&1; then
  for f in "$@"; do
    docker compose -f "$f" config --quiet
  done
  echo "validate-compose: docker compose config -q passed too"
fi
