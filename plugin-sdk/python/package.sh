#!/usr/bin/env bash
# Builds the Python SDK's wheel and sdist (the generated gRPC stubs inside) into OUT_DIR, by
# default dist/ beside this script (gitignored), and prints their paths, one a line. Uses the
# pinned `build` and setuptools of the repository's venv (setup.sh), without build isolation, so
# nothing is downloaded. `hookvisor-plugin` is not on PyPI yet: install the wheel by its path,
# `pip install OUT_DIR/hookvisor_plugin-VERSION-py3-none-any.whl` (its dependencies come from PyPI).
#
# Usage: package.sh [OUT_DIR]
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
repo="$(cd "$here/../.." && pwd)"
python="$repo/.venv/bin/python"
out="${1:-$here/dist}"

if [[ ! -x "$python" ]] || ! "$python" -c 'import build, setuptools' 2>/dev/null; then
  echo "the Python SDK's build tools are missing: run $here/setup.sh" >&2
  exit 1
fi

mkdir -p "$out"
out="$(cd "$out" && pwd)"
stage="$(mktemp -d)"
trap 'rm -rf "$stage"' EXIT

# From a copy: setuptools writes its egg-info and build/ beside pyproject.toml, which would leave
# them in the checkout and let two builds at once trip over each other.
mkdir "$stage/src"
tar -C "$here" --exclude=__pycache__ -cf - pyproject.toml README.md hookvisor_plugin |
  tar -C "$stage/src" -xf -

# The sdist first, then the wheel built from the unpacked sdist: a file missing from the sdist
# is missing from the wheel too, and the check below finds it.
if ! (cd "$stage/src" && "$python" -m build --no-isolation --outdir "$stage/dist" .) \
  >"$stage/build.log" 2>&1; then
  cat "$stage/build.log" >&2
  echo "building the Python SDK's packages failed (output above)" >&2
  exit 1
fi

wheel=("$stage"/dist/*.whl)
sdist=("$stage"/dist/*.tar.gz)
"$python" - "${wheel[0]}" "${sdist[0]}" <<'EOF'
"""Both artifacts hold the sources, the generated stubs and the typing marker."""

import sys
import tarfile
import zipfile

wanted = [
    "hookvisor_plugin/__init__.py",
    "hookvisor_plugin/py.typed",
    "hookvisor_plugin/_proto/hookvisor/v1/hookvisor_pb2.py",
    "hookvisor_plugin/_proto/hookvisor/v1/hookvisor_pb2.pyi",
    "hookvisor_plugin/_proto/hookvisor/v1/hookvisor_pb2_grpc.py",
]
wheel, sdist = sys.argv[1:]
with zipfile.ZipFile(wheel) as z:
    in_wheel = set(z.namelist())
with tarfile.open(sdist) as t:
    # An sdist's members sit under NAME-VERSION/.
    in_sdist = {m.name.split("/", 1)[1] for m in t.getmembers() if "/" in m.name}
for path, names in ((wheel, in_wheel), (sdist, in_sdist)):
    missing = [w for w in wanted if w not in names]
    if missing:
        sys.exit(f"{path} lacks {', '.join(missing)}")
EOF

for artifact in "${sdist[0]}" "${wheel[0]}"; do
  mv -f "$artifact" "$out/"
  echo "$out/$(basename "$artifact")"
done
