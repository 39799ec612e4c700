"""Run llama-cpp-python's own OpenAI-compatible server with weight repacking off.

llama.cpp's C++ server has `--no-repack` for this; the Python server does not expose it.
Why it is needed: on CPUs with AMX (Sapphire Rapids and later, which CI and these machines
have), llama-cpp-python 0.3.36 built with native flags repacks Q4_1 weights into AMX
buffers, and its first multi-token prompt then segfaults in llama_decode (one-token
prompts pass, so the server looks healthy until a real request arrives). Everything else
is the unmodified server: `python tests/llama_cpp_no_repack.py --model ... --port ...`.
"""

import sys

import llama_cpp
import llama_cpp.llama
from llama_cpp.server.__main__ import main

default_model_params = llama_cpp.llama_model_default_params


def model_params_without_repacking() -> llama_cpp.llama_model_params:
    params = default_model_params()
    params.use_extra_bufts = False
    return params


llama_cpp.llama.llama_cpp.llama_model_default_params = model_params_without_repacking

if __name__ == "__main__":
    sys.argv[0] = "llama_cpp.server"
    main()
