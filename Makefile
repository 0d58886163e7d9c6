# Two commands matter: `make run` (the local gateway) and `make test` (the whole suite).
# Both create .venv if it is missing and install the project into it; `make test` also makes
# sure redis-server is installed (scripts/ensure-redis: apt-get on Debian/Ubuntu).
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
# the sources setup.py compiles with mypyc (extproc/native.py lists them): an edit rebuilds
NATIVE_SRC := $(shell $(PYTHON) -c "import runpy; print(' '.join('extproc/' + m.split('.', 1)[1].replace('.', '/') + '.py' for m in runpy.run_path('extproc/native.py')['MODULES']))")

.PHONY: run test lint bench compose-config kubernetes-config clean

$(STAMP): pyproject.toml setup.py extproc/native.py $(NATIVE_SRC)
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip
	$(BIN)/python -m pip install -q -e '.[test]'
	@touch $(STAMP)

run: $(STAMP)
	$(BIN)/extproc up

# the whole suite on the compiled hot path, then the unit tests again on the pure-Python
# fallback (EXTPROC_PURE=1): both must pass
test: $(STAMP)
	bash scripts/ensure-redis
	$(BIN)/ruff check .
	$(BIN)/pytest -q
	EXTPROC_PURE=1 $(BIN)/pytest -q tests/unit

lint: $(STAMP)
	$(BIN)/ruff check .

bench: $(STAMP)
	$(BIN)/python bench/run.py --rounds 3

# re-render the Envoy config docker compose mounts (a test checks it is current)
compose-config: $(STAMP)
	$(BIN)/extproc render-envoy --place compose -o envoy/compose.yaml

# re-render the Envoy config of the Kubernetes sidecar overlay (a test checks it is current)
kubernetes-config: $(STAMP)
	$(BIN)/extproc render-envoy --place kubernetes-sidecar \
	  --config deploy/kubernetes/base/gateway.yaml -o deploy/kubernetes/overlays/sidecar/envoy.yaml

clean:
	rm -rf $(VENV) .run .pytest_cache .ruff_cache *.egg-info build extproc/_native_build.py
	find extproc -name '*.so' -delete
