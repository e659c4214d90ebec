import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from seglib.data import SAMPLE_ROOT

REPO = Path(__file__).resolve().parents[1]
SHARED = Path(os.environ.get("SEGLIB_SHARED_DATA", REPO.parent / "shared" / "data" / "pascal-part"))


@pytest.fixture(scope="session")
def sample_root() -> Path:
    return SAMPLE_ROOT


@pytest.fixture
def sample_copy(tmp_path) -> Path:
    """A writable copy of the embedded sample, for breaking things."""
    dst = tmp_path / "data"
    shutil.copytree(SAMPLE_ROOT, dst)
    return dst


@pytest.fixture(scope="session")
def npy_copy(tmp_path_factory) -> Path:
    """The sample in the original distribution's format: gt_masks/<id>.npy."""
    dst = tmp_path_factory.mktemp("npy") / "data"
    shutil.copytree(SAMPLE_ROOT, dst)
    for png in (dst / "gt_masks").glob("*.png"):
        np.save(png.with_suffix(".npy"), np.array(Image.open(png)))
        png.unlink()
    return dst


@pytest.fixture(scope="session")
def shared_root() -> Path:
    if not (SHARED / "train_id.txt").is_file():
        pytest.skip(f"the full dataset is not at {SHARED}")
    return SHARED


@pytest.fixture(params=["0", "1"], ids=["no-native-bf16", "native-bf16"])
def native_bf16(request, monkeypatch) -> bool:
    """Both precision paths on any CPU: SEGLIB_NATIVE_BF16 hides native bf16 (0) or claims it (1),
    for this process and the command-line subprocesses it starts."""
    from seglib import runtime

    monkeypatch.setenv("SEGLIB_NATIVE_BF16", request.param)
    runtime._SAID.clear()
    return request.param == "1"


def run_cli(*args, env=None, timeout=600):
    """python -m seglib ARGS -> CompletedProcess (text)."""
    return subprocess.run([sys.executable, "-m", "seglib", *map(str, args)], capture_output=True, text=True,
                          check=False, cwd=REPO, env={**os.environ, **(env or {})}, timeout=timeout)


@pytest.fixture
def cli(capsys, monkeypatch):
    """python -m seglib ARGS in this process (no second interpreter importing torch: seconds per call):
    -> CompletedProcess (text). The subprocess form, run_cli, stays for the checks of a fresh process."""
    from seglib.cli import main

    def call(*args, env=None):
        capsys.readouterr()
        with monkeypatch.context() as scoped:  # env for this call only, as for a subprocess
            for key, value in (env or {}).items():
                scoped.setenv(key, value)
            code = main(list(map(str, args)))
        out, err = capsys.readouterr()
        return subprocess.CompletedProcess(["seglib", *map(str, args)], code, out, err)

    return call
