"""The imperative shell: everything that talks to a service, a file or a process.

lakeFS (`lakefs_store`, `release` and its pre-merge hook in `lakefs_hooks/`), the DuckDB
warehouse (`warehouse`, and `marts`: the marts as validated and released), ingestion
(`ingest`: files to rows in worker processes; `sources`: the registry file and `sources
check`; `landing`: the landing days, `flywheel import`), `export` (a release in other
trainers' formats), validation (`validation`, `gx_expectations`), MLflow (`mlflow_lakefs`,
`model_registry`), the release's `datacard`, `audit` (trace and forget), the local stack of
services under the state directory (`local_stack`; the production profile's PostgreSQL
setup in `production`, a local server in `postgres`) and the `failpoints` that fault tests
trigger.

Keep this file free of imports: `make setup` runs `python3 -m pipeline.shell.local_stack`
with the system Python, before the virtual environment exists.
"""
