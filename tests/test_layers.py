"""Layers: the system model and the units' parameters, twins and RTL designs load no simulator;
only a unit's simulation harness (its ``sim.py``) does. The imports run in a fresh
interpreter, so what another test imported does not hide a dependency."""

import json
import subprocess
import sys

from conftest import subprocess_env

SIMULATORS = ("amaranth.sim", "hwmodel.rtlsim", "hwmodel.tb")
UNITS = ("atu", "pdu", "local_cp", "global_cp")
MODEL = ("hwmodel.system.replay", "hwmodel.system",
         *(f"hwmodel.components.{unit}.{part}" for unit in UNITS
           for part in ("params", "twin", "node", "rtl")),
         "hwmodel.components.global_cp.allocator_rtl")


def _loaded_simulators(modules) -> dict[str, list[str]]:
    """Per module, imported in turn in one fresh interpreter: the simulator modules loaded
    once it is imported."""
    code = ("import importlib, json, sys\nseen = {}\n"
            f"for name in {list(modules)!r}:\n"
            "    importlib.import_module(name)\n"
            f"    seen[name] = [m for m in {SIMULATORS!r} if m in sys.modules]\n"
            "print(json.dumps(seen))")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          env=subprocess_env(), check=True)
    return json.loads(done.stdout)


def test_the_model_imports_no_simulator():
    """``hwmodel.system.replay`` first: the system model, then each unit's parts."""
    assert _loaded_simulators(MODEL) == {name: [] for name in MODEL}


def test_a_units_harness_is_where_the_simulator_loads():
    """The check above can see a simulator: the harness beside the RTL loads all three."""
    harness = "hwmodel.components.pdu.sim"
    assert _loaded_simulators([harness]) == {harness: list(SIMULATORS)}
