#!/usr/bin/env bash
# Installs everything hwmodel needs on a fresh Debian machine: the Graphviz renderer (Debian's
# `graphviz`, for `dot`) and the Python package with its test extras. Safe to run again.
set -euo pipefail
cd "$(dirname "$0")/.."
if ! command -v dot >/dev/null 2>&1; then
    sudo=""
    [ "$(id -u)" -eq 0 ] || sudo="sudo"
    $sudo apt-get update -qq
    DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq graphviz >/dev/null
fi
python3 -m pip install -q --disable-pip-version-check -e ".[test]"
