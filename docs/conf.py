"""Sphinx configuration for the airflow-provider-camb documentation (built by ``make docs``)."""

from __future__ import annotations

import logging
import os
import sys
from pathlib import Path

DOCS = Path(__file__).resolve().parent

# Autodoc imports Airflow, which reads its configuration at import time and, without an
# AIRFLOW_HOME, creates ~/airflow. Keep a docs build inside docs/_build (git-ignored).
os.environ.setdefault("AIRFLOW_HOME", str(DOCS / "_build" / "airflow_home"))
os.environ.setdefault("AIRFLOW__CORE__LOAD_EXAMPLES", "False")

# Importing Airflow logs two INFO lines about its configuration; the build output is Sphinx's.
logging.getLogger("airflow").setLevel(logging.WARNING)

# Document the checkout being built, even where the package is not installed in editable mode.
sys.path.insert(0, str(DOCS.parent))

from airflow_provider_camb import __version__  # noqa: E402

project = "airflow-provider-camb"
author = "airflow-provider-camb developers"
copyright = "the airflow-provider-camb developers"
version = release = __version__

extensions = [
    "myst_parser",
    "sphinx.ext.autodoc",
    "sphinx.ext.viewcode",
]

source_suffix = {".md": "markdown"}
root_doc = "index"
exclude_patterns = ["_build", "Thumbs.db", ".DS_Store"]

myst_enable_extensions = ["colon_fence", "deflist"]
# Anchors for "## Heading" links such as [reliability](reliability.md#what-is-retried).
myst_heading_anchors = 3

autodoc_member_order = "bysource"
autodoc_typehints = "signature"
# Otherwise execute()/poke() show BaseOperator's "Derive when creating an operator." text.
autodoc_inherit_docstrings = False
autodoc_default_options = {
    "members": True,
    "show-inheritance": True,
}

html_theme = "furo"
html_title = f"airflow-provider-camb {release}"
html_static_path: list[str] = []
