"""Curation helpers that need Python rather than SQL: the near-duplicate algorithm (run by
a dbt Python model) and the structural checks of TRL conversations (run by dbt and by GX)."""
