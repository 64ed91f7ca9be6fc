#!/usr/bin/env bash
# Installs a hookvisor package on this Debian machine as an operator would, checks what it put
# where, runs the installed hookvisor on the installed configuration, then purges the package
# and checks that nothing is left:
#
#   packaging/test-install.sh target/package-test/hookvisor_VERSION_ARCH.deb
#
# Root only, and alone: it installs a system package, adds a system user and uses the system's
# own paths (/etc/hookvisor, /run/hookvisor, /var/lib/hookvisor). It refuses to run where a
# hookvisor is installed, by package or by hand, and purges its own install on any exit.
# `make package-test` builds the package from the debug binaries and runs this.
set -euo pipefail

fail() { echo "test-install: FAILED: $*" >&2; exit 1; }
refuse() { echo "test-install: refusing to run: $*" >&2; exit 1; }
checks=0
ok() { checks=$((checks + 1)); echo "ok: $*"; }

[ $# -eq 1 ] && [ -f "$1" ] || { echo "usage: packaging/test-install.sh HOOKVISOR.deb" >&2; exit 64; }
deb=$(realpath "$1")
[ "$(id -u)" -eq 0 ] || refuse "it installs a package: run it as root"
command -v dpkg >/dev/null || refuse "dpkg not found: this test needs a Debian machine"

socket=/run/hookvisor/hookvisor.sock
config=/etc/hookvisor/hookvisor.toml
plugins=(deny-list path-guard approval-gate session-tagger allow-all)
configured=(deny-list path-guard approval-gate session-tagger)
# What the package installs or makes: none of it may exist before, so that a real install (the
# package, or the README's by hand) is never touched.
owned=(/usr/bin/hookvisor /usr/lib/hookvisor /etc/hookvisor /usr/share/doc/hookvisor /run/hookvisor
  /usr/lib/systemd/system/hookvisor.service /usr/lib/systemd/system/hookvisor.socket
  /lib/systemd/system/hookvisor.service /lib/systemd/system/hookvisor.socket
  /etc/systemd/system/hookvisor.service /etc/systemd/system/hookvisor.socket)

# Installed, or removed with its configuration left: either way dpkg knows it.
installed() {
  local status
  status=$(dpkg-query -W -f='${db:Status-Status}' hookvisor 2>/dev/null || true)
  [ -n "$status" ] && [ "$status" != not-installed ]
}
leftovers() {
  find /etc/systemd/system /var/lib/systemd/deb-systemd-helper-enabled \
    /var/lib/systemd/deb-systemd-helper-masked -name 'hookvisor.*' 2>/dev/null || true
}

if installed; then
  refuse "a hookvisor package is installed here ($(dpkg-query -W -f='${Version} ${db:Status-Status}' hookvisor)); this test installs and purges its own"
fi
for path in "${owned[@]}"; do
  [ ! -e "$path" ] || refuse "$path exists: a hookvisor is installed here by hand"
done
getent passwd hookvisor >/dev/null && refuse "a user hookvisor exists (the package's postrm would remove it)"
getent group hookvisor >/dev/null && refuse "a group hookvisor exists (the package's postrm would remove it)"
[ -z "$(leftovers)" ] || refuse "systemd has hookvisor units or their state: $(leftovers | tr '\n' ' ')"

work=$(mktemp -d)
serve_pid=""
set_aside=""

cleanup() {
  local status=$?
  trap - EXIT INT TERM
  if [ -n "$serve_pid" ] && kill -0 "$serve_pid" 2>/dev/null; then
    kill -TERM "$serve_pid" 2>/dev/null || true
    local deadline=$((SECONDS + 10))
    while kill -0 "$serve_pid" 2>/dev/null && [ "$SECONDS" -lt "$deadline" ]; do sleep 0.1; done
    kill -KILL "$serve_pid" 2>/dev/null || true
    wait "$serve_pid" 2>/dev/null || true
  fi
  if installed; then
    dpkg --purge hookvisor >"$work/cleanup-purge.log" 2>&1 ||
      { echo "test-install: dpkg --purge hookvisor failed:" >&2; cat "$work/cleanup-purge.log" >&2; }
  fi
  if [ -n "$set_aside" ]; then
    if [ -e /var/lib/hookvisor ]; then
      echo "test-install: /var/lib/hookvisor is back: the one set aside stays in $set_aside" >&2
    else
      mv "$set_aside/hookvisor" /var/lib/hookvisor && rmdir "$set_aside"
    fi
  fi
  rm -rf "$work"
  exit "$status"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

# Any `hookvisor serve` run as root without state_dir (the README's example, say) keeps its
# plugins' state in /var/lib/hookvisor, which the purge removes: set such a directory aside and
# put it back afterwards, unless a running plugin keeps its state there.
if [ -e /var/lib/hookvisor ]; then
  for environ in /proc/[0-9]*/environ; do
    if grep -qsz '^HOOKVISOR_PLUGIN_STATE_DIR=/var/lib/hookvisor/' "$environ"; then
      pid=${environ#/proc/}
      refuse "/var/lib/hookvisor is in use by a running plugin (pid ${pid%/environ})"
    fi
  done
  set_aside=$(mktemp -d /var/lib/hookvisor.set-aside-by-test-install.XXXXXX)
  mv /var/lib/hookvisor "$set_aside/"
  echo "test-install: /var/lib/hookvisor set aside in $set_aside until the end"
fi

# wait_for WHAT SECONDS COMMAND...: runs COMMAND every 0.1 s until it succeeds, failing after
# SECONDS (or as soon as hookvisor serve has exited) with WHAT it waited for.
wait_for() {
  local what=$1 limit=$2 deadline=$((SECONDS + $2))
  shift 2
  until "$@"; do
    [ "$SECONDS" -lt "$deadline" ] || fail "$what: not within ${limit} s"
    if [ -n "$serve_pid" ] && ! kill -0 "$serve_pid" 2>/dev/null; then
      fail "$what: hookvisor serve exited: $(cat "$work/serve.log")"
    fi
    sleep 0.1
  done
}

# --- Install.
dpkg -i "$deb" >"$work/install.log" 2>&1 || fail "dpkg -i $deb: $(cat "$work/install.log")"
installed || fail "dpkg -i succeeded but hookvisor is not installed"
ok "dpkg -i $(basename "$deb")"
dpkg-query -L hookvisor >"$work/files"

# --- Files.
[ -x /usr/bin/hookvisor ] || fail "/usr/bin/hookvisor is not an executable"
for plugin in "${plugins[@]}"; do
  [ -x "/usr/lib/hookvisor/plugins/$plugin" ] || fail "/usr/lib/hookvisor/plugins/$plugin is not an executable"
done
for unit in hookvisor.service hookvisor.socket; do
  [ -f "/usr/lib/systemd/system/$unit" ] || fail "/usr/lib/systemd/system/$unit is missing"
done
[ "$(stat -c '%a %U %G' $config)" = "600 root root" ] || fail "$config is $(stat -c '%a %U %G' $config), not 600 root root"
[ "$(stat -c '%a %U' /etc/hookvisor/deny-list.txt)" = "644 root" ] || fail "deny-list.txt is $(stat -c '%a %U' /etc/hookvisor/deny-list.txt)"
conffiles=$(dpkg-query -W -f='${Conffiles}' hookvisor)
for conffile in $config /etc/hookvisor/deny-list.txt; do
  grep -q "^ $conffile " <<<"$conffiles" || fail "$conffile is not a conffile: $conffiles"
done
ok "files: /usr/bin/hookvisor, ${#plugins[@]} plugins in /usr/lib/hookvisor/plugins, 2 units, $config (0600) and deny-list.txt as conffiles"

# --- The user and group, and the units: enabled, not started.
IFS=: read -r _ _ uid gid _ home shell < <(getent passwd hookvisor) || fail "no user hookvisor"
[ "$uid" -lt 1000 ] || fail "hookvisor's uid $uid is not a system uid"
[ "$(getent group hookvisor | cut -d: -f3)" = "$gid" ] || fail "hookvisor's group is gid $gid, not the group hookvisor"
[ "$home" = /nonexistent ] && [ "$shell" = /usr/sbin/nologin ] || fail "hookvisor has home $home and shell $shell"
ok "system user and group hookvisor (uid $uid, gid $gid, no home, no shell)"
link=/etc/systemd/system/multi-user.target.wants/hookvisor.service
# deb-systemd-helper links to /lib/systemd/system, the same directory with merged /usr.
[ "$(realpath -e "$link" 2>/dev/null)" = "$(realpath /usr/lib/systemd/system/hookvisor.service)" ] ||
  fail "$link: $(readlink "$link" || echo missing)"
[ ! -e /etc/systemd/system/sockets.target.wants/hookvisor.socket ] || fail "hookvisor.socket is enabled"
[ ! -e /run/hookvisor ] || fail "/run/hookvisor exists after dpkg -i: something started hookvisor"
ok "hookvisor.service enabled (multi-user.target.wants), hookvisor.socket not, nothing started"

# --- Installing the same package again (an upgrade's path through the maintainer scripts)
# keeps the user and the enabled unit.
dpkg -i "$deb" >"$work/reinstall.log" 2>&1 || fail "dpkg -i again: $(cat "$work/reinstall.log")"
[ "$(id -u hookvisor)" = "$uid" ] || fail "reinstalling changed hookvisor's uid from $uid to $(id -u hookvisor)"
[ -e "$link" ] || fail "reinstalling disabled hookvisor.service"
ok "dpkg -i again: same user, unit still enabled"

# --- The installed units and configuration.
if command -v systemd-analyze >/dev/null; then
  systemd-analyze verify --man=no /usr/lib/systemd/system/hookvisor.socket \
    /usr/lib/systemd/system/hookvisor.service >"$work/verify.log" 2>&1 ||
    fail "systemd-analyze verify: $(cat "$work/verify.log")"
  ! grep hookvisor. "$work/verify.log" || fail "systemd-analyze verify warns about the installed units"
  ok "systemd-analyze verify: both installed units"
else
  echo "skipped: systemd-analyze verify (systemd-analyze not found: Debian package systemd; make tools installs it)"
fi
out=$(/usr/bin/hookvisor check-config --config $config 2>&1) || fail "check-config: $out"
[ "$out" = ok ] || fail "check-config said: $out"
ok "hookvisor check-config --config $config"

# --- The installed binary on the installed configuration, as root (as the unit runs it).
/usr/bin/hookvisor serve --config $config >"$work/serve.log" 2>&1 &
serve_pid=$!
all_ready() {
  /usr/bin/hookvisor status --socket $socket --json >"$work/status.json" 2>/dev/null &&
    python3 - "$work/status.json" "${configured[@]}" <<'EOF'
import json, sys
plugins = json.load(open(sys.argv[1]))["plugins"]
states = {p["name"]: p["state"] for p in plugins}
sys.exit(0 if states == {name: "ready" for name in sys.argv[2:]} else 1)
EOF
}
wait_for "${#configured[@]} plugins ready on $socket" 60 all_ready
ok "hookvisor serve: ${configured[*]} ready ($SECONDS s so far)"
# The sandbox's decision: each plugin under a uid of its own from plugin_uids, never the
# package's user, owning its state directory under the unit's StateDirectory=.
python3 - "$work/status.json" "$uid" <<'EOF' || fail "sandbox: $(cat "$work/status.json")"
import json, os, sys
plugins = json.load(open(sys.argv[1]))["plugins"]
uids = set()
for p in plugins:
    uid = p["sandbox"]["uid"]
    assert p["sandbox"]["enabled"] and uid is not None, p
    assert 70000 <= uid <= 70999 and uid != int(sys.argv[2]), p
    state = os.stat(f"/var/lib/hookvisor/plugins/{p['name']}")
    assert state.st_uid == uid and state.st_mode & 0o777 == 0o700, (p["name"], state)
    uids.add(uid)
assert len(uids) == len(plugins), uids
EOF
ok "sandbox: a uid of its own per plugin from 70000-70999, owning /var/lib/hookvisor/plugins/NAME (0700)"
/usr/bin/hookvisor status --socket $socket >"$work/status.txt" || fail "hookvisor status: $(cat "$work/status.txt")"
ok "hookvisor status --socket $socket"

set +e
/usr/bin/hookvisor call --socket $socket tool exec --params '{"command":"rm -rf /"}' >"$work/call.txt" 2>&1
code=$?
set -e
[ "$code" -eq 2 ] || fail "call exec 'rm -rf /': exit $code, not 2 (blocked): $(cat "$work/call.txt")"
grep -q "deny pattern 'rm -rf /'" "$work/call.txt" || fail "the block is not deny-list's: $(cat "$work/call.txt")"
ok "hookvisor call tool exec {\"command\":\"rm -rf /\"}: blocked by deny-list"
set +e
/usr/bin/hookvisor call --socket $socket tool exec --params '{"command":"ls"}' >"$work/call.txt" 2>&1
code=$?
set -e
[ "$code" -eq 3 ] || fail "call exec 'ls': exit $code, not 3 (approval required): $(cat "$work/call.txt")"
ok "hookvisor call tool exec {\"command\":\"ls\"}: approval required by approval-gate"

kill -TERM "$serve_pid"
deadline=$((SECONDS + 30))
while kill -0 "$serve_pid" 2>/dev/null; do
  [ "$SECONDS" -lt "$deadline" ] || fail "hookvisor serve still runs 30 s after SIGTERM"
  sleep 0.1
done
set +e
wait "$serve_pid"
code=$?
set -e
serve_pid=""
[ "$code" -eq 0 ] || fail "hookvisor serve exited $code after SIGTERM: $(cat "$work/serve.log")"
ok "SIGTERM: hookvisor serve stopped, exit 0"

# --- Purge: nothing left.
dpkg --purge hookvisor >"$work/purge.log" 2>&1 || fail "dpkg --purge hookvisor: $(cat "$work/purge.log")"
! installed || fail "hookvisor is still known to dpkg after --purge"
while read -r path; do
  [ -d "$path" ] && [ ! -L "$path" ] && continue
  [ ! -e "$path" ] && [ ! -L "$path" ] || fail "$path is still there after --purge"
done <"$work/files"
for path in "${owned[@]}" /var/lib/hookvisor; do
  [ ! -e "$path" ] || fail "$path is still there after --purge"
done
! getent passwd hookvisor >/dev/null || fail "the user hookvisor is still there after --purge"
! getent group hookvisor >/dev/null || fail "the group hookvisor is still there after --purge"
[ -z "$(leftovers)" ] || fail "systemd state left after --purge: $(leftovers | tr '\n' ' ')"
ok "dpkg --purge hookvisor: no file, directory, user, group or unit state left"

echo "test-install: all $checks checks passed in $SECONDS s"
