"""The one packaging detail pyproject.toml cannot say: the repository's data_contracts/ ships
inside the wheel as the package data folder dataops_cv/data_contracts/, so an installed code
location has its contracts without a checkout (DATAOPS_CV_CONTRACTS_DIR still overrides).
dataops_cv/dg.toml ships too: the definitions find their dg project through it."""

from setuptools import find_packages, setup

setup(
    packages=[*find_packages(include=["dataops_cv*"]), "dataops_cv.data_contracts"],
    package_dir={"dataops_cv.data_contracts": "data_contracts"},
    package_data={"dataops_cv": ["dg.toml"],
                  "dataops_cv.data_contracts": ["*.yaml", "*.md"]},
)
