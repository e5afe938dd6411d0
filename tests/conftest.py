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


#: Long tests in files owned by other areas, treated as ``slow`` until their owners mark them
#: with ``@pytest.mark.slow`` (85 s measured under load on the shared two-core machine).
def pytest_collection_modifyitems(config, items):
    """Skip tests marked ``slow`` unless ``HWMODEL_SLOW=1`` (``.ci/run`` sets it).

    The default ``make test`` stays under five minutes on a loaded two-core machine; the long
    end-to-end checks (README shell examples, full replays, Yosys area) run in CI.
    """
    if os.environ.get("HWMODEL_SLOW") == "1":
        return
    skip = pytest.mark.skip(reason="slow: set HWMODEL_SLOW=1 to run (.ci/run does)")
    for item in items:
        if "slow" in item.keywords:
            item.add_marker(skip)


@pytest.fixture(autouse=True, scope="session")
def _trace_cache(tmp_path_factory):
    """The replay's trace cache (``HWMODEL_TRACE_CACHE``) in a folder of the test session, so
    that tests never fill the user's."""
    os.environ.setdefault("HWMODEL_TRACE_CACHE", str(tmp_path_factory.mktemp("trace-cache")))


def subprocess_env(**extra: str) -> dict:
    """Environment for a CLI subprocess: this checkout's package first on ``PYTHONPATH``, the
    session's trace cache."""
    env = {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "PYTHONPATH": str(REPO)}
    if "HWMODEL_TRACE_CACHE" in os.environ:
        env["HWMODEL_TRACE_CACHE"] = os.environ["HWMODEL_TRACE_CACHE"]
    env.update(extra)
    return env
