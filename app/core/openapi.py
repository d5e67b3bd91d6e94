"""The last pass over the generated OpenAPI contract: names that read well in generated code, and an example on
every request body, every JSON answer and every problem answer.

Examples. A field's own `examples` (pydantic `Field(examples=[...])`, as the key models give) always wins;
everything else is filled in from the schema itself (an enum's first value, a date for `format: date`, a number
inside `minimum`/`maximum`, a string that matches `pattern`, ...), so a new model gets sensible examples without
writing any. tests/test_openapi_quality.py checks that every example validates against its schema; a pattern
no built-in candidate matches leaves the body without an example, and that test names the field that needs an
`examples=[...]` of its own.
"""

from __future__ import annotations

import copy
import json
import re
from collections.abc import Collection
from typing import Any

from app.core.errors import _TITLES, PROBLEM_BASE, PROBLEM_MEDIA_TYPE

JSON = "application/json"
FORM = "application/x-www-form-urlencoded"
MAX_DEPTH = 6  # a recursive schema (the organisation tree) is shown this deep

_UNSET: Any = object()  # no example can be made for this schema

# Strings tried, in order, against a `pattern` that has no example of its own.
_PATTERN_CANDIDATES = (
    "2026-03", "12.50", "2.5", "1", "1234567890123456", "example", "village_branch_1", "A1",
)
# Names that deserve a more telling value than the generic one (`example`, 1, 12.5), by property name; a model
# whose name starts with a key of _OWNER_HINTS uses that table first (a person's `name` is not a branch's).
_HINTS: dict[str, Any] = {
    "name": "红星村党支部", "org_name": "红星村党支部", "village_name": "红星村", "township_name": "东风镇",
    "group_name": "东风镇第一联村小组", "school_name": "红星村农民夜校", "name_en": "Hongxing Village Branch",
    "full_name": "张伟", "person_name": "张伟", "member_name": "张伟", "holder_name": "张伟", "teacher": "李华",
    "lecturer": "李华", "payee_name": "红星村党支部", "beneficiary_name": "张伟", "inspectors": "王强、刘洋",
    "username": "v1", "password": "demo-password-1", "current_password": "demo-password-1",
    "new_password": "a-new-long-password-2", "client_id": "svc-statistics-bureau",
    "client_secret": "s3cr3t-shown-once", "access_token": "eyJhbGciOiJIUzI1NiJ9.e30.signature",
    "refresh_token": "eyJhbGciOiJIUzI1NiJ9.e30.signature", "token_type": "bearer", "scope": "",
    "note": "已核实", "comment": "材料齐全", "reason": "材料不全，请补充会议记录", "cancel_reason": "计划调整",
    "end_reason": "任期届满", "release_reason": "已提拔使用", "reversal_reason": "重复支付",
    "decision_reason": "困难党员",
    "rejection_reason": "整改证明不充分", "title": "整改党员活动室台账", "task_title": "召开支部党员大会",
    "description": "按季度检查并记录整改情况", "summary": "本季度完成全部整改", "report_summary": "本季度完成全部整改",
    "rectification_measures": "补齐台账并专人管理", "cause_analysis": "台账管理责任未落实", "findings": "会议记录不全",
    "problems_found": "会议记录不全", "policies_explained": "农村医保缴费政策", "evidence": "会议记录照片",
    "evidence_note": "会议记录照片", "submission_note": "已整改，附照片", "progress_note": "已完成一半",
    "topic": "学习党章", "minutes": "会议讨论了年度工作计划", "requirement": "每月召开一次支部委员会",
    "duties": "负责党员教育", "target": "全体党员", "basis": "上级文件", "department": "组织部",
    "purpose": "活动室维修",
    "receipt_no": "R2026-0001", "approval_ref": "东组〔2026〕1号", "self_evaluation": "较好完成年度任务",
    "rating_note": "表现突出", "review_comment": "履职良好", "other_note": "无", "decision_note": "同意",
    "suggestion_basis": "上年得分", "ethnicity": "汉族", "phone": "13800000000", "id_number": "110101199003070000",
    "credit_code": "91110000MA01ABCD1X", "code": "HX-001", "org_code": "HX-001", "period": "2026-Q1",
    "month": "2026-03", "started_month": "2026-03", "link_entity": "audit", "request_id": "3f2b8c1e9d7a4b60",
    "birth_year": 1980, "year_built": 2015, "altitude_m": 1200,
}
_OWNER_HINTS: dict[str, dict[str, Any]] = {
    "Person": {"name": "张伟"},
    "User": {"username": "v1"},
    "Client": {"name": "市统计局数据同步"},
    "School": {"name": "红星村农民夜校"},
    "StandardSet": {"name": "村级党组织标准化建设标准"},
    "Facility": {"name": "党员活动室"},
}


# ----------------------------------------------------------------------------------------- names


_QUALIFIED = re.compile(r"^(?:[A-Za-z0-9]+__)+(?P<module>[A-Za-z0-9]+)__(?P<name>[A-Za-z0-9]+)$")
_CLEAN = re.compile(r"^[A-Z][A-Za-z0-9]*$")


def readable_schema_names(doc: dict[str, Any]) -> None:
    """Component names as generated code should call them, every `$ref` following:
    - a generic model is exported by pydantic as `Page_PersonPublic_`; its title is what
      `model_parametrized_name` calls it (`PersonPage`, app.core.pagination.Page), and that becomes its name;
    - two models of one class name in different modules are exported as `app__models__x__Name`; they become
      `XName` (the module's last part as a prefix)."""
    schemas = doc.get("components", {}).get("schemas", {})
    renames: dict[str, str] = {}
    for old, schema in schemas.items():
        if _CLEAN.match(old):
            continue
        title = schema.get("title", "")
        match = _QUALIFIED.match(old)
        if _CLEAN.match(title) and title not in schemas and list(renames.values()).count(title) == 0 \
                and sum(1 for s in schemas.values() if s.get("title") == title) == 1:
            new = title
        elif match:
            new = "".join(p.capitalize() for p in match["module"].split("_")) + match["name"]
        else:
            continue  # tests/test_openapi_quality.py names it
        if new in schemas or new in renames.values():
            raise RuntimeError(f"schema {old} cannot be renamed to {new}: the name is taken")
        renames[old] = new
    if not renames:
        return
    text = json.dumps(doc, ensure_ascii=False)
    for old, new in renames.items():
        text = text.replace(f'"#/components/schemas/{old}"', f'"#/components/schemas/{new}"')
    renamed = json.loads(text)
    renamed["components"]["schemas"] = {renames.get(k, k): v for k, v in renamed["components"]["schemas"].items()}
    for new in renames.values():
        renamed["components"]["schemas"][new]["title"] = new
    doc.clear()
    doc.update(renamed)


# ----------------------------------------------------------------------------------------- examples


def example_of(node: Any, components: dict[str, Any], *, name: str = "", depth: int = 0,
               seen: tuple[str, ...] = (), owner: str = "") -> Any:
    """An instance of the schema `node` (its own example where it has one), or `_UNSET`."""
    if not isinstance(node, dict):
        return _UNSET
    if node.get("examples"):
        return copy.deepcopy(node["examples"][0])
    if "example" in node:
        return copy.deepcopy(node["example"])
    if "const" in node:
        return node["const"]
    if "$ref" in node:
        ref = node["$ref"].rsplit("/", 1)[-1]
        if ref in seen or depth > MAX_DEPTH or ref not in components:
            return _UNSET
        return example_of(components[ref], components, name=name, depth=depth + 1, seen=(*seen, ref), owner=ref)
    if node.get("enum"):
        return node["enum"][0]
    if node.get("default") is not None:
        return copy.deepcopy(node["default"])
    for key in ("anyOf", "oneOf"):
        if key in node:
            options = node[key]
            for option in options:
                if option.get("type") != "null":
                    value = example_of(option, components, name=name, depth=depth, seen=seen, owner=owner)
                    if value is not _UNSET:
                        return value
            return None if any(o.get("type") == "null" for o in options) else _UNSET
    if node.get("allOf"):
        return example_of(node["allOf"][0], components, name=name, depth=depth, seen=seen, owner=owner)
    kind = node.get("type")
    if isinstance(kind, list):
        kind = next((k for k in kind if k != "null"), "null")
    if kind == "object" or "properties" in node:
        return _object(node, components, depth, seen, owner)
    if kind == "array":
        return _array(node, components, name, depth, seen)
    hint = _hint(owner, name)
    if kind == "string":
        return _string(node, name, hint)
    if kind in ("integer", "number"):
        return _number(node, name, hint, integer=kind == "integer")
    if kind == "boolean":
        return True
    if kind == "null":
        return None
    return _UNSET if kind else {}


def _hint(owner: str, name: str) -> Any:
    for prefix, hints in _OWNER_HINTS.items():
        if owner.startswith(prefix) and name in hints:
            return hints[name]
    return _HINTS.get(name)


def _object(node: dict[str, Any], components: dict[str, Any], depth: int, seen: tuple[str, ...],
            owner: str) -> Any:
    required = set(node.get("required", ()))
    out: dict[str, Any] = {}
    for prop, schema in node.get("properties", {}).items():
        value = example_of(schema, components, name=prop, depth=depth + 1, seen=seen, owner=owner)
        if value is _UNSET:
            if prop in required:
                return _UNSET
            continue
        out[prop] = value
    extra = node.get("additionalProperties")
    if not node.get("properties") and isinstance(extra, dict) and extra:
        value = example_of(extra, components, name="", depth=depth + 1, seen=seen)
        if value is not _UNSET:
            out["example"] = value
    return out


def _array(node: dict[str, Any], components: dict[str, Any], name: str, depth: int,
           seen: tuple[str, ...]) -> Any:
    minimum = node.get("minItems", 0)
    item = example_of(node.get("items", {}), components, name=name.removesuffix("s"), depth=depth + 1, seen=seen)
    if item is _UNSET:
        return [] if minimum == 0 else _UNSET
    count = max(1, minimum)
    if count == 1:
        return [item]
    if node.get("uniqueItems") or isinstance(item, int):
        if not isinstance(item, int) or isinstance(item, bool):
            return _UNSET
        return [item + i for i in range(count)]
    return [copy.deepcopy(item) for _ in range(count)]


def _string(node: dict[str, Any], name: str, hint: Any) -> Any:
    fmt = node.get("format")
    if fmt == "date":
        return "2026-03-15"
    if fmt == "date-time":
        return "2026-03-15T09:30:00Z"
    if fmt == "binary":
        return _UNSET
    low, high = node.get("minLength", 0), node.get("maxLength", 10_000)
    pattern = node.get("pattern")
    given = (hint,) if isinstance(hint, str) else ()
    candidates = (*given, *_PATTERN_CANDIDATES) if pattern else (*given, "example")
    for candidate in candidates:
        if pattern and not re.search(pattern, candidate):
            continue
        if len(candidate) < low:
            candidate = candidate + "x" * (low - len(candidate))
            if pattern and not re.search(pattern, candidate):
                continue
        if len(candidate) <= high:
            return candidate
    return _UNSET


def _number(node: dict[str, Any], name: str, hint: Any, *, integer: bool) -> Any:
    step = 1 if integer else 0.5
    low: float | None = node.get("minimum")
    high: float | None = node.get("maximum")
    if low is None and node.get("exclusiveMinimum") is not None:
        low = node["exclusiveMinimum"] + step
    if high is None and node.get("exclusiveMaximum") is not None:
        high = node["exclusiveMaximum"] - step
    value: float = 2026 if name.endswith("year") else (1 if integer else 12.5)
    if isinstance(hint, int | float) and not isinstance(hint, bool):
        value = hint
    if low is not None and value < low:
        value = low
    if high is not None and value > high:
        value = high
    return int(value) if integer else value


def problem_example(status: int, path: str | None, *, code: str | None = None,
                    detail: str | None = None) -> dict[str, Any]:
    """What a problem answer of this status looks like (code and title as the service sends them in English);
    `code` and `detail` for a cause other than the status's usual one. Without `path` (an answer many operations
    share) it names no `instance`."""
    generic, title = _TITLES.get(status, ("error", "Error"))
    code = code or _EXAMPLE_CODES.get(status, generic)
    body: dict[str, Any] = {
        "type": PROBLEM_BASE + code.replace("_", "-"), "title": title, "status": status,
        "detail": detail or _PROBLEM_DETAILS.get(status, title), "code": code,
    }
    if path is not None:
        body["instance"] = re.sub(r"\{[^}]+\}", "1", path)
    if status == 422:
        body["errors"] = [{"loc": ["body", "name"], "msg": "Field required", "type": "missing"}]
    return body


# The code the service sends with these statuses where it differs from the status's generic one: the only 429s
# are the login throttle's, the documented 503s are the database's (a route with another 503 gives its own
# example, as the password turn does).
_EXAMPLE_CODES = {429: "too_many_login_failures", 503: "database_unavailable"}

_PROBLEM_DETAILS = {
    401: "Missing, expired or revoked access token.",
    403: "Your role does not grant this permission.",
    404: "The record does not exist or is outside your scope.",
    409: "The change conflicts with the current state of the records.",
    412: "The record changed since you read it: fetch it again and retry with the new ETag.",
    422: "body.name: Field required",
    428: "This change needs an If-Match header with the ETag you read.",
    429: "Too many failed logins for this username; wait before trying again.",
    503: "The database is not reachable; try again shortly.",
}


def add_examples(doc: dict[str, Any]) -> None:
    """An `example` on every request body, JSON answer and problem answer that has none of its own."""
    components = doc.get("components", {}).get("schemas", {})
    for path, item in doc.get("paths", {}).items():
        for operation in item.values():
            if not isinstance(operation, dict):
                continue
            bodies = operation.get("requestBody", {}).get("content", {})
            for media_type in (JSON, FORM):
                _fill(bodies.get(media_type), components)
            for status, response in operation.get("responses", {}).items():
                content = response.get("content", {})
                if status.startswith("2"):
                    _fill(content.get(JSON), components)
                elif PROBLEM_MEDIA_TYPE in content and status.isdigit():
                    media = content[PROBLEM_MEDIA_TYPE]
                    if "example" not in media and "examples" not in media:
                        media["example"] = problem_example(int(status), path)


def _fill(media: dict[str, Any] | None, components: dict[str, Any]) -> None:
    if not media or "example" in media or "examples" in media or "schema" not in media:
        return
    value = example_of(media["schema"], components)
    if value is not _UNSET:
        media["example"] = value


def document_input_guard(doc: dict[str, Any]) -> None:
    """Even an operation that takes no input answers 422 to a URL the input guard refuses (a NUL character, an
    unpaired surrogate; app.core.input_guard): an operation that declares no other error says so."""
    for item in doc.get("paths", {}).values():
        for operation in item.values():
            if not isinstance(operation, dict) or "responses" not in operation:
                continue
            if not any(status[0] in "45" for status in operation["responses"]):
                operation["responses"]["422"] = {
                    "description": "Text no record can hold in the URL (a NUL character, an unpaired surrogate)",
                    "content": {PROBLEM_MEDIA_TYPE: {"schema": {"$ref": "#/components/schemas/Problem"}}},
                }


# ----------------------------------------------------------------------------------------- links


_ITEM = re.compile(r"^/\{(?P<param>[A-Za-z_][A-Za-z0-9_]*)\}$")
_PATH_PARAM = re.compile(r"\{([A-Za-z_][A-Za-z0-9_]*)\}")
_LINKED = {
    "get": "Read the record just created: its `id` is this operation's `{param}`.",
    "patch": "Change the record just created: its `id` is this operation's `{param}`. The change needs the "
             "record's current version: send the `ETag` the GET answered as `If-Match`.",
}


def add_links(doc: dict[str, Any]) -> None:
    """OpenAPI Link Objects from each create to the read and update of what it created (create -> get -> update),
    for clients and stateful testing (tests/test_fuzz_stateful.py).

    Derived from the paths' shapes: a POST on `/X` that answers 201 with a body that has an `id`, and a GET or
    PATCH on `/X/{param}` (one more segment, a single path parameter): the created `id` feeds `{param}`, and the
    parameters of `/X` itself (a parent's id, as in `/standard-sets/{set_id}/items`) are passed on from the
    create's request."""
    paths = doc.get("paths", {})
    schemas = doc.get("components", {}).get("schemas", {})
    for path, item in paths.items():
        create = item.get("post")
        if not isinstance(create, dict) or not _answers_with_id(create, schemas):
            continue
        links: dict[str, Any] = {}
        for other, other_item in paths.items():
            match = _ITEM.match(other[len(path):]) if other.startswith(path) else None
            if match is None:
                continue
            param = match["param"]
            for method, text in _LINKED.items():
                target = other_item.get(method)
                if not isinstance(target, dict) or "operationId" not in target:
                    continue
                parameters = {name: f"$request.path.{name}" for name in _PATH_PARAM.findall(path)}
                parameters[param] = "$response.body#/id"
                links[target["operationId"]] = {
                    "operationId": target["operationId"],
                    "parameters": parameters,
                    "description": text.format(param=param),
                }
        if links:
            create["responses"]["201"]["links"] = links


def _answers_with_id(operation: dict[str, Any], schemas: dict[str, Any]) -> bool:
    created = operation.get("responses", {}).get("201", {})
    schema = created.get("content", {}).get(JSON, {}).get("schema", {})
    if "$ref" in schema:
        schema = schemas.get(schema["$ref"].rsplit("/", 1)[-1], {})
    return "id" in schema.get("properties", {})


RETRY_AFTER = {"Retry-After": {"description": "Seconds to wait before trying again",
                               "schema": {"type": "integer", "minimum": 1}}}
DATABASE_UNAVAILABLE = ("Service unavailable: the database is not reachable, did not answer within the statement "
                        "timeout, or is busy with other changes; try again after Retry-After seconds.")


def document_database_unavailable(doc: dict[str, Any], operation_ids: Collection[str]) -> None:
    """An operation that uses the database may answer 503 `database_unavailable` with Retry-After, whatever else it
    answers (app.core.errors: an outage, a statement timeout, SQLite's file lock; app.deps: SQLite's queue of
    writers). `operation_ids`: those operations (app.main finds them by their session dependency). They refer to
    a shared response: `DatabaseUnavailable`, or `ExportOrDatabaseUnavailable` for a list that exports CSV and
    .xlsx (whose writers take turns, app.core.pagination). An operation with a 503 of its own (the password turn)
    lists both of its causes as named examples. Every 429 and 503 documents its Retry-After header."""
    from app.core.pagination import CSV_MEDIA_TYPE, TOO_MANY_EXPORTS

    def shared(description: str, examples: dict[str, dict[str, Any]]) -> dict[str, Any]:
        media: dict[str, Any] = {"schema": {"$ref": "#/components/schemas/Problem"}}
        if len(examples) == 1:
            media["example"] = next(iter(examples.values()))["value"]
        else:
            media["examples"] = examples
        return {"description": description, "headers": copy.deepcopy(RETRY_AFTER),
                "content": {PROBLEM_MEDIA_TYPE: media}}

    database = {"summary": "The database is not reachable or busy", "value": problem_example(503, None)}
    exports = {"summary": "An export (Accept: text/csv or .xlsx) waited too long for its turn",
               "value": problem_example(503, None, code="service_unavailable", detail=TOO_MANY_EXPORTS)}
    responses_kept = {
        "DatabaseUnavailable": shared(DATABASE_UNAVAILABLE, {"database_unavailable": database}),
        "ExportOrDatabaseUnavailable": shared(
            "Service unavailable: too many exports are being written (service_unavailable, when the request asks for "
            "CSV or .xlsx), or the database is not reachable, did not answer within the statement timeout, or is "
            "busy with other changes (database_unavailable); try again after Retry-After seconds.",
            {"too_many_exports": exports, "database_unavailable": database}),
    }
    used: set[str] = set()
    for path, item in doc.get("paths", {}).items():
        for operation in item.values():
            if not isinstance(operation, dict) or "responses" not in operation:
                continue
            responses = operation["responses"]
            if operation.get("operationId") in operation_ids:
                media = responses.get("503", {}).get("content", {}).get(PROBLEM_MEDIA_TYPE, {})
                assert "examples" not in media, f"{path}: a route's own 503 gives one `example`"
                own = media.get("example")
                if own is not None and own["code"] != "database_unavailable":
                    responses["503"] = shared(
                        f"Service unavailable ({own['code']} or database_unavailable, see the examples); try again "
                        "after Retry-After seconds.",
                        {own["code"]: {"summary": own["detail"], "value": own},
                         "database_unavailable": {**database, "value": problem_example(503, path)}})
                else:
                    name = ("ExportOrDatabaseUnavailable" if CSV_MEDIA_TYPE in responses.get("200", {}).get(
                        "content", {}) else "DatabaseUnavailable")
                    responses["503"] = {"$ref": f"#/components/responses/{name}"}
                    used.add(name)
            for status in ("429", "503"):
                if "$ref" not in responses.get(status, {"$ref": None}):
                    headers = responses[status].setdefault("headers", {})
                    headers.setdefault("Retry-After", copy.deepcopy(RETRY_AFTER["Retry-After"]))
    kept = doc.setdefault("components", {}).setdefault("responses", {})
    kept.update({name: response for name, response in responses_kept.items() if name in used})


def finish_contract(doc: dict[str, Any], *, database_operations: Collection[str] = ()) -> None:
    """Everything this module does, in order (names first: the examples follow the final `$ref`s)."""
    readable_schema_names(doc)
    document_input_guard(doc)
    document_database_unavailable(doc, database_operations)
    add_examples(doc)
    add_links(doc)
