"""Custom Great Expectations expectations for agent data.

Importing this module registers them with GX (its metaclass does), so suites in
expectations/ can name them by type. Imported lazily by pipeline.shell.validation, like GX.
"""

import contextlib
import contextvars
from collections.abc import Iterator
from typing import Literal

from great_expectations.execution_engine import PandasExecutionEngine
from great_expectations.expectations.expectation import (
    ColumnMapExpectation,
    ColumnPairMapExpectation,
    MulticolumnMapExpectation,
)
from great_expectations.expectations.metrics import ColumnMapMetricProvider, column_condition_partial
from great_expectations.expectations.metrics.map_metric_provider import (
    ColumnPairMapMetricProvider,
    MulticolumnMapMetricProvider,
)
from great_expectations.expectations.metrics.map_metric_provider.column_pair_condition_partial import (
    column_pair_condition_partial,
)
from great_expectations.expectations.metrics.map_metric_provider.multicolumn_condition_partial import (
    multicolumn_condition_partial,
)

from pipeline.core.curation.conversation import conversation_problems
from pipeline.core.redaction.surrogates import IssuedSurrogates

# The surrogates redaction wrote, for the suites being run (`issued_surrogates`): GX metric
# providers take no runtime arguments, and the set (thousands of values) does not belong in
# the suite files or in Data Docs.
NONE_ISSUED = IssuedSurrogates(())  # immutable: safe to share as the default
_ISSUED: contextvars.ContextVar[IssuedSurrogates] = contextvars.ContextVar(
    "flywheel_issued_surrogates", default=NONE_ISSUED)


@contextlib.contextmanager
def issued_surrogates(issued: IssuedSurrogates) -> Iterator[None]:
    """Within the block, the no-PII expectation accepts these surrogates."""
    token = _ISSUED.set(issued)
    try:
        yield
    finally:
        _ISSUED.reset(token)


class ColumnValuesContainNoPii(ColumnMapMetricProvider):
    """True where the redaction detectors find nothing but surrogates redaction issued: the
    same detectors that redacted the data, run again on what is about to be published."""

    condition_metric_name = "column_values.flywheel_contain_no_pii"

    @column_condition_partial(engine=PandasExecutionEngine)
    def _pandas(cls, column, **kwargs):  # noqa: N805 - GX's metric-provider signature
        issued = _ISSUED.get()
        return column.map(lambda value: value is None or not issued.unexpected(str(value)))


class ExpectColumnValuesToContainNoPii(ColumnMapExpectation):
    """Expect no value of the column to contain a detectable PII or secret pattern other than
    a surrogate redaction issued."""

    map_metric = "column_values.flywheel_contain_no_pii"
    success_keys = ("mostly",)


class ConversationsWellFormed(MulticolumnMapMetricProvider):
    """True where the conversation formed by the message columns (all but the last column,
    concatenated) is well formed against the tools in the last column."""

    condition_metric_name = "multicolumn_values.flywheel_conversation_well_formed"
    condition_domain_keys = ("batch_id", "table", "column_list", "row_condition",
                             "condition_parser", "ignore_row_if")

    @multicolumn_condition_partial(engine=PandasExecutionEngine)
    def _pandas(cls, column_list, **kwargs):  # noqa: N805 - GX's metric-provider signature
        *message_columns, tools_column = column_list.columns
        return column_list.apply(
            lambda row: not conversation_problems(
                [row[c] for c in message_columns], row[tools_column]
            ),
            axis=1,
        )


class ExpectConversationsToBeWellFormed(MulticolumnMapExpectation):
    """Expect valid role order, every tool call answered by a result or an error, and
    tool-call arguments that are objects conforming to the tool's JSON schema."""

    map_metric = "multicolumn_values.flywheel_conversation_well_formed"
    success_keys = ("mostly",)


class GroupsInOneSplit(ColumnPairMapMetricProvider):
    """True where the row's group (column A) appears with a single split (column B)."""

    condition_metric_name = "column_pair_values.flywheel_group_in_one_split"
    condition_domain_keys = ("batch_id", "table", "column_A", "column_B", "row_condition",
                             "condition_parser", "ignore_row_if")

    @column_pair_condition_partial(engine=PandasExecutionEngine)
    def _pandas(cls, column_A, column_B, **kwargs):  # noqa: N805,N803 - GX's signature
        splits_per_group = column_B.groupby(column_A).transform("nunique")
        return splits_per_group == 1


class ExpectGroupsToBeInOneSplit(ColumnPairMapExpectation):
    """Expect every group key (column_A) to sit in one split (column_B): no leakage."""

    map_metric = "column_pair_values.flywheel_group_in_one_split"
    success_keys = ("mostly",)
    ignore_row_if: Literal["both_values_are_missing", "either_value_is_missing", "neither"] = (
        "either_value_is_missing"
    )
    domain_keys = ("batch_id", "table", "column_A", "column_B", "row_condition",
                   "condition_parser", "ignore_row_if")
