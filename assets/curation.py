"""Stage 2, curation: the dbt project (staging → intermediate → marts) as Dagster assets.

dbt tests become asset checks; error-severity tests block downstream assets.
"""

import dagster as dg
from dagster_dbt import DbtCliResource, dbt_assets

from pipeline.resources import dbt_project


@dbt_assets(manifest=dbt_project.manifest_path, project=dbt_project)
def curation_dbt_models(context: dg.AssetExecutionContext, dbt: DbtCliResource):
    # One `dbt build` per run: dbt's ~8 s start-up is paid once, and tests run right after
    # the model they check, so a failing test stops the models downstream of it.
    yield from dbt.cli(["build"], context=context).stream()
