"""The device side must never pull torch, TensorFlow or matplotlib in (not even transitively)."""

from __future__ import annotations

import json
import pkgutil
import subprocess
import sys

from conftest import REPO_ROOT

HEAVY = ("torch", "tensorflow", "matplotlib", "pandas")
EDGE_PACKAGES = ("firmware_bridge", "edge_runtime")


def edge_modules() -> list[str]:
    names = []
    for package in EDGE_PACKAGES:
        names.append(package)
        path = REPO_ROOT / package
        for info in pkgutil.walk_packages([str(path)], prefix=f"{package}."):
            names.append(info.name)
    return names


def imported_heavy(code: str) -> list[str]:
    probe = code + f"\nimport sys, json\nprint(json.dumps(sorted(m for m in sys.modules if m.split('.')[0] in {HEAVY!r})))"
    out = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, cwd=REPO_ROOT, check=True)
    return json.loads(out.stdout.strip().splitlines()[-1])


def test_every_edge_module_imports_without_heavy_libraries():
    modules = edge_modules()
    assert "edge_runtime.record" in modules and len(modules) > 5
    code = "import importlib\n" + "\n".join(f"importlib.import_module({name!r})" for name in modules)
    assert imported_heavy(code) == []


def test_cli_help_does_not_import_torch():
    assert imported_heavy("from elvmass.cli import main\nmain(['--help'])") == []


def test_probe_detects_a_heavy_import():
    # The check above would be worthless if the probe could not see an import happen.
    assert "json" not in HEAVY
    assert imported_heavy("import scipy.signal") == []
    assert "torch" in imported_heavy("import torch")


def test_device_side_never_imports_upward():
    # Arrows point one way: the device packages import nothing from training, quantization or evaluation.
    modules = edge_modules()
    code = "import importlib\n" + "\n".join(f"importlib.import_module({name!r})" for name in modules)
    code += "\nimport sys, json\nprint(json.dumps(sorted(m for m in sys.modules if m.split('.')[0] in ('training', 'quantization', 'evaluation'))))"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=REPO_ROOT, check=True)
    assert json.loads(out.stdout.strip().splitlines()[-1]) == []
