"""Build hook (the rest of the build is pyproject.toml): ship the default stage settings (stages/) and data
mixtures (manifests/) inside the package, as phi4cli/recipe/{stages,manifests}, so a non-editable install
finds them (phi4cli/config.py looks there when there is no source checkout around the package)."""

import shutil
from pathlib import Path

from setuptools import setup
from setuptools.command.build_py import build_py

RECIPE_DIRS = ("stages", "manifests")


class BuildWithRecipe(build_py):
    def run(self) -> None:
        super().run()
        if getattr(self, "editable_mode", False):
            return  # an editable install reads them from the checkout
        for name in RECIPE_DIRS:
            target = Path(self.build_lib) / "phi4cli" / "recipe" / name
            shutil.rmtree(target, ignore_errors=True)
            for source in sorted(Path(name).rglob("*.toml")):
                destination = target / source.relative_to(name)
                destination.parent.mkdir(parents=True, exist_ok=True)
                shutil.copy2(source, destination)


setup(cmdclass={"build_py": BuildWithRecipe})
