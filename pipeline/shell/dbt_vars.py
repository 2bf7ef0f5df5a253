"""The curation knobs as dbt_project.yml defines them (its `vars`), for the code outside dbt
that must agree with curation: the GX suites' bounds and the near-duplicate benchmark."""

from __future__ import annotations

from typing import Any

from pipeline.settings import DBT_PROJECT_DIR


def dbt_vars() -> dict[str, Any]:
    """Every var of dbt_project.yml with its default (a run may override them with --vars)."""
    import yaml

    return yaml.safe_load((DBT_PROJECT_DIR / "dbt_project.yml").read_text())["vars"]
