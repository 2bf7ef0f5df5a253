"""The daily partitioning of everything that follows the landing folders."""

import dagster as dg

from pipeline.settings import get_settings

# end_offset=1: today's partition exists too, so the new-log sensor can ingest it as the
# day goes on; the nightly schedule processes the day that just ended.
daily_partitions = dg.DailyPartitionsDefinition(
    start_date=get_settings().partition_start, end_offset=1
)
