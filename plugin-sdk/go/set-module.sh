#!/usr/bin/env bash
# Renames the Go SDK's module. Its path is set in one place, this directory's go.mod; scripts
# read it from there, and Go needs it written out in imports, in the examples' require and
# replace lines and in the docs, which this rewrites: every file of the repository naming the
# old path (outside target/, .git/, .venv/, node_modules/, fuzz/). For a release that publishes
# the SDK under the repository's public path (then drop the "not published yet" notes by hand).
# Usage: set-module.sh NEW_PATH
set -euo pipefail

[ $# -eq 1 ] || { echo "usage: $0 NEW_PATH (e.g. github.com/OWNER/hookvisor/plugin-sdk/go)" >&2; exit 64; }
here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
repo=$(cd "$here/../.." && pwd)
old=$(awk '$1 == "module" { print $2; exit }' "$here/go.mod")
new=$1
[ "$new" != "$old" ] || { echo "the module is already $new" >&2; exit 0; }

mapfile -t files < <(grep -rlF --exclude-dir=target --exclude-dir=.git --exclude-dir=.venv \
	--exclude-dir=node_modules --exclude-dir=fuzz -e "$old" "$repo")
# sed's pattern and replacement with their special characters escaped.
pattern=$(printf '%s' "$old" | sed 's/[][\.*^$/]/\\&/g')
replacement=$(printf '%s' "$new" | sed 's/[\/&]/\\&/g')
for file in "${files[@]}"; do
	sed -i "s/$pattern/$replacement/g" "$file"
	echo "${file#"$repo"/}"
done
gofmt -w "$here" "$repo/examples/go"
