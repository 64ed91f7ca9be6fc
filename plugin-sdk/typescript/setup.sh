#!/usr/bin/env bash
# Installs the TypeScript SDK's and example's dependencies (pinned, from the committed lockfiles,
# into their own node_modules) and builds the SDK, its test fixtures and the example plugins:
#   plugin-sdk/typescript/dist/src/           the SDK (package @hookvisor/plugin; not on npm yet:
#                                             package.sh builds its tarball)
#   plugin-sdk/typescript/dist/test/fixtures/ misbehave.js, sample.js (executable, #!/usr/bin/env node)
#   examples/typescript/dist/secret-guard.js  the example (executable, #!/usr/bin/env node)
# Quick when nothing changed: npm ci runs only when a lockfile changed, tsc builds incrementally.
set -euo pipefail

sdk="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
example="$(cd "$sdk/../../examples/typescript" && pwd)"

# npm ci, unless node_modules was installed from this very lockfile.
install() {
  local dir="$1" stamp="$1/node_modules/.installed-from-lock"
  local want
  want="$(sha256sum "$dir/package-lock.json" | cut -d' ' -f1)"
  if [[ -f "$stamp" && "$(cat "$stamp")" == "$want" ]]; then
    return
  fi
  # No install scripts: none of these packages needs one (protobufjs's only checks its CLI).
  (cd "$dir" && npm ci --no-audit --no-fund --ignore-scripts --loglevel=error)
  echo "$want" >"$stamp"
}

build() {
  (cd "$1" && node_modules/.bin/tsc -p tsconfig.json --incremental)
}

install "$sdk"
build "$sdk"
# Plugins are started by path, so the entry points must be executable.
chmod +x "$sdk"/dist/test/fixtures/*.js
# The example links to the SDK's directory (file:), so it installs and builds after it.
install "$example"
build "$example"
chmod +x "$example/dist/secret-guard.js"
