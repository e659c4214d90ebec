"""A wheel of seglib carries the folders its commands read (seglib.paths.SHIPPED: the experiment
files, the notebooks, the embedded sample) under seglib/shipped/; a checkout reads its own."""
import shutil
from pathlib import Path

from setuptools import setup
from setuptools.command.build_py import build_py

SHIPPED = ("experiments", "notebooks", "data/sample")  # as in seglib/paths.py


class BuildWithShippedFolders(build_py):
    def run(self):
        super().run()
        if getattr(self, "editable_mode", False):
            return  # an editable install reads the checkout itself
        for folder in SHIPPED:
            target = Path(self.build_lib) / "seglib" / "shipped" / folder
            shutil.copytree(Path(__file__).parent / folder, target, dirs_exist_ok=True,
                            ignore=shutil.ignore_patterns(".ipynb_checkpoints", "__pycache__"))


setup(cmdclass={"build_py": BuildWithShippedFolders})
