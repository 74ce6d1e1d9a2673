"""Validation of what the SDKs sent against the vendors' published contracts.

The contracts live outside the repository (``../shared/specs/`` from the project
root) and are never copied in; tests that need them skip when they are absent.
"""

from __future__ import annotations

import json
import re
from functools import cache
from pathlib import Path
from typing import Any

import jsonschema
import pytest

SPECS_DIR = Path(__file__).resolve().parents[2].parent / "shared" / "specs"
FCM_SPEC = SPECS_DIR / "fcm.v1.json"
TWILIO_SPEC = SPECS_DIR / "twilio_api_v2010.json"

_OPAQUE_MAPS = {"data", "headers", "payload"}
_DROP = {"description", "enumDescriptions", "id", "deprecated", "readOnly", "format", "annotations"}


def _load(path: Path) -> dict[str, Any]:
    if not path.exists():
        pytest.skip(f"contract {path} not present (shared specs live outside the repository)")
    data = json.loads(path.read_text(encoding="utf-8"))
    assert isinstance(data, dict)
    return data


def _convert(node: Any) -> Any:
    """One node of a Google discovery schema as JSON Schema (draft 7)."""
    if not isinstance(node, dict):
        return node
    if "$ref" in node:
        return {"$ref": f"#/definitions/{node['$ref']}"}
    out: dict[str, Any] = {}
    for key, value in node.items():
        if key in _DROP:
            continue
        if key == "type" and value == "any":
            continue
        if key == "properties":
            out["properties"] = {k: _convert(v) for k, v in value.items()}
        elif key in ("items", "additionalProperties"):
            out[key] = _convert(value)
        else:
            out[key] = value
    if "properties" in out and "additionalProperties" not in out:
        out["additionalProperties"] = False
    return out


@cache
def _fcm_validator() -> jsonschema.Draft7Validator:
    doc = _load(FCM_SPEC)
    schema = {
        "$ref": "#/definitions/Message",
        "definitions": {name: _convert(s) for name, s in doc["schemas"].items()},
    }
    return jsonschema.Draft7Validator(schema)


def _camel(key: str) -> str:
    head, *rest = key.split("_")
    return head + "".join(part.title() for part in rest)


def _normalise(node: Any, parent: str | None = None) -> Any:
    """SDK snake_case keys to the API's lowerCamelCase (proto-JSON accepts both)."""
    if isinstance(node, dict):
        if parent in _OPAQUE_MAPS:
            return node
        return {_camel(k): _normalise(v, k) for k, v in node.items()}
    if isinstance(node, list):
        return [_normalise(v, parent) for v in node]
    return node


def assert_valid_fcm_message(message: dict[str, Any]) -> None:
    """The ``message`` of a v1 ``messages:send`` body conforms to the discovery doc's Message."""
    validator = _fcm_validator()
    normalised = _normalise(message)
    android = normalised.get("android")
    if isinstance(android, dict) and isinstance(android.get("priority"), str):
        android["priority"] = android["priority"].upper()
    errors = sorted(validator.iter_errors(normalised), key=lambda e: list(e.path))
    assert not errors, [f"{list(e.path)}: {e.message}" for e in errors]


@cache
def _twilio_operation(path: str, method: str) -> tuple[dict[str, Any], dict[str, Any]]:
    doc = _load(TWILIO_SPEC)
    operation = doc["paths"][path][method]
    schema = operation["requestBody"]["content"]["application/x-www-form-urlencoded"]["schema"]
    return operation, schema


def assert_valid_twilio_form(
    path: str, form: dict[str, list[str]], url_path: str, method: str = "post"
) -> None:
    """Form params are known to the OpenAPI operation, required ones present, values typed."""
    operation, schema = _twilio_operation(path, method)
    props: dict[str, Any] = schema["properties"]
    unknown = set(form) - set(props)
    assert not unknown, f"params unknown to {operation['operationId']}: {sorted(unknown)}"
    missing = set(schema.get("required", [])) - set(form)
    assert not missing, f"required params missing: {sorted(missing)}"
    for name, values in form.items():
        prop = props[name]
        if prop.get("type") == "array":
            item_schema = prop.get("items", {})
        else:
            assert len(values) == 1, f"{name} repeated but not an array"
            item_schema = prop
        for value in values:
            if item_schema.get("type") == "integer":
                number = int(value)
                text = prop.get("description", "")
                match = re.search(r"from `(\d+)` to `(\d+)`", text)
                if match:
                    assert int(match.group(1)) <= number <= int(match.group(2)), (name, value)
            if "enum" in item_schema:
                assert value in item_schema["enum"], (name, value)
            if "pattern" in item_schema:
                assert re.match(item_schema["pattern"], value), (name, value)
            if "maxLength" in item_schema:
                assert len(value) <= item_schema["maxLength"], name
    for group in operation.get("x-twilio", {}).get("conditional", []):
        names = ["".join(part.title() for part in snake.split("_")) for snake in group]
        present = [n for n in names if n in form]
        assert len(present) == 1, f"exactly one of {names} expected, got {present}"
    sid_param = next(p for p in operation.get("parameters", []) if p.get("name") == "AccountSid")
    account_sid = url_path.split("/")[3]
    assert re.match(sid_param["schema"]["pattern"], account_sid)
