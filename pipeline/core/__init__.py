"""The domain, as plain functions on plain data: no service, no orchestrator, no torch.

- `record`: the canonical trajectory record (docs/trajectory_schema.md).
- `formats`: format adapters: detect, parse (or quarantine with a reason), export; how files
  hold their records (containers); ReAct text in chat turns made structured (react_chat).
- `sources`: the source registry's schema and the hooks that apply a source to its records.
- `export_formats`: mart rows as TRL and OpenAI fine-tuning records.
- `redaction`: PII and secret detection, placeholders and realistic surrogates.
- `curation`: the near-duplicate algorithm and the structural checks of conversations
  that dbt and the GX suites share.
- `training`: the chat template with tools, and examples turned into packed training rows.

Checked by import-linter (pyproject.toml): nothing here imports dagster, duckdb, mlflow,
lakefs, great_expectations, dbt, torch or the settings; the I/O lives in `pipeline.shell`.
"""
