"""JSON request bodies read after authentication, validated into a model (422 naming fields)."""

from __future__ import annotations

from typing import Any, TypeVar

from fastapi import Request
from pydantic import BaseModel, ValidationError

from api.errors import validation_failed

M = TypeVar("M", bound=BaseModel)


async def read_body(request: Request, model: type[M]) -> M:
    """The body as `model`; read in the handler (not as a FastAPI parameter) so that an
    unauthenticated caller learns nothing from how its body is judged."""
    try:
        return model.model_validate_json(await request.body())
    except ValidationError as exc:
        raise validation_failed(list(exc.errors())) from exc


def body_schema(model: type[BaseModel], *, required: bool = False) -> dict[str, Any]:
    """`openapi_extra` documenting a body that `read_body` reads."""
    body: dict[str, Any] = {"content": {"application/json": {
        "schema": model.model_json_schema()}}}
    if required:
        body["required"] = True
    return {"requestBody": body}
