# The handful of commands a contributor needs; .ci/run calls the same ones.
PYTHON ?= python3
# `cargo test` links the test binary against libpython (the extension-module
# feature is off there), so the loader must find it.
PYLIBDIR := $(shell $(PYTHON) -c 'import sysconfig; print(sysconfig.get_config_var("LIBDIR"))')
export LD_LIBRARY_PATH := $(PYLIBDIR):$(LD_LIBRARY_PATH)

.PHONY: demo install test test-deps test-rust test-corpus test-python lint bench bench-smoke bench-deps

install:            ## build the Rust extension and install vega-dag with its test extras
	$(PYTHON) -m pip install --quiet '.[test]'

demo: install       ## the main job: build the example API and deploy it to 24 local regions
	vega-dag deploy examples/shop-api
	vega-dag status examples/shop-api

test: install test-deps test-rust test-python   ## install, then run every test

# diffoscope, which `vega-dag drift` adds to its reports when installed (a
# Debian package; without its hundreds of recommended format tools), and wrk,
# the load generator of the regions' metrics and request-log tests.
test-deps:
	command -v diffoscope >/dev/null || (apt-get update -qq && \
		apt-get install -y -qq --no-install-recommends diffoscope-minimal >/dev/null) || \
		echo "note: diffoscope could not be installed; its test will be skipped"
	command -v wrk >/dev/null || (apt-get update -qq && apt-get install -y -qq wrk >/dev/null)
	@# `ip` (netns, veth, bridges) for the multi-host tests (tests/multihost), run as root.
	command -v ip >/dev/null || (apt-get update -qq && apt-get install -y -qq iproute2 >/dev/null)

test-rust:
	cargo test --quiet

# The corpus checks of the Rust core against the interpreter's own stdlib:
# every .pyc canonicalises stably, every import matches Python's ast.
STDLIB := $(shell $(PYTHON) -c 'import sysconfig; print(sysconfig.get_paths()["stdlib"])')
test-corpus:
	$(PYTHON) -m compileall -q $(STDLIB) >/dev/null 2>&1 || true
	VEGA_DAG_PYC_CORPUS=$(STDLIB) VEGA_DAG_IMPORTS_CORPUS=$(STDLIB) VEGA_DAG_PYTHON=$(PYTHON) \
		cargo test --quiet --release --test pyc_corpus --test imports_corpus -- --ignored

test-python:
	$(PYTHON) -m pytest

lint:
	cargo fmt --all -- --check
	cargo clippy --quiet --all-targets -- -D warnings
	$(PYTHON) -m ruff check python tests benches
	$(PYTHON) -m ruff format --check python tests benches
	$(PYTHON) -m mypy
	$(PYTHON) -m mypy.stubtest vega_dag._core --allowlist .stubtest-allowlist --mypy-config-file pyproject.toml

bench-deps:         ## the peer tools the benchmarks compare against (Debian packages)
	command -v b3sum >/dev/null || (apt-get update -qq && apt-get install -y -qq b3sum)
	command -v wrk >/dev/null || (apt-get update -qq && apt-get install -y -qq wrk)

bench: install bench-deps   ## full benchmark run; figures go to .benchmarks/latest.json
	$(PYTHON) -m pytest benches --benchmark-enable --benchmark-json=.benchmarks/latest.json -p no:randomly
	$(PYTHON) benches/report.py .benchmarks/latest.json

bench-smoke: bench-deps     ## every benchmark once, on a small slice, so they do not rot
	VEGA_BENCH_SMOKE=1 $(PYTHON) -m pytest benches --benchmark-disable -q
