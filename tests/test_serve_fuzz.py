"""Property-based fuzzing of the service's API from its own OpenAPI document (schemathesis),
against the real server on both stores: no request makes a 500, and every answer matches
the schema the document gives for it. A few examples per operation keep it to seconds.

Each operation's strategy is driven by hypothesis here rather than by schemathesis's pytest
plugin (whose parametrization does not work with pytest 9)."""

from __future__ import annotations

from typing import Any

import schemathesis
from hypothesis import HealthCheck, given, settings
from serve_fixtures import Served

EXAMPLES = 4
"""Examples per operation."""
ACCEPTING = schemathesis.checks.positive_data_acceptance
"""Left out: a request the schema allows may still name a run, an item or a cursor that does
not exist (404) or a decision its item does not allow (422); what the document cannot know."""


def test_no_request_breaks_the_api_or_its_schema(served: Served) -> None:
    schema = schemathesis.openapi.from_url(f"{served.url}/openapi.json")
    schema = schema.exclude(path_regex="events$")  # the event streams never end
    headers = {"Authorization": f"Bearer {served.tokens['root']}"}
    operations = [result.ok() for result in schema.get_all_operations()]
    assert len(operations) >= 9
    for operation in operations:

        @given(case=operation.as_strategy())
        @settings(
            max_examples=EXAMPLES,
            deadline=None,
            database=None,
            suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much],
        )
        def check(case: Any) -> None:
            case.call_and_validate(headers=headers, excluded_checks=[ACCEPTING])

        check()
