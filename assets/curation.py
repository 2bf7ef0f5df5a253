"""Stage 2, curation: the dbt project (staging → intermediate → marts) as Dagster assets.

dbt tests become asset checks; error-severity tests block downstream assets.
"""

import dagster as dg
from dagster_dbt import (
    DagsterDbtTranslator,
    DagsterDbtTranslatorSettings,
    DbtCliResource,
    dbt_assets,
)

from pipeline.orchestration.resources import dbt_project

# The four `redacted` source tables are all produced by one asset, redacted_trajectories.
translator = DagsterDbtTranslator(
    settings=DagsterDbtTranslatorSettings(enable_duplicate_source_asset_keys=True)
)


@dbt_assets(
    manifest=dbt_project.manifest_path, project=dbt_project, dagster_dbt_translator=translator
)
def curation_dbt_models(context: dg.AssetExecutionContext, dbt: DbtCliResource):
    # One `dbt build` per run: dbt's ~8 s start-up is paid once, and tests run right after
    # the model they check, so a failing test stops the models downstream of it.
    yield from dbt.cli(["build"], context=context).stream()
