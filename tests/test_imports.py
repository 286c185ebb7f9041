"""Importing the package has no side effects on the process."""

from __future__ import annotations

import json
import os
import pathlib
import subprocess
import sys

import pytest

ROOT = pathlib.Path(__file__).resolve().parents[1]

# Runs in a fresh interpreter: records the environment and matplotlib's backend
# (set to "template" through MPLBACKEND, so that selecting Agg would show),
# imports the package and plots, draws a figure, and records them again.
_PROBE = """
import json, os, sys
import matplotlib
import numpy as np
before_env, before_backend = dict(os.environ), matplotlib.get_backend()
import recola_sta
import recola_sta.analysis.plots
after_import = (dict(os.environ), matplotlib.get_backend())
recola_sta.analysis.plots.plot_valence(sys.argv[1], np.arange(8) / 4.0, np.linspace(-0.5, 0.5, 8))
after_plot = (dict(os.environ), matplotlib.get_backend())
print(json.dumps({
    "env_same_after_import": after_import[0] == before_env,
    "env_same_after_plot": after_plot[0] == before_env,
    "backends": [before_backend, after_import[1], after_plot[1]],
    "pyplot_loaded": "matplotlib.pyplot" in sys.modules,
}))
"""


@pytest.mark.slow
def test_importing_changes_neither_environment_nor_matplotlib_backend(tmp_path):
    env = {k: v for k, v in os.environ.items() if k != "TF_CPP_MIN_LOG_LEVEL"}
    env.update(PYTHONPATH=str(ROOT), MPLBACKEND="template")
    png = tmp_path / "valence.png"
    done = subprocess.run([sys.executable, "-c", _PROBE, str(png)], capture_output=True,
                          text=True, timeout=120, env=env, cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    result = json.loads(done.stdout.strip().splitlines()[-1])
    assert result["env_same_after_import"]
    assert result["env_same_after_plot"]
    assert [b.lower() for b in result["backends"]] == ["template"] * 3
    assert not result["pyplot_loaded"]
    assert png.read_bytes().startswith(b"\x89PNG")
