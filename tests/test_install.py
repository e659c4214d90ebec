"""A non-editable install (pip install .) runs the commands from any folder: the experiment files,
the notebooks and the embedded sample travel inside the package."""
import os
import shutil
import subprocess
import sys

import pytest
from conftest import REPO


@pytest.fixture(scope="module")
def installed(tmp_path_factory):
    target, source = tmp_path_factory.mktemp("site"), tmp_path_factory.mktemp("src") / "seglib"
    # from a copy of the checkout: an in-tree build would leave build/ and *.egg-info in the repository
    shutil.copytree(REPO, source, ignore=shutil.ignore_patterns(".git", ".venv", "runs", "output", "executed", "build",
                                                                "*.egg-info", "__pycache__", "results", "report", "figures"))
    proc = subprocess.run([sys.executable, "-m", "pip", "install", "--no-deps", "--no-build-isolation",
                           "--target", str(target), str(source)], check=True, capture_output=True, text=True, timeout=600)
    assert "project.license" not in proc.stdout + proc.stderr  # no wall of setuptools deprecation text
    return target


def test_a_wheel_install_trains_the_smoke_experiment_from_another_folder(installed, tmp_path):
    env = {**os.environ, "PYTHONPATH": str(installed)}
    env.pop("SEGLIB_DATA", None)
    where = subprocess.run([sys.executable, "-c", "import seglib.paths as p; print(p.in_checkout(), p.shipped('experiments'))"],
                           cwd=tmp_path, env=env, capture_output=True, text=True, check=True)
    assert where.stdout.startswith("False ") and str(installed) in where.stdout  # not the checkout's files
    for name in ("experiments/defaults.yaml", "notebooks/03_report.ipynb", "data/sample/classes.txt"):
        assert (installed / "seglib" / "shipped" / name).is_file(), name
    proc = subprocess.run([sys.executable, "-m", "seglib", "train", "--experiment", "deeplabv3plus_pretrained",
                           "--profile", "smoke"], cwd=tmp_path, env=env, capture_output=True, text=True, timeout=600,
                          check=False)
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert (tmp_path / "runs" / "deeplabv3plus_pretrained-smoke-seed0" / "metrics.json").is_file()
