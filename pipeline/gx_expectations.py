"""Custom Great Expectations expectations for agent data.

Importing this module registers them with GX (its metaclass does), so suites in
expectations/ can name them by type. Imported lazily by pipeline.validation, like GX.
"""

from great_expectations.execution_engine import PandasExecutionEngine
from great_expectations.expectations.expectation import ColumnMapExpectation
from great_expectations.expectations.metrics import (
    ColumnMapMetricProvider,
    column_condition_partial,
)

from pipeline.redaction import detect


class ColumnValuesContainNoPii(ColumnMapMetricProvider):
    """True where the redaction detectors find nothing: the same detectors that redacted
    the data, run again on what is about to be published."""

    condition_metric_name = "column_values.flywheel_contain_no_pii"

    @column_condition_partial(engine=PandasExecutionEngine)
    def _pandas(cls, column, **kwargs):  # noqa: N805 - GX's metric-provider signature
        return column.map(lambda value: value is None or not detect(str(value)))


class ExpectColumnValuesToContainNoPii(ColumnMapExpectation):
    """Expect no value of the column to contain a detectable PII or secret pattern."""

    map_metric = "column_values.flywheel_contain_no_pii"
    success_keys = ("mostly",)
