"""Deprecated names that still work (and warn), and the workarounds of dependencies (gvtnet/compat.py,
app/compat.py): each test shows that its workaround is still needed, or that the private API it relies on
still exists, and fails once that is no longer so."""
from __future__ import annotations

import importlib
import subprocess
import sys

import pytest

from conftest import ROOT


def fresh_import(name: str):
    """Import `name` as if for the first time (a module warns only when it is first imported)."""
    sys.modules.pop(name, None)
    return importlib.import_module(name)


# ----------------------------------------------------------------------------------------------------
# Deprecated module names


def test_gvtnet_graph_is_an_alias_of_gvtnet_adjacency():
    from gvtnet import adjacency

    with pytest.warns(DeprecationWarning, match="gvtnet.adjacency"):
        graph = fresh_import("gvtnet.graph")
    assert graph.adjacency is adjacency.adjacency and graph.node_features is adjacency.node_features
    assert graph.chebyshev_distance is adjacency.chebyshev_distance


def test_gvtnet_infer_is_an_alias_of_gvtnet_upscale_files():
    from gvtnet import upscale_files

    with pytest.warns(DeprecationWarning, match="gvtnet.upscale_files"):
        infer = fresh_import("gvtnet.infer")
    assert infer.main is upscale_files.main and infer.image_files is upscale_files.input_output_paths


def test_python_m_gvtnet_infer_warns_and_runs_the_new_command():
    run = subprocess.run([sys.executable, "-W", "error::RuntimeWarning", "-m", "gvtnet.infer", "--help"], cwd=ROOT,
                         capture_output=True, text=True, timeout=120)
    assert run.returncode == 0 and "--photo" in run.stdout
    assert "DeprecationWarning" in run.stderr and "python -m gvtnet.upscale_files" in run.stderr
