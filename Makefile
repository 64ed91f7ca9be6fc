# The two commands a newcomer needs (README.md):
#   make demo   build hookvisor and the example plugins, run the scripted demo
#   make test   install what the tests need (Python, Node and Go packages, inside the checkout)
#               and run every test
# and, for the performance figures (docs/performance.md):
#   make bench  build in release (and the go-plugin peer, with Go) and run `hookvisor bench`
.PHONY: demo test lint venv tools reachable bench sdks fuzz soak dist package-test

SHELL := bash
.SHELLFLAGS := -eu -o pipefail -c

VENV := .venv
PYTHON := $(VENV)/bin/python

demo:
	cargo build --release --locked -p hookvisor-cli -p hookvisor-examples
	./target/release/hookvisor demo

# BENCH_ARGS: extra flags, e.g. BENCH_ARGS="--json" or "--params-bytes 65536 --plugins 1,4,8,16".
bench:
	cargo build --release --locked -p hookvisor-cli -p hookvisor-examples
	@if command -v go >/dev/null; then bench/goplugin/build.sh target/release && bench/bare/go/build.sh target/go; \
	else echo "go not found: the go-plugin comparison and the bare grpc-go server are skipped"; fi
	./target/release/hookvisor bench $(BENCH_ARGS)

# From the system's Python when there is one: plugins run under uids of their own (the sandbox),
# and a Python installed under a home directory (pyenv's, say) is out of their reach.
SYSTEM_PYTHON := $(shell test -x /usr/bin/python3 && echo /usr/bin/python3 || echo python3)

$(PYTHON):
	$(SYSTEM_PYTHON) -m venv $(VENV)

venv: $(PYTHON)
	$(PYTHON) -m pip install --quiet --disable-pip-version-check -r tests/python/requirements.txt

# Programs the tests run: systemd-socket-activate (socket activation), setpriv and prlimit (a
# second uid, descriptor limits), dpkg-shlibdeps (the Debian package's dependencies). Debian
# ships them in systemd, util-linux and dpkg-dev.
tools:
	@command -v systemd-socket-activate >/dev/null || { apt-get update -qq && apt-get install -y -qq systemd; }
	@{ command -v setpriv && command -v prlimit; } >/dev/null || { apt-get update -qq && apt-get install -y -qq util-linux; }
	@command -v dpkg-shlibdeps >/dev/null || { apt-get update -qq && apt-get install -y -qq dpkg-dev; }

# The tests run plugins as root would, each under a uid of its own (the sandbox), so every
# directory above the checkout must let other uids pass (search permission, not listing). On CI
# (CI=true, a machine of its own) a missing search bit is added; anywhere else this says which.
reachable: tools
	@if ! setpriv --reuid=65534 --regid=65534 --clear-groups test -x "$(CURDIR)" 2>/dev/null; then \
	  dir="$(CURDIR)"; \
	  while [ "$$dir" != "/" ]; do \
	    case "$$(stat -c %A "$$dir")" in *x|*t) ;; *) \
	      if [ "$${CI:-}" = true ]; then echo "make test: chmod o+x $$dir (plugin uids must reach the checkout)"; chmod o+x "$$dir"; \
	      else echo "make test: $$dir cannot be searched by other uids, so sandboxed plugins cannot reach this checkout: clone it under a directory others can pass (/opt, /srv), or chmod o+x $$dir"; exit 1; fi ;; \
	    esac; \
	    dir="$$(dirname "$$dir")"; \
	  done; \
	fi

# The plugin SDKs in Python, TypeScript and Go: each installs its own dependencies (pinned, inside
# the checkout) and builds its examples and test fixtures; its check.sh checks generated code,
# formatting and lint, and runs its own tests.
SDKS := python typescript go

sdks:
	@for sdk in $(SDKS); do plugin-sdk/$$sdk/setup.sh; done

lint:
	cargo fmt --all --check
	cargo clippy --locked --workspace --all-targets -- -D warnings
	@out="$$(gofmt -l bench/goplugin bench/bare/go)"; test -z "$$out" || { echo "gofmt: $$out"; exit 1; }
	cd bench/goplugin && go vet ./...
	cd bench/bare/go && go vet ./...

# No incremental caches in a test run (gigabytes on a clean checkout, and CI builds once).
test: export CARGO_INCREMENTAL = 0
test: venv tools reachable sdks lint
	@# The go-plugin peer of the benchmark (Go, from the Go module proxy).
	cd bench/goplugin && go test ./...
	@# Open Policy Agent for the OPA bridge's test (tests/tests/opa.rs): built once into target/go/.
	examples/opa/build.sh
	@for sdk in $(SDKS); do echo "== plugin-sdk/$$sdk/check.sh"; plugin-sdk/$$sdk/check.sh; done
	@# Black-box tests spawn the real binaries: build them all first, with every target, so that
	@# features unify as in `cargo test` below (a dev-dependency turns on tokio's test-util) and
	@# the dependencies are built once, not twice.
	cargo build --locked --workspace --all-targets
	@# The OpenClaw adapter against the real OpenClaw gateway (Node 24 from PyPI, openclaw from
	@# npm, both inside the checkout) and the hookvisor just built.
	examples/openclaw/check.sh
	HOOKVISOR_TEST_PYTHON=$(abspath $(PYTHON)) cargo test --locked --workspace 2>&1 \
		| tee target/test-output.log
	@# Last and alone: the Debian package installed on this machine, run, and purged.
	$(MAKE) --no-print-directory package-test
	@# cargo prints one summary per test binary; close with the total.
	@awk '/^test result:/ { p += $$4; f += $$6 } END { printf "tests: %d passed, %d failed\n", p, f }' \
		target/test-output.log

# Coverage-guided fuzzing of everything that parses outside input (fuzz/: cargo-fuzz, libFuzzer,
# the nightly toolchain): FUZZ_SECONDS per target. What the fuzzer keeps goes to
# fuzz/corpus/TARGET/ (minimise with `cd fuzz && cargo +nightly fuzz cmin TARGET` before
# committing); `make test` replays those corpora on the stable toolchain. Not part of `make test`.
FUZZ_SECONDS ?= 300
FUZZ_TARGETS := json plugin_response config audit_line

fuzz:
	@command -v cargo-fuzz >/dev/null || cargo install cargo-fuzz --locked --version 0.13.2
	@for target in $(FUZZ_TARGETS); do \
	  echo "== fuzz $$target ($(FUZZ_SECONDS) s)"; \
	  (cd fuzz && cargo +nightly fuzz run $$target -- -max_total_time=$(FUZZ_SECONDS)) || exit 1; \
	done

# The chaos soak (tests/examples/soak.rs): a million verdicts (SOAK_VERDICTS) while plugins are
# killed, stopped, slow, answering garbage, reloaded and restarted; prints fail-opens (must be
# 0), orphans, leaked descriptors and RSS, and fails when one does not hold. Not part of `make test`.
soak:
	cargo build --release --locked -p hookvisor-cli -p hookvisor-tests --bins --examples
	./target/release/examples/soak

# The release tarball and Debian package of the same tree (docs/install.md):
# target/dist/hookvisor-VERSION-ARCH.tar.gz and target/dist/hookvisor_VERSION_ARCH.deb.
dist:
	cargo build --release --locked -p hookvisor-cli -p hookvisor-examples
	rm -rf target/dist
	packaging/build.sh release target/dist

# The Debian package of the debug binaries, installed on this machine with dpkg -i, checked, run
# and purged (packaging/test-install.sh). It uses the system's own paths and adds a system
# user: root only, on Debian, and alone; `make test` runs it last. The build is `make test`'s
# own (same targets, same features), so after it this compiles nothing.
package-test: export CARGO_INCREMENTAL = 0
package-test: tools
	cargo build --locked --workspace --all-targets
	rm -rf target/package-test
	packaging/build.sh debug target/package-test
	packaging/test-install.sh target/package-test/hookvisor_*.deb
