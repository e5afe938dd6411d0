"""Shared test fixtures: where ``../shared`` is, and whether its absence skips or fails."""

import os
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
SHARED = Path(os.environ.get("HWMODEL_SHARED", REPO.parent / "shared")).resolve()
LLAMA4_TRACES = (SHARED / "traces" / "profiling_result" / "meta-llama"
                 / "Llama-4-Maverick-17B-128E-Instruct")
REFERENCE = SHARED / "reference"


def need_shared(*parts: str) -> Path:
    """Path under ``../shared``; skip the test when it is absent (fail under CI)."""
    path = SHARED.joinpath(*parts)
    if not path.exists():
        reason = (f"needs {path} (the real traces and reference outputs of ../shared); "
                  "set HWMODEL_SHARED to its location")
        if os.environ.get("HWMODEL_REQUIRE_SHARED"):
            pytest.fail(reason)
        pytest.skip(reason)
    return path


@pytest.fixture
def shared_dir() -> Path:
    return need_shared()


@pytest.fixture
def llama4_traces() -> Path:
    return need_shared("traces", "profiling_result", "meta-llama",
                       "Llama-4-Maverick-17B-128E-Instruct")


@pytest.fixture
def reference_dir() -> Path:
    return need_shared("reference")
