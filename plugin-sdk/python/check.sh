#!/usr/bin/env bash
# Checks the Python SDK: generated stubs up to date, ruff format and lint, mypy, and the tests
# (which start real plugin processes on Unix sockets and call them over gRPC). Run setup.sh first.
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
repo="$(cd "$here/../.." && pwd)"
bin="$repo/.venv/bin"
examples="$repo/examples/python"
bare="$repo/bench/bare/python"
config="$here/pyproject.toml"

if [[ ! -x "$bin/ruff" || ! -x "$bin/mypy" || ! -x "$bin/pytest" ]]; then
  echo "the Python SDK's tools are missing: run $here/setup.sh" >&2
  exit 1
fi

echo "== generated stubs"
tmp="$(mktemp -d)"
trap 'rm -rf "$tmp"' EXIT
"$here/generate.sh" "$tmp/_proto"
if ! diff -r --exclude=__pycache__ "$tmp/_proto" "$here/hookvisor_plugin/_proto"; then
  echo "hookvisor_plugin/_proto is out of date: run $here/generate.sh" >&2
  exit 1
fi

echo "== ruff"
# From $here: ruff resolves the config's relative paths (the excluded stubs) against the cwd.
(cd "$here" && "$bin/ruff" format --check --config "$config" . "$examples" "$bare")
(cd "$here" && "$bin/ruff" check --config "$config" . "$examples" "$bare")

echo "== mypy"
(cd "$here" && "$bin/mypy" --config-file "$config")

echo "== pytest"
(cd "$here" && "$bin/python" -m pytest -q -p no:cacheprovider tests)
