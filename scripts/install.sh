#!/usr/bin/env bash
# Installs everything hwmodel needs on a fresh Debian machine: the Graphviz renderer (Debian's
# `graphviz`, for `dot`), the C++ compiler (Debian's `g++`, which builds the units' compiled
# CXXRTL simulators, hwmodel.rtlsim) and the Python package with its test extras; then builds
# what makes each hwmodel process start faster (bytecode of the package's modules, and the
# replay's kernels compiled ahead of time for this machine, docs/replay.md "Start-up of a
# process"). Safe to run again: the kernels are built once per version of the sources
# (HWMODEL_AOT=off skips them), and a failed build is one line and leaves numba's JIT.
set -euo pipefail
cd "$(dirname "$0")/.."
missing=""
command -v dot >/dev/null 2>&1 || missing="$missing graphviz"
command -v g++ >/dev/null 2>&1 || missing="$missing g++"
if [ -n "$missing" ]; then
    sudo=""
    [ "$(id -u)" -eq 0 ] || sudo="sudo"
    $sudo apt-get update -qq
    DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq $missing >/dev/null
fi
python3 -m pip install -q --disable-pip-version-check -e ".[test]"
# Bytecode: without it (PYTHONDONTWRITEBYTECODE, a read-only checkout) every process compiles
# hwmodel's modules from source again.
python3 -m compileall -q hwmodel >/dev/null || echo "note: no bytecode written for hwmodel"
python3 -m hwmodel.aot --install
