"""The contract is a document integrators can build on: valid OpenAPI 3.1, every operation described with
examples and its errors, every example valid against its own schema, names that read well in generated code.

(Naming, tags and declared error statuses per operation: tests/test_platform.py. Generated clients:
tests/test_generated_clients.py.)"""

from __future__ import annotations

import re
from collections.abc import Iterator
from typing import Any

import pytest
from jsonschema import Draft202012Validator
from jsonschema.exceptions import ValidationError
from openapi_spec_validator import validate
from referencing import Registry, Resource
from referencing.jsonschema import DRAFT202012

PROBLEM = "application/problem+json"
JSON = "application/json"
DOC_URI = "urn:partyrecords:openapi"


@pytest.fixture(scope="module")
def doc() -> dict[str, Any]:
    from app.main import create_app

    contract: dict[str, Any] = create_app().openapi()
    return contract


def _operations(doc: dict[str, Any]) -> Iterator[tuple[str, dict[str, Any]]]:
    for path, item in doc["paths"].items():
        for method, op in item.items():
            if method in {"get", "post", "put", "patch", "delete"}:
                yield f"{method.upper()} {path}", op


def _pointer(*parts: str) -> str:
    return "#/" + "/".join(p.replace("~", "~0").replace("/", "~1") for p in parts)


def test_the_contract_validates_as_openapi_3_1(doc: dict[str, Any]) -> None:
    assert doc["openapi"].startswith("3.1")
    validate(doc)  # raises with the offending path when the document is not valid OpenAPI 3.1


def test_every_operation_has_a_description_examples_and_documented_errors(doc: dict[str, Any]) -> None:
    gaps: list[str] = []
    for where, op in _operations(doc):
        if len((op.get("description") or "").strip()) < 20:
            gaps.append(f"{where}: no description (give the route function a docstring)")
        for media_type, media in op.get("requestBody", {}).get("content", {}).items():
            if media_type in {JSON, "application/x-www-form-urlencoded"} and not _has_example(media):
                gaps.append(f"{where}: request body ({media_type}) has no example")
        responses = {status: _resolved(doc, r) for status, r in op.get("responses", {}).items()}
        for status, response in responses.items():
            if status.startswith("2") and JSON in response.get("content", {}) \
                    and not _has_example(response["content"][JSON]):
                gaps.append(f"{where}: {status} answer has no example")
        errors = [s for s in responses if s[0] in "45"]
        if not errors:
            gaps.append(f"{where}: documents no error answer")
        for status in errors:
            media = responses[status].get("content", {}).get(PROBLEM)
            if media is None or not _has_example(media):
                gaps.append(f"{where}: {status} is not a problem document with an example")
    assert not gaps, f"{len(gaps)} gaps:\n" + "\n".join(gaps)


def _resolved(doc: dict[str, Any], response: dict[str, Any]) -> dict[str, Any]:
    """A response, or the shared one it refers to (`#/components/responses/...`)."""
    ref = response.get("$ref")
    if ref is None:
        return response
    assert ref.startswith("#/components/responses/"), ref
    shared: dict[str, Any] = doc["components"]["responses"][ref.rsplit("/", 1)[-1]]
    return shared


def _has_example(media: dict[str, Any]) -> bool:
    return "example" in media or bool(media.get("examples"))


def _media_examples(label: str, at: tuple[str, ...], holder: dict[str, Any]) -> Iterator[tuple[str, str, Any]]:
    """The examples of a request body or response at JSON pointer parts `at`, per media type."""
    for media_type, media in holder.get("content", {}).items():
        if "schema" not in media:
            continue
        schema_at = _pointer(*at, "content", media_type, "schema")
        where = f"{label} {media_type}"
        if "example" in media:
            yield where, schema_at, media["example"]
        for name, example in (media.get("examples") or {}).items():
            yield f"{where} ({name})", schema_at, example.get("value")


def _examples(doc: dict[str, Any]) -> Iterator[tuple[str, str, Any]]:
    """(where, JSON pointer of the schema, example) for every example in the document: on media types
    (request bodies and answers) and in schemas (`examples` of a field or a model)."""
    for path, item in doc["paths"].items():
        for method, op in item.items():
            if not isinstance(op, dict):
                continue
            places = [(("paths", path, method, "requestBody"), op.get("requestBody", {}))]
            places += [(("paths", path, method, "responses", s), r) for s, r in op.get("responses", {}).items()]
            for at, holder in places:
                yield from _media_examples(f"{method.upper()} {path} {'/'.join(at[3:])}", at, holder)
            for index, parameter in enumerate(op.get("parameters", [])):
                if "example" in parameter:
                    yield (f"{method.upper()} {path} parameter {parameter['name']}",
                           _pointer("paths", path, method, "parameters", str(index), "schema"), parameter["example"])
    for name, shared in doc.get("components", {}).get("responses", {}).items():
        yield from _media_examples(f"response {name}", ("components", "responses", name), shared)

    def walk(node: Any, at: list[str]) -> Iterator[tuple[str, str, Any]]:
        if isinstance(node, dict):
            if isinstance(node.get("examples"), list):
                for example in node["examples"]:
                    yield "/".join(at), _pointer(*at), example
            for key, value in node.items():
                if key not in {"examples", "example", "enum", "const", "default"}:
                    yield from walk(value, [*at, key])
        elif isinstance(node, list):
            for index, value in enumerate(node):
                yield from walk(value, [*at, str(index)])

    yield from walk(doc.get("components", {}).get("schemas", {}), ["components", "schemas"])


def test_every_example_validates_against_its_schema(doc: dict[str, Any]) -> None:
    registry: Registry = Registry().with_resource(DOC_URI, Resource.from_contents(doc, DRAFT202012))
    checked, wrong = 0, []
    for where, pointer, example in _examples(doc):
        validator = Draft202012Validator({"$ref": DOC_URI + pointer}, registry=registry,
                                         format_checker=Draft202012Validator.FORMAT_CHECKER)
        try:
            validator.validate(example)
        except ValidationError as exc:
            wrong.append(f"{where}: {exc.message} at {list(exc.absolute_path)}")
        checked += 1
    assert checked > 400, f"only {checked} examples found: is the examples pass (app/core/openapi.py) wired in?"
    assert not wrong, f"{len(wrong)} of {checked} examples do not match their schema:\n" + "\n".join(wrong)


def test_the_checker_rejects_an_example_that_does_not_match(doc: dict[str, Any]) -> None:
    """The test above can fail: a wrong example is caught through the same `$ref` into the document."""
    registry: Registry = Registry().with_resource(DOC_URI, Resource.from_contents(doc, DRAFT202012))
    pointer = _pointer("components", "schemas", "Problem")
    validator = Draft202012Validator({"$ref": DOC_URI + pointer}, registry=registry,
                                     format_checker=Draft202012Validator.FORMAT_CHECKER)
    assert validator.is_valid({"type": "t", "title": "x", "status": 404, "code": "not_found"})
    assert not validator.is_valid({"type": "t", "title": "x", "status": "404", "code": "not_found"})


def test_schema_names_read_well_in_generated_code(doc: dict[str, Any]) -> None:
    """No `Page_PersonPublic_`, `Body_auth_token_api_v1_auth_token_post` or `app__models__x__Name`: a
    generated client names its classes after these."""
    names = list(doc["components"]["schemas"])
    bad = [n for n in names if not re.fullmatch(r"[A-Z][A-Za-z0-9]*", n) or n.startswith("Body")]
    assert not bad, f"schema names that read badly in generated code: {bad}"
    assert "PersonPage" in names and "OrganizationPage" in names
    ops = [op["operationId"] for _, op in _operations(doc)]
    assert all(re.fullmatch(r"[a-z]+(_[a-z0-9]+)+", o) for o in ops)


def test_the_login_throttles_429_is_documented_as_the_service_sends_it(doc: dict[str, Any], client: Any) -> None:
    """The contract's example of the token route's 429 carries the code and detail of a real one (it said
    `too_many_requests`, a code the service never sends)."""
    example = doc["paths"]["/api/v1/auth/token"]["post"]["responses"]["429"]["content"][PROBLEM]["example"]
    answers = [client.post("/api/v1/auth/token", data={"username": "nobody-throttled", "password": "wrong-guess"})
               for _ in range(6)]
    throttled = answers[-1]
    assert throttled.status_code == 429, [a.status_code for a in answers]
    assert {k: throttled.json()[k] for k in ("type", "title", "code", "detail")} == {
        k: example[k] for k in ("type", "title", "code", "detail")}


def test_the_readiness_503_is_documented_with_the_database_code(doc: dict[str, Any]) -> None:
    example = doc["paths"]["/readyz"]["get"]["responses"]["503"]["content"][PROBLEM]["example"]
    assert example["code"] == "database_unavailable"  # what /readyz and every database outage answer


def test_every_operation_that_uses_the_database_documents_its_503(doc: dict[str, Any]) -> None:
    """An outage, a statement timeout or SQLite's lock answers 503 database_unavailable with Retry-After on any
    route that reads or writes (tests/test_db_outage.py); only the probes that touch nothing say otherwise."""
    untouched = {"/healthz", "/metrics"}
    gaps: list[str] = []
    for where, op in _operations(doc):
        if where.split(" ", 1)[1] in untouched:
            assert "503" not in op["responses"], where
            continue
        answer = _resolved(doc, op["responses"].get("503", {}))
        media = answer.get("content", {}).get(PROBLEM, {})
        examples = [media["example"]] if "example" in media else [
            e["value"] for e in media.get("examples", {}).values()]
        if "database_unavailable" not in {e["code"] for e in examples}:
            gaps.append(f"{where}: no 503 database_unavailable")
        if "Retry-After" not in answer.get("headers", {}):
            gaps.append(f"{where}: its 503 does not document Retry-After")
    assert not gaps, "\n".join(gaps)
    assert "Retry-After" in doc["paths"]["/api/v1/auth/token"]["post"]["responses"]["429"]["headers"]


def test_documents_made_one_after_another_share_nothing(doc: dict[str, Any]) -> None:
    # Mutating one contract (a generator that annotates it, a test) must not change the next one made.
    from app.main import create_app

    doc["paths"]["/api/v1/auth/token"]["post"]["responses"]["429"]["headers"]["Retry-After"]["description"] = "x"
    doc["components"]["responses"]["DatabaseUnavailable"]["headers"]["Retry-After"]["description"] = "y"
    again = create_app().openapi()
    assert again["paths"]["/api/v1/auth/token"]["post"]["responses"]["429"]["headers"]["Retry-After"][
        "description"] == again["components"]["responses"]["DatabaseUnavailable"]["headers"]["Retry-After"][
        "description"] == "Seconds to wait before trying again"
