# The README's two commands. Both bootstrap .venv on first use (and after a pin changes).
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed-stamp
PACKAGES := $(patsubst %/pyproject.toml,%,$(wildcard packages/*/pyproject.toml))

.PHONY: demo test lint typecheck browser bench clean dist

$(STAMP): constraints.txt requirements-dev.txt $(foreach p,$(PACKAGES),$(p)/pyproject.toml)
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --disable-pip-version-check -c constraints.txt -r requirements-dev.txt \
		$(foreach p,$(PACKAGES),-e $(p))
	touch $(STAMP)

# The restaurant agent (LangGraph, offline) on the embedded SQLite gateway, then `agenitry serve`
# on the same database until Ctrl-C so its verify links open. examples/gateway_demo.py is the HTTP-only tour.
demo: $(STAMP)
	$(BIN)/python examples/langgraph_restaurant.py --serve

lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

typecheck: $(STAMP)
	$(BIN)/mypy

# Two workers, one a core: every test makes its own databases, ports and folders, and the
# suite takes about 8 minutes instead of 14 on a 2-core machine (TEST_WORKERS=0 runs it in one process).
TEST_WORKERS ?= 2
test: lint typecheck browser
	$(BIN)/pytest -n $(TEST_WORKERS)

# The verify page is tested in a real headless Chromium (Debian's package); as root we install it.
browser:
	@command -v chromium >/dev/null 2>&1 || { \
		if [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then \
			apt-get update -q && DEBIAN_FRONTEND=noninteractive apt-get install -y -q chromium; \
		else \
			echo "make test needs Chromium for the verify-page test: run 'sudo apt-get install chromium'" >&2; exit 1; \
		fi; }

# Every benchmark, each printing its figures beside a baseline from the same run and the
# targets of docs/performance.md (about 11-14 minutes; BENCH_ARGS=--quick for a short run).
BENCHES := decision batch growth rate http scaleout client log
bench: $(STAMP)
	@for name in $(BENCHES); do \
		echo; echo "== bench/bench_$$name.py $(BENCH_ARGS)"; \
		$(BIN)/python bench/bench_$$name.py $(BENCH_ARGS) || exit 1; \
	done

# Every distribution's wheel and sdist, built from this checkout into $(DIST), for installing
# without a package index: pip install dist/agenitry-*.whl dist/agenitry_gateway-*.whl
DIST ?= dist
dist: $(STAMP)
	rm -rf $(DIST)
	@for package in $(PACKAGES); do \
		$(BIN)/python -m build --quiet --no-isolation --outdir $(DIST) $$package || exit 1; \
	done
	@ls $(DIST)

clean:
	rm -rf $(VENV) $(DIST) var .pytest_cache .mypy_cache .ruff_cache .hypothesis
