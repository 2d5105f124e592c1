"""Property-based fuzzing of every route in the published OpenAPI document, with schemathesis.

Requests are generated from ``/api/openapi.json`` itself: schema-valid ones
and ones that break it (wrong types, missing, repeated and unknown fields,
out-of-range numbers), and sent over HTTP to the app on 127.0.0.1. Every
answer must be below 500, every 4xx in the one error shape, and the status,
content type and body as documented; schema-breaking requests must be
refused. The examples are bounded and derandomized, so a run is the same
every time and takes seconds; ``/healthz`` must still answer afterwards.
"""

import collections

import pytest
import requests

from web_helpers import assert_error_shape

schemathesis = pytest.importorskip("schemathesis", reason="fuzzing needs schemathesis (pip install -e .[dev])")
from hypothesis import HealthCheck, Phase, given, settings  # after the skip: schemathesis brings Hypothesis
from schemathesis.specs.openapi import checks

EXAMPLES = 60  # per operation and mode: about 20 s in all on 2 cores
MIN_EXAMPLES = 25  # Hypothesis stops early when an operation has few distinct inputs
MODES = (schemathesis.GenerationMode.POSITIVE, schemathesis.GenerationMode.NEGATIVE)
OPERATIONS = [  # all but GET /api/openapi.json, which schemathesis leaves out: it serves the document
    "GET /api/search", "POST /api/search", "GET /api/images/{id}", "GET /api/thumbnails/{id}", "GET /api/stats",
    "GET /healthz", "GET /metrics", "POST /knn-service", "POST /metadata", "GET /indices-list", "GET /api/duplicates",
    "GET /api/browse", "GET /api/facets", "GET /api/photos/{id}", "GET /api/previews/{id}",
]


def negative_data_rejection(ctx, response, case):
    """schemathesis's check, less one false alarm: a multipart field negated to an empty list is
    sent as no field at all, so the request is valid as sent and rightly accepted."""
    body = case.body if isinstance(case.body, dict) else {}  # negative cases may send a bare number
    if case.media_type == "multipart/form-data" and any(v == [] for v in body.values()):
        return None
    return checks.negative_data_rejection(ctx, response, case)


CHECKS = [checks.status_code_conformance, checks.content_type_conformance, checks.response_schema_conformance,
          negative_data_rejection]


@pytest.fixture(scope="module")
def schema(live_server):
    return schemathesis.openapi.from_url(f"{live_server}/api/openapi.json")


@pytest.fixture(scope="module")
def session():
    with requests.Session() as s:
        yield s


def test_every_documented_operation_is_fuzzed(schema):
    documented = {f"{method.upper()} {path}" for path, ops in schema.raw_schema["paths"].items() for method in ops}
    assert documented - {"GET /api/openapi.json"} == set(OPERATIONS)
    assert {op.ok().label for op in schema.get_all_operations()} == set(OPERATIONS)


def _takes_input(operation):
    raw = operation.definition.raw
    return bool(raw.get("parameters") or raw.get("requestBody"))


@pytest.mark.parametrize("label", OPERATIONS)
def test_fuzzed_requests_never_fail_the_server(schema, session, live_server, label):
    operation = schema.find_operation_by_label(label)
    statuses, codes = collections.Counter(), collections.Counter()
    modes = MODES if _takes_input(operation) else MODES[:1]  # nothing to break in a request without input
    for mode in modes:
        _fuzz(operation, mode, live_server, session, statuses, codes)
    total = sum(statuses.values())
    print(f"{label}: {total} examples, statuses {dict(sorted(statuses.items()))}, errors {dict(codes)}")
    if _takes_input(operation):
        assert total >= MIN_EXAMPLES * len(modes), statuses
    assert requests.get(f"{live_server}/healthz", timeout=10).json()["status"] == "ok"


def _fuzz(operation, mode, url, session, statuses, codes):
    """Send ``EXAMPLES`` generated requests; count statuses and error codes; fail on the first bad answer."""

    @given(case=operation.as_strategy(generation_mode=mode))
    @settings(max_examples=EXAMPLES, deadline=None, database=None, derandomize=True,
              phases=[Phase.explicit, Phase.generate], suppress_health_check=[HealthCheck.too_slow])
    def send(case):
        response = case.call(base_url=url, session=session, timeout=30)
        statuses[response.status_code] += 1
        assert response.status_code < 500, response.text
        if response.status_code >= 400:
            mimetype = response.headers.get("content-type", [""])[0].split(";")[0]
            codes[mode.value, assert_error_shape(mimetype, response.json())["code"]] += 1
        case.validate_response(response, checks=CHECKS)

    send()
