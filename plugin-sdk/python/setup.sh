#!/usr/bin/env bash
# Installs the Python SDK's pinned tools (requirements-dev.txt) and the SDK itself, editable, into
# the repository's venv (.venv at the repository root, created if missing, from the system's
# Python when there is one: sandboxed plugins run under uids of their own, which cannot reach a
# Python installed under a home directory). The example and the fixtures are plain scripts run
# by that venv's Python, so nothing else is built. Quick when nothing changed.
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
repo="$(cd "$here/../.." && pwd)"
venv="$repo/.venv"
pip=("$venv/bin/python" -m pip --disable-pip-version-check --no-input --quiet)

if [[ ! -x "$venv/bin/python" ]]; then
  if [[ -x /usr/bin/python3 ]]; then /usr/bin/python3 -m venv "$venv"; else python3 -m venv "$venv"; fi
fi
"${pip[@]}" install -r "$here/requirements-dev.txt"
# --no-deps: the runtime dependencies are pinned above; --no-build-isolation: build with the
# pinned setuptools already in the venv instead of fetching another one; compat mode: a plain
# path in a .pth file, which type checkers follow (the default import hook they cannot see).
# (From /, so the current directory cannot stand in for an installed package.)
installed="$(cd / && "$venv/bin/python" -c 'import hookvisor_plugin; print(hookvisor_plugin.__file__)' 2>/dev/null || true)"
if [[ "$installed" != "$here/hookvisor_plugin/__init__.py" ]]; then
  "${pip[@]}" install --no-deps --no-build-isolation --editable "$here" \
    --config-settings editable_mode=compat
fi
"$venv/bin/python" -c 'import grpc, google.protobuf, grpc_tools
assert grpc.__version__ == "1.85.1", grpc.__version__
assert google.protobuf.__version__ == "7.36.2", google.protobuf.__version__'
echo "python SDK ready: $venv/bin/python (hookvisor_plugin from $here)"
