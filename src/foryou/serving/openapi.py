"""The service's OpenAPI schema with what its static request models cannot say: the server's limits and, once a
bundle is loaded, what that bundle accepts (so clients and schema checks see the real contract)."""

from __future__ import annotations

from typing import Any

from fastapi import FastAPI
from fastapi.openapi.utils import get_openapi

from foryou.config import ServingConfig
from foryou.serving import schemas as api
from foryou.serving.catalog import FieldRoles
from foryou.serving.service import MAX_VECTOR_VALUE
from foryou.serving.state import ServingState


def declared_limits(app: FastAPI, config: ServingConfig, state: ServingState | None) -> dict[str, Any]:
    """The OpenAPI schema with what the static models cannot say: the server's limits (max_k, max_interactions)
    and, once a bundle is loaded, what it accepts (its strategies, event types, item fields, vector width).
    Built per call (it is rarely asked for), so it follows reloads."""
    schema = get_openapi(title=app.title, version=app.version, description=app.description, routes=app.routes)
    bodies = schema["components"]["schemas"]
    for name in ("RecommendationRequest", "RetrieveRequest"):
        bodies[name]["properties"]["k"]["maximum"] = config.max_k
    for name in ("RecommendationRequest", "EncodeRequest"):
        bodies[name]["properties"]["interactions"]["maxItems"] = config.max_interactions
    for operation in (op for path in schema["paths"].values() for op in path.values()):
        for parameter in operation.get("parameters", []):
            if parameter["name"] == "k" and parameter["in"] == "query":
                parameter["schema"]["maximum"] = config.max_k
            if parameter["name"] == "strategy" and parameter["in"] == "query" and state is not None:
                parameter["schema"]["anyOf"][0]["enum"] = state.bundle.strategies
    if state is not None:
        bodies["RecommendationRequest"]["properties"]["strategy"]["anyOf"][0]["enum"] = state.bundle.strategies
        for name in ("Interaction", "EventIn"):
            bodies[name]["properties"]["event_type"]["enum"] = state.event_types
        vector = bodies["RetrieveRequest"]["properties"]["vector"]
        vector.update(minItems=state.index.dim, maxItems=state.index.dim)
        vector["items"].update(minimum=-MAX_VECTOR_VALUE, maximum=MAX_VECTOR_VALUE)
        for name in ("ItemIn", "ItemPatch"):
            bodies[name]["properties"]["fields"] = item_fields_schema(state.roles)
    return schema


def item_fields_schema(roles: FieldRoles) -> dict[str, Any]:
    """The `fields` object PUT and PATCH accept: the catalog's fields only, each with its role's type."""
    nothing = {"type": "null"}
    text = {"anyOf": [{"type": "string", "maxLength": api.MAX_TEXT_LENGTH}, nothing]}
    categorical = {"anyOf": [{"type": "string", "maxLength": api.MAX_TEXT_LENGTH},
                             {"type": "array", "items": {"type": "string", "maxLength": api.MAX_ID_LENGTH},
                              "maxItems": 100}, nothing]}
    properties = {**{name: text for name in roles.text}, **{name: categorical for name in roles.categorical}}
    for name in roles.numeric:
        number: dict[str, Any] = {"type": "number", "minimum": 0} if name == roles.price else {"type": "number"}
        properties[name] = {"anyOf": [number, nothing]}
    return {"type": "object", "properties": properties, "additionalProperties": False,
            "description": "the catalog's item fields (text, categorical, numeric); PATCH: only those to change"}
