"""Where seglib finds what it ships (the experiment files, the notebooks, the embedded sample) and
where a study's folders go by default.

In a checkout (or an editable install) the shipped folders are the repository's own; a wheel
(`pip install .`) carries copies inside the package, read through importlib.resources.
"""
from __future__ import annotations

import importlib.resources
from pathlib import Path

from .errors import SeglibError

CHECKOUT = Path(__file__).resolve().parents[1]
SHIPPED = {"experiments": "experiments", "notebooks": "notebooks", "sample": "data/sample"}
MARKERS = {"experiments": "defaults.yaml", "notebooks": "02_experiment.ipynb", "sample": "classes.txt"}


def in_checkout() -> bool:
    """True when seglib runs from the repository (not from a copy in site-packages)."""
    return (CHECKOUT / "pyproject.toml").is_file() and (CHECKOUT / SHIPPED["experiments"] / MARKERS["experiments"]).is_file()


def shipped(name: str) -> Path:
    """The folder `name` (experiments | notebooks | sample): the checkout's, else the installed copy."""
    if in_checkout():
        return CHECKOUT / SHIPPED[name]
    folder = Path(str(importlib.resources.files("seglib") / "shipped" / SHIPPED[name]))
    if not (folder / MARKERS[name]).is_file():
        raise SeglibError(f"{folder}: seglib's {name} are missing from this installation; reinstall with `pip install .` "
                          "from the repository")
    return folder


def project_root() -> Path:
    """The folder that default study folders are relative to: the repository in a checkout (so a notebook
    opened in notebooks/ writes where the pipeline does), else the working directory."""
    return CHECKOUT if in_checkout() else Path.cwd()


def default_study_dir(profile: str) -> Path:
    """The pipeline's default output folder for a profile (the Makefile's OUT)."""
    return project_root() / "output" / profile


def run_name(experiment: str, profile: str, seed: int) -> str:
    """One name for a run folder, whoever trains it (the command line, the pipeline, a notebook)."""
    return f"{experiment}-{profile}-seed{seed}"
