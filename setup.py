"""Map the design card's top-level folders into the one import package, `rigctl`.

pyproject.toml holds all metadata; this file only computes the package list, because
setuptools' static `packages.find` cannot rename folders (`roles/llamacpp` -> `rigctl.roles.llamacpp`).
"""

from setuptools import find_packages, setup

FOLDER_TO_PACKAGE = {
    "cli": "rigctl.cli",
    "roles": "rigctl.roles",
    "deploys": "rigctl.deploys",
    "templates": "rigctl.templates",
}

packages = find_packages(include=["rigctl", "rigctl.*"])
package_dir = {"rigctl": "rigctl"}
for folder, package in FOLDER_TO_PACKAGE.items():
    package_dir[package] = folder
    packages.append(package)
    packages += [f"{package}.{sub}" for sub in find_packages(folder)]

setup(packages=packages, package_dir=package_dir)
