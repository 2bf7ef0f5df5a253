"""Dagster wiring the assets are written with: resources, the daily partitions, and the
automation (jobs, the nightly schedule, sensors, retries, failure summaries), plus the
in-process runner behind `flywheel run`. The code location itself is
`pipeline.definitions`, which sits above `assets/`."""
