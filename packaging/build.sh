#!/usr/bin/env bash
# Packages binaries cargo has built into a tarball and a Debian package with the same tree
# (docs/install.md):
#
#   packaging/build.sh PROFILE OUTDIR        PROFILE: release or debug (target/PROFILE)
#
# writes OUTDIR/hookvisor-VERSION-ARCH.tar.gz and OUTDIR/hookvisor_VERSION_ARCH.deb. `make dist`
# builds the release binaries and calls it; `make package-test` packages the debug binaries
# `make test` has built, so testing the package needs no release build.
#
# The .deb is made by dpkg-deb from a staged tree, with maintainer scripts written after
# debhelper's (packaging/debian/). cargo-deb would do the same from Cargo.toml metadata, but
# nothing installs it: every CI run would first compile it (`cargo install --locked`, minutes on
# two cores) to save a few lines of shell. dpkg-deb is Debian's own tool and on every Debian
# machine (dpkg is essential); dpkg-shlibdeps (dpkg-dev, which build-essential pulls in) works
# out the library dependencies as a Debian build would.
set -euo pipefail

usage() { echo "usage: packaging/build.sh release|debug OUTDIR" >&2; exit 64; }
[ $# -eq 2 ] || usage
profile=$1
out=$2
case "$profile" in release | debug) ;; *) usage ;; esac

root=$(cd "$(dirname "$0")/.." && pwd)
bin="${CARGO_TARGET_DIR:-$root/target}/$profile"
# The example plugins the package ships (demo-crash and demo-hang are the demo's, not a
# deployment's).
plugins=(deny-list path-guard approval-gate session-tagger allow-all)

for tool in dpkg-deb dpkg-shlibdeps strip; do
  command -v "$tool" >/dev/null || {
    echo "build.sh: $tool not found (Debian packages dpkg-dev and binutils)" >&2
    exit 69
  }
done
flag=""
[ "$profile" = release ] && flag=" --release"
for program in hookvisor "${plugins[@]}"; do
  [ -x "$bin/$program" ] || {
    echo "build.sh: $bin/$program is missing: run cargo build --locked$flag -p hookvisor-cli -p hookvisor-examples first" >&2
    exit 66
  }
done

version=$("$bin/hookvisor" --version | awk '{ print $2 }')
arch=$(dpkg --print-architecture)
name="hookvisor-$version-$arch"
# Every file's time is the last commit's, so the same commit packs the same bytes.
export SOURCE_DATE_EPOCH="${SOURCE_DATE_EPOCH:-$(git -C "$root" log -1 --format=%ct 2>/dev/null || date +%s)}"

work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
# dpkg-shlibdeps expects the tree at debian/PACKAGE (with its DEBIAN/) below a directory holding
# debian/control.
tree="$work/debian/hookvisor"

# The tree. Units go to /usr/lib/systemd/system, which systemd searches on every Debian (with
# merged /usr it is /lib/systemd/system too). The binaries lose their debug information (the
# release profile keeps it for profiling), not their symbols: a backtrace still names functions.
install -d -m 0755 "$tree/usr/bin" "$tree/usr/lib/hookvisor/plugins" \
  "$tree/usr/lib/systemd/system" "$tree/etc/hookvisor" "$tree/usr/share/doc/hookvisor"
install -m 0755 "$bin/hookvisor" "$tree/usr/bin/hookvisor"
for plugin in "${plugins[@]}"; do
  install -m 0755 "$bin/$plugin" "$tree/usr/lib/hookvisor/plugins/$plugin"
done
strip --strip-debug "$tree/usr/bin/hookvisor" "$tree"/usr/lib/hookvisor/plugins/*
install -m 0644 "$root/examples/systemd/hookvisor.service" "$root/examples/systemd/hookvisor.socket" \
  "$tree/usr/lib/systemd/system/"
# The configuration is root's alone: plugins run under uids of their own and must not read it.
install -m 0600 "$root/packaging/hookvisor.toml" "$tree/etc/hookvisor/hookvisor.toml"
install -m 0644 "$root/examples/deny-list.txt" "$tree/etc/hookvisor/deny-list.txt"
install -m 0644 "$root/packaging/debian/copyright" "$tree/usr/share/doc/hookvisor/copyright"

mkdir -p "$out"
out=$(cd "$out" && pwd)
tarball="$out/$name.tar.gz"
# Release: Debian's default compression (xz) for the package, gzip -9 for the tarball. Debug (a
# test's package, 70 MB unpacked, thrown away after): the fastest, so a test run spends seconds,
# not a minute, compressing.
if [ "$profile" = release ]; then
  gzip_level=-9 deb_compression=(-Zxz)
else
  gzip_level=-1 deb_compression=(-Zgzip -z1)
fi
deb="$out/hookvisor_${version}_${arch}.deb"

# The tarball: the same tree under hookvisor-VERSION-ARCH/, owned by root.
tar --create --sort=name --owner=0 --group=0 --numeric-owner --mtime="@$SOURCE_DATE_EPOCH" \
  --directory="$tree" --transform="s,^\\.,$name," . | gzip -n "$gzip_level" >"$tarball"

# The package: control files beside the same tree.
mkdir -p "$work/debian"
printf 'Source: hookvisor\n\nPackage: hookvisor\nArchitecture: any\n' >"$work/debian/control"
installed_size=$(du -sk --apparent-size "$tree" | cut -f1)
install -d -m 0755 "$tree/DEBIAN"
shlibs=$(cd "$work" && dpkg-shlibdeps -O debian/hookvisor/usr/bin/hookvisor debian/hookvisor/usr/lib/hookvisor/plugins/*)
shlibs=${shlibs#shlibs:Depends=}
sed -e "s/@VERSION@/$version/" -e "s/@ARCH@/$arch/" -e "s/@SHLIBS_DEPENDS@/$shlibs/" \
  -e "s/@INSTALLED_SIZE@/$installed_size/" "$root/packaging/debian/control" >"$tree/DEBIAN/control"
install -m 0644 "$root/packaging/debian/conffiles" "$tree/DEBIAN/conffiles"
for script in postinst prerm postrm; do
  install -m 0755 "$root/packaging/debian/$script" "$tree/DEBIAN/$script"
done
dpkg-deb --root-owner-group "${deb_compression[@]}" --build "$tree" "$deb" >/dev/null

ls -l "$tarball" "$deb"
