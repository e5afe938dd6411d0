#!/usr/bin/env bash
# Installs everything hwmodel needs on a fresh Debian machine: the Graphviz renderer (Debian's
# `graphviz`, for `dot`), the C++ compiler (Debian's `g++`, which builds the units' compiled
# CXXRTL simulators, hwmodel.rtlsim) and the Python package with its test extras. Safe to run
# again.
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
