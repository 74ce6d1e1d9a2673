"""Reading a JSON request body against its schema in the OpenAPI document.

The schema is the contract: a body it refuses is a 422 naming the field before any
handler code runs, so the document and the service cannot drift apart. Errors are
phrased by us (jsonschema's own messages quote the offending value, which may be huge
or hostile).
"""

from __future__ import annotations

from collections.abc import Iterable
from functools import cache
from typing import Any, Final

from aiohttp import web
from jsonschema import Draft202012Validator
from jsonschema.exceptions import ValidationError, relevance
from referencing import Registry, Resource
from referencing.jsonschema import DRAFT202012

from cad_adapters.errors import CadParseError
from cad_adapters.generic import decode_json
from cad_adapters.text import first_unstorable
from dispatch.web.problems import Problem, invalid, refused_document

_DOCUMENT_URI: Final = "urn:cpr-dispatch:openapi"


@cache
def _validator(schema_name: str) -> Draft202012Validator:
    from dispatch.web.openapi import openapi_document

    resource = Resource.from_contents(openapi_document(), default_specification=DRAFT202012)
    registry: Registry[Any] = Registry().with_resource(_DOCUMENT_URI, resource)
    schema = {"$ref": f"{_DOCUMENT_URI}#/components/schemas/{schema_name}"}
    return Draft202012Validator(schema, registry=registry)


def _escape(part: object) -> str:
    return str(part).replace("~", "~0").replace("/", "~1")


def _pointer(path: Iterable[object]) -> str:
    return "".join(f"/{_escape(p)}" for p in path)


def _explain(error: ValidationError) -> tuple[str, str]:
    """(pointer, detail) for one schema violation, in the API's words."""
    here = _pointer(error.absolute_path)
    schema = error.schema if isinstance(error.schema, dict) else {}
    # Typed as "Any | Unset" by the stubs; always set on errors that iter_errors yields.
    value: Any = error.validator_value
    instance: Any = error.instance
    match error.validator:
        case "required":
            missing = next(n for n in value if n not in instance)
            return f"{here}/{_escape(missing)}", "is required"
        case "dependentRequired":
            for name, needed in value.items():
                if name in instance:
                    for other in needed:
                        if other not in instance:
                            return f"{here}/{_escape(other)}", f"is required with {name}"
        case "additionalProperties":
            known = set(schema.get("properties", {}))
            extra = sorted(k for k in instance if k not in known)
            return f"{here}/{_escape(extra[0])}", "is not a known field"
        case "type":
            kinds = value if isinstance(value, list) else [value]
            return here, f"must be of type {' or '.join(kinds)}"
        case "minimum" | "maximum":
            low, high = schema.get("minimum"), schema.get("maximum")
            return here, f"must be between {low} and {high}"
        case "enum" | "const":
            options = value if isinstance(value, list) else [value]
            if len(options) > 12:
                return here, schema.get("description", "is not one of the allowed values")
            return here, f"must be one of {', '.join(map(str, options))}"
        case "minProperties":
            return here, "name at least one field"
        case "anyOf" if "quiet_from" in instance:
            unset = "quiet_from" if instance["quiet_from"] is None else "quiet_until"
            return f"{here}/{unset}", "quiet hours need both ends set (or both null)"
        case "uniqueItems":
            return here, "must not repeat an item"
        case "oneOf" | "anyOf":
            return here, "is not one of the allowed values"
    if "description" in schema:
        return here, f"{error.validator} rule broken: {schema['description']}"
    return here, f"breaks the schema's {error.validator} rule"


def check(schema_name: str, document: Any, at: str = "") -> None:
    """Raise a 422 problem when ``document`` (found at pointer ``at``) does not match the
    named component schema or holds text the database cannot store."""
    unstorable = first_unstorable(document)
    if unstorable is not None:
        raise invalid(at + unstorable[0], unstorable[1])
    # The most relevant error at its own level: best_match would descend into an anyOf's
    # branches and blame whichever branch it liked, not the field the rule is about.
    error = max(_validator(schema_name).iter_errors(document), key=relevance, default=None)
    if error is not None:
        pointer, detail = _explain(error)
        raise invalid(at + pointer, detail)


async def json_body(request: web.Request, schema_name: str) -> Any:
    """The request's JSON body, decoded strictly and checked against its schema."""
    document = await json_document(request)
    check(schema_name, document)
    return document


async def json_document(request: web.Request) -> Any:
    """The request's JSON body, decoded strictly; the caller checks it (:func:`check`)."""
    if request.content_type != "application/json":
        raise Problem(
            415,
            "unsupported-media-type",
            "Unsupported media type",
            "send the document as application/json",
        )
    try:
        document = decode_json(await request.read())
    except CadParseError as exc:
        raise refused_document(exc.pointer, exc.detail) from None
    return document
