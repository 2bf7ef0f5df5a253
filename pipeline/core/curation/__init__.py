"""Curation helpers that need Python rather than SQL: the near-duplicate algorithm (run by
the near_duplicate_candidates asset before dbt, clustered in SQL) and the structural checks
of TRL conversations (run by dbt and by GX)."""
