"""Packaging of gocd-mesos: metadata, runtime dependencies, extras, console script."""

import re
from pathlib import Path

from setuptools import find_packages, setup

HERE = Path(__file__).parent
VERSION = re.search(r'^__version__ = "([^"]+)"', (HERE / "actors" / "__init__.py").read_text(), re.M).group(1)

setup(
    name="gocd-mesos",
    version=VERSION,
    description="Autoscale GoCD build agents on Apache Mesos from the GoCD job backlog",
    long_description=(HERE / "README.md").read_text(encoding="utf-8"),
    long_description_content_type="text/markdown",
    license="Apache-2.0",
    python_requires=">=3.10",
    packages=find_packages(include=["actors", "actors.*"]),
    package_data={"actors": ["config.spec", "py.typed", "http/templates/*.html"]},
    scripts=[],
    install_requires=[
        "pykka>=4.0,<5",
        "requests>=2.28,<3",
        "configobj>=5.0.8,<6",
        "tornado>=6.1",
        "prometheus_client>=0.17",
    ],
    extras_require={
        # The optional alternative scheduler driver; installs on CPython 3.10 (see README).
        "pymesos": ["pymesos==0.3.15"],
        # zk:// master detection for the builtin driver.
        "zookeeper": ["kazoo>=2.9"],
        "test": ["pytest>=7", "pytest-timeout>=2", "hypothesis>=6.100", "pyyaml>=6", "selenium>=4.20"],
        "lint": ["ruff>=0.6", "mypy>=1.10", "types-requests"],
    },
    entry_points={"console_scripts": ["gocd-mesosd = actors.cli:main"]},
    classifiers=[
        "Programming Language :: Python :: 3",
        "Programming Language :: Python :: 3.10",
        "Programming Language :: Python :: 3.11",
        "Programming Language :: Python :: 3.12",
        "Programming Language :: Python :: 3.13",
        "Topic :: Software Development :: Build Tools",
    ],
)
