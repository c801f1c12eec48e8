# mod_wasm: build, run and test entry points (the README names them).
#
#   make run    install what is missing, build, serve the examples on
#               http://127.0.0.1:8080 in the foreground
#   make test   install what is missing, build, run every test
#   make install / make deb   install the built module, or package it
#
# One cargo profile (release) for everything, so Wasmtime is built once.

CARGO        ?= cargo
APXS         ?= apxs
PYTHON       ?= python3
WASM_TARGET  := wasm32-wasip2
# Legacy mode (WasmModule) runs WASI preview1 core modules.
WASIP1_TARGET := wasm32-wasip1
# Guests build with the workspace's `guest` profile (small, stripped).
WASIP1_DIR   := target/$(WASIP1_TARGET)/guest
WASM_DIR     := target/$(WASM_TARGET)/guest
# Components written with guest-sdk, built by cargo for wasm32-wasip2.
SDK_GUESTS   := hello json-api streaming upload-hash static-files proxy wws-reply visits-cart jwt-checker
# Components written against WASI 0.3 with the wasip3 crate.
WASI03_GUESTS := hello-wasi03 security-headers json-rewrite
HOST_LIB     := target/release/libmod_wasm_host.a
MODULE       := target/apache/mod_wasm.so
# C guests: Debian's clang and wasi-libc (installed by scripts/install-deps).
C_GUEST_CFLAGS := --target=wasm32-wasi --sysroot=/usr -O2 -Wall -Werror -Wl,--strip-all
C_SOURCES    := $(wildcard mod_wasm/*.c)
C_HEADERS    := $(wildcard mod_wasm/*.h) host/include/mod_wasm_host.h
# Rust's standard library needs these from the system when linked statically.
RUST_LIBS    := -lgcc_s -lutil -lrt -lpthread -lm -ldl

.PHONY: all build deps host cli guests site module install uninstall deb run test unit e2e lint bench soak \
	fuzz header clean FORCE

all: build

build: deps host cli guests site module

# Debian packages and the pinned Rust toolchain with its wasm targets.
deps:
	@scripts/install-deps

host: $(HOST_LIB)
# Cargo decides what is stale; make only needs to see the new timestamp.
$(HOST_LIB): deps FORCE
	$(CARGO) build --release --locked -p mod-wasm-host

# The example site (examples/site): its static files, and routes made of
# the built examples.
site: guests
	rm -rf target/site
	mkdir -p target/site/api target/site/users
	cp -r examples/site/public target/site/
	cp $(WASM_DIR)/hello.wasm target/site/api/hello.wasm
	cp $(WASM_DIR)/wws_reply.wasm 'target/site/users/[id].wasm'

# The dev server, `mod_wasm serve ./site` (README "Dev server").
cli: target/release/mod_wasm
target/release/mod_wasm: deps FORCE
	$(CARGO) build --release --locked -p mod-wasm-cli

guests: deps $(WASM_DIR)/python_hello.wasm $(WASM_DIR)/python_hello_wasi03.wasm $(WASM_DIR)/js_hello.wasm \
	    $(WASM_DIR)/python_notes.wasm $(WASM_DIR)/js_notes.wasm target/cargo-component/hello.wasm \
	    $(WASM_DIR)/flask_app.wasm $(WASM_DIR)/hono_app.wasm
	$(CARGO) build --profile guest --locked --target $(WASM_TARGET) $(SDK_GUESTS:%=-p %) -p test-guest \
	    -p sdk-test-guest -p hostile-guest -p p3-test-guest -p state-test-guest -p middleware-test-guest $(WASI03_GUESTS:%=-p %)
	$(CARGO) build --profile guest --locked --target $(WASIP1_TARGET) -p legacy-hello -p cgi-echo \
	    -p list-dir -p legacy-test-guest -p hostile-cgi
	clang $(C_GUEST_CFLAGS) -o $(WASIP1_DIR)/c_cgi.wasm examples/c-cgi/cgi.c

# Python and JavaScript examples, with componentize-py (PyPI) and
# componentize-js (npm) fetched into target/tools on first use, built against
# the WIT this repository ships (wit/, world mod-wasm:host/guest, or
# mod-wasm:host/stateful-guest for the notes examples; for WASI 0.3,
# wit/wasi-0.3, world wasi:http/service@0.3.0).
GUEST_WIT := $(wildcard wit/*.wit wit/deps/*.wit)
GUEST_WIT_03 := $(wildcard wit/wasi-0.3/*.wit wit/wasi-0.3/deps/*.wit)
$(WASM_DIR)/python_hello.wasm: examples/python-hello/app.py scripts/build-foreign-guests Cargo.lock $(GUEST_WIT)
	scripts/build-foreign-guests python $@
$(WASM_DIR)/python_hello_wasi03.wasm: examples/python-hello-wasi03/app.py scripts/build-foreign-guests Cargo.lock \
	    $(GUEST_WIT_03)
	scripts/build-foreign-guests python-wasi03 $@
$(WASM_DIR)/js_hello.wasm: examples/js-hello/app.js scripts/build-foreign-guests Cargo.lock $(GUEST_WIT)
	scripts/build-foreign-guests js $@
$(WASM_DIR)/python_notes.wasm: examples/python-notes/app.py scripts/build-foreign-guests Cargo.lock $(GUEST_WIT)
	scripts/build-foreign-guests python-notes $@
$(WASM_DIR)/js_notes.wasm: examples/js-notes/app.js scripts/build-foreign-guests Cargo.lock $(GUEST_WIT)
	scripts/build-foreign-guests js-notes $@

# Existing apps, unchanged, built by the CLI's build commands as a user
# would (docs/existing-apps.md); the registry tools and the app's packages
# are fetched once into target/tools, then reused offline.
BUILD_TOOLS := MOD_WASM_TOOLS=$(CURDIR)/target/tools
APP_BUILD_DEPS := target/release/mod_wasm guest-sdk/toolchain.env $(GUEST_WIT)
$(WASM_DIR)/flask_app.wasm: $(wildcard examples/flask-app/*.py examples/flask-app/*.txt examples/flask-app/templates/*) \
	    guest-sdk/python/mod_wasm_wsgi.py $(APP_BUILD_DEPS)
	mkdir -p $(@D)
	$(BUILD_TOOLS) target/release/mod_wasm build-python app:app -r examples/flask-app/requirements.txt \
	    --path examples/flask-app -o $@
examples/hono-app/node_modules: examples/hono-app/package-lock.json
	cd examples/hono-app && npm ci --no-audit --no-fund --loglevel=error
	touch $@
$(WASM_DIR)/hono_app.wasm: examples/hono-app/app.js examples/hono-app/node_modules guest-sdk/js/fetch-adapter.js \
	    $(APP_BUILD_DEPS)
	mkdir -p $(@D)
	$(BUILD_TOOLS) target/release/mod_wasm build-js examples/hono-app/app.js -o $@

# The hello example built the other supported way, with cargo-component
# (wasm32-wasip1 plus the WASI adapter), to show guest-sdk works with both.
# Its own target directory keeps it apart from the legacy modules.
target/cargo-component/hello.wasm: FORCE
	scripts/install-cargo-component
	$(CARGO) component build --profile guest --locked -p hello --target-dir target/cargo-component/build
	cp target/cargo-component/build/$(WASIP1_TARGET)/guest/hello.wasm $@

# apxs compiles next to the sources; the result is copied to target/apache.
# apxs hands -Wl,X to libtool as X, which drops linker flags it does not
# know: -Wl,-Wl,X survives both.
module: $(MODULE)
$(MODULE): $(C_SOURCES) $(C_HEADERS) mod_wasm/exports.map $(HOST_LIB)
	$(APXS) -c -o mod_wasm/mod_wasm.so -I host/include -Wc,-Wall -Wc,-Werror \
	    -Wl,-Wl,--version-script=mod_wasm/exports.map -Wl,-Wl,-z,nodelete \
	    $(C_SOURCES) $(HOST_LIB) $(RUST_LIBS)
	mkdir -p $(dir $@)
	# A rename, not an overwrite: an Apache still running the old module
	# keeps its file (overwriting a mapped .so crashes it).
	cp mod_wasm/.libs/mod_wasm.so $@.new && mv -f $@.new $@

# Installing and packaging (README "Installing") take the module and the
# hello example as the build left them, named by their absolute paths:
# $(MODULE)'s own rule runs scripts/install-deps and cargo (through the
# FORCEd $(HOST_LIB)) every time, which `make deb` has no need of, nor
# `sudo make install` as a root that may have no Rust toolchain. Only what
# is missing is built.
BUILT_MODULE := $(CURDIR)/$(MODULE)
BUILT_HELLO  := $(CURDIR)/$(WASM_DIR)/hello.wasm
$(BUILT_MODULE):
	$(MAKE) module
$(BUILT_HELLO):
	$(MAKE) guests

# `make install [DESTDIR=...]`: the module into Apache's module directory,
# through apxs (without -a: it edits no configuration), and, where Apache
# is Debian's (mods-available exists), wasm.load and wasm.conf for
# `a2enmod wasm`. A wasm.conf changed locally is kept; the new one goes
# beside it as wasm.conf.new. (apxs's "dlname not found" is what it says of
# any plain .so: harmless.)
APACHE_MODDIR    = $(shell $(APXS) -q LIBEXECDIR)
APACHE_SYSCONFDIR = $(shell $(APXS) -q SYSCONFDIR)
install: $(BUILT_MODULE)
	install -d $(DESTDIR)$(APACHE_MODDIR)
	$(APXS) -S LIBEXECDIR=$(DESTDIR)$(APACHE_MODDIR) -i -n wasm $(MODULE)
	@set -e; mods=$(DESTDIR)$(APACHE_SYSCONFDIR)/mods-available; \
	if [ -d $(APACHE_SYSCONFDIR)/mods-available ]; then \
	    install -d $$mods; \
	    sed 's|/usr/lib/apache2/modules|$(APACHE_MODDIR)|' packaging/debian/wasm.load \
	        > $$mods/wasm.load.tmp; \
	    chmod 644 $$mods/wasm.load.tmp; mv $$mods/wasm.load.tmp $$mods/wasm.load; \
	    if [ -e $$mods/wasm.conf ] && ! cmp -s packaging/debian/wasm.conf $$mods/wasm.conf; then \
	        install -m 644 packaging/debian/wasm.conf $$mods/wasm.conf.new; \
	        echo "kept your $$mods/wasm.conf; the new one is wasm.conf.new"; \
	    else \
	        install -m 644 packaging/debian/wasm.conf $$mods/wasm.conf; \
	    fi; \
	    echo "installed $$mods/wasm.load and wasm.conf: a2enmod wasm, then restart Apache"; \
	fi

# `make uninstall [DESTDIR=...]`: undoes `make install`. The module and
# wasm.load go, and wasm.conf unless the admin changed it (then it stays,
# as dpkg keeps a changed conffile); an `a2enmod wasm` is undone first, so
# that no dangling link stops Apache's next start. Restart Apache after.
uninstall:
	@set -e; mods=$(DESTDIR)$(APACHE_SYSCONFDIR)/mods-available; \
	enabled=$(DESTDIR)$(APACHE_SYSCONFDIR)/mods-enabled; \
	for f in wasm.load wasm.conf; do \
	    if [ -L $$enabled/$$f ]; then rm -f $$enabled/$$f; echo "disabled $$f"; fi; \
	done; \
	rm -f $(DESTDIR)$(APACHE_MODDIR)/mod_wasm.so $$mods/wasm.load $$mods/wasm.conf.new; \
	if [ -e $$mods/wasm.conf ] && ! cmp -s packaging/debian/wasm.conf $$mods/wasm.conf; then \
	    echo "kept your changed $$mods/wasm.conf"; \
	else \
	    rm -f $$mods/wasm.conf; \
	fi; \
	echo "removed mod_wasm from $(DESTDIR)$(APACHE_MODDIR); restart Apache"

# `make deb`: target/debian/libapache2-mod-wasm_<version>_<arch>.deb, the
# version being host/Cargo.toml's (packaging/build-deb says how).
DEB_VERSION := $(shell sed -n '/^\[package\]/,/^\[/s/^version *= *"\(.*\)"/\1/p' host/Cargo.toml)
DEB_ARCH    := $(shell dpkg --print-architecture 2>/dev/null)
DEB         := target/debian/libapache2-mod-wasm_$(DEB_VERSION)_$(DEB_ARCH).deb
deb: $(DEB)
$(DEB): $(BUILT_MODULE) $(BUILT_HELLO) packaging/build-deb $(wildcard packaging/debian/*) \
        README.md $(wildcard docs/*.md docs/directives/*.md) host/Cargo.toml
	rm -f target/debian/libapache2-mod-wasm_*.deb
	APXS=$(APXS) packaging/build-deb $(DEB_VERSION) $(MODULE) $(WASM_DIR)/hello.wasm $@

run: build
	scripts/serve-examples

test: build
	$(CARGO) fmt --all --check
	$(CARGO) test --release --locked -p mod-wasm-host -p mod-wasm-rules -p mod-wasm-guest -p mod-wasm-cli -p jwt-checker -p json-rewrite
	$(PYTHON) -m pytest tests/e2e

lint: deps
	$(PYTHON) scripts/check-module-cycles host/src rules/src cli/src guest-sdk/src
	$(CARGO) clippy --release --locked -p mod-wasm-host -p mod-wasm-rules -p mod-wasm-cli --all-targets -- -D warnings
	$(CARGO) clippy --profile guest --locked --target $(WASM_TARGET) -p mod-wasm-guest $(SDK_GUESTS:%=-p %) \
	    -p test-guest -p sdk-test-guest -p hostile-guest -p p3-test-guest -p state-test-guest -p middleware-test-guest $(WASI03_GUESTS:%=-p %) \
	    -- -D warnings
	$(CARGO) clippy --release --locked -p mod-wasm-guest -p mod-wasm-guest-macro --all-targets -- -D warnings
	$(CARGO) clippy --profile guest --locked --target $(WASIP1_TARGET) -p legacy-hello -p cgi-echo \
	    -p list-dir -p legacy-test-guest -p hostile-cgi -- -D warnings

# Throughput and latency against Apache's static path, event and prefork,
# plus the host's in-process cost per request (not part of `make test`).
bench: build
	$(CARGO) build --release --locked -p mod-wasm-host --example instantiate
	$(PYTHON) scripts/bench

# Mixed traffic with faults, graceful restarts and a killed child against
# each MPM, and what survived it (scripts/soak; not part of `make test`).
soak: build
	$(PYTHON) scripts/soak

# Each fuzz target for FUZZ_SECONDS (default 60) with libFuzzer
# (scripts/fuzz; fuzz/ is a workspace of its own, built with coverage
# instrumentation).
fuzz: deps
	scripts/fuzz

# Regenerates the committed C header after a change to host/src/ffi.
header:
	MOD_WASM_UPDATE_HEADER=1 $(CARGO) build --release -p mod-wasm-host

clean:
	$(CARGO) clean
	rm -rf mod_wasm/.libs mod_wasm/*.lo mod_wasm/*.la mod_wasm/*.o mod_wasm/*.slo
