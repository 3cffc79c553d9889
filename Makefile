# The two commands a newcomer needs: `make grade` and `make test`. Both set themselves up.
PYTHON ?= python3
VENV   := .venv
PY     := $(VENV)/bin/python
# The interpreter the environment is made with (version and path), recorded in the stamp's
# name: another PYTHON (`make grade PYTHON=python3.13`) makes the environment again.
PYTHON_ID := $(shell $(PYTHON) -c 'import sys; print(sys.version.split()[0], sys.executable)' 2>/dev/null | cksum | cut -d' ' -f1)
STAMP  := $(VENV)/.installed-$(PYTHON_ID)
# Every assignment with a rubric in solutions/ and a folder of submissions.
ASSIGNMENTS := $(sort $(foreach t,$(wildcard solutions/*.toml),$(if $(wildcard submissions/$(basename $(notdir $(t)))/.),$(basename $(notdir $(t))))))
OUT    ?= feedback
JOBS   ?=
# Beside a checkout on the course's machines MNIST sits in ../shared; elsewhere it is
# downloaded once into ~/.cache/backprop-grader.
MNIST_DIR ?= $(wildcard $(CURDIR)/../shared/data/mnist)
export MNIST_DIR

.PHONY: setup grade test test-fast test-core assignments check-assignments validate bench lint clean serve

# A failed set-up leaves no environment behind (the next `make` starts afresh); another
# interpreter replaces the environment, a changed pyproject.toml updates it in place.
$(STAMP): pyproject.toml
	@$(PYTHON) -c 'import sys; sys.exit(sys.version_info < (3, 11))' 2>/dev/null || { \
	  echo "make: '$(PYTHON)' is not Python 3.11 or newer (or not found); choose one, e.g." \
	       "make grade PYTHON=python3.12" >&2; exit 2; }
	@if [ -d $(VENV) ] && [ ! -e $(STAMP) ]; then \
	  echo "make: $(VENV) was made with another Python, or not finished: making it again"; \
	  rm -rf $(VENV); fi
	@{ [ -x $(PY) ] || $(PYTHON) -m venv $(VENV); } && \
	  $(PY) -m pip install --quiet --upgrade pip && \
	  $(PY) -m pip install --quiet -e '.[dev]' || { \
	  rm -rf $(VENV); echo "make: setting up $(VENV) with $(PYTHON) failed (see above);" \
	       "nothing was left behind" >&2; exit 1; }
	@rm -f $(VENV)/.installed-*
	@touch $(STAMP)

setup: $(STAMP)

# An OUT folder that `make grade` makes inside the checkout ignores itself in git (as
# feedback/ is ignored): students' results never land in a commit.
grade: setup
	@case "$(abspath $(OUT))/" in "$(CURDIR)"/?*) [ -d "$(OUT)" ] || \
	  { mkdir -p "$(OUT)" && echo '*' > "$(OUT)/.gitignore"; };; esac
	@for a in $(ASSIGNMENTS); do \
	  echo "== $$a"; \
	  $(PY) -m grader grade --assignment $$a --out $(OUT)/$$a $(if $(JOBS),--jobs $(JOBS)) submissions/$$a || exit $$?; \
	done
	@echo "Open $(OUT)/<assignment>/index.html for the class overview and each student's page."

# Tests run on every core (pytest-xdist; TEST_JOBS=1 for one process): most of them wait on
# sandboxed notebooks, so two cores take the suite from about 8 minutes to about 3.
TEST_JOBS ?= auto
PYTEST := $(PY) -m pytest -n $(TEST_JOBS) --dist worksteal

test: setup check-assignments validate
	$(PYTEST)

test-fast: setup
	$(PYTEST) -m "not slow and not browser"

# What must hold on every machine (reference full marks, template zero, MNIST, hostile
# submissions, the canary): .ci/run repeats it with the bundled bwrap and as an ordinary user.
test-core: setup
	$(PYTEST) -m core -p no:cacheprovider

assignments: setup
	$(PY) -m grader assign

check-assignments: setup
	$(PY) -m grader assign --check

# Every rubric and solution notebook in solutions/: schema, signatures, markers, the reference's
# full marks and the template's zero (cached: an unchanged re-run takes about a second).
validate: setup
	$(PY) -m grader validate

bench: setup
	$(PY) -m benchmarks.bench
	$(PY) -m benchmarks.serve

# The course server on localhost: SQLite in serve-data/, the example roster, both assignments;
# it prints the instructor's one-time sign-in link. SERVE_ARGS for more (--port, --database...).
SERVE_ARGS ?=
serve: setup
	$(PY) -m grader serve --data serve-data $(SERVE_ARGS)

# nbgrader's autograde beside this grader on the same submissions. nbgrader goes into its own
# environment (.venv-peer, from PyPI, with the project's NumPy), never into $(VENV).
.PHONY: bench-peer
bench-peer: setup
	@test -x .venv-peer/bin/nbgrader || { $(PYTHON) -m venv .venv-peer && \
	  .venv-peer/bin/pip install --quiet nbgrader \
	    "numpy==$$($(PY) -c 'import numpy; print(numpy.__version__)')"; }
	$(PY) -m benchmarks.peer --nbgrader .venv-peer/bin/nbgrader

# ruff, then mypy on grader/ (strict but where pyproject.toml's [tool.mypy] says otherwise)
lint: setup
	$(PY) -m ruff check grader tests benchmarks
	$(PY) -m mypy

clean:
	rm -rf $(VENV) $(OUT) test-artifacts .pytest_cache .mypy_cache serve-data
