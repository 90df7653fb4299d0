"""The argument models of the Kubernetes tools (unknown keys forbidden, names DNS-checked)."""

from __future__ import annotations

from typing import Annotated, Any, TypeVar

from pydantic import BaseModel, ConfigDict, Field

A = TypeVar("A", bound=BaseModel)

# DNS-1123 label (namespaces) and subdomain (deployments, jobs): what the API server accepts.
Namespace = Annotated[str, Field(pattern=r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$", max_length=63,
                                 examples=["llm-serving"])]
ObjectName = Annotated[str, Field(pattern=r"^[a-z0-9]([-a-z0-9.]*[a-z0-9])?$", max_length=253,
                                  examples=["vllm-llama3-70b"])]
# Label selector syntax (k=v, k!=v, k in (a,b), !k), nothing else.
Selector = Annotated[str, Field(pattern=r"^[A-Za-z0-9_./=!,() -]*[A-Za-z0-9_.)-]$",
                                min_length=1, max_length=1000, examples=["app=shop-agent"])]
Limit = Annotated[int, Field(ge=1, le=500)]


def coerce(model: type[A], args: BaseModel | dict[str, Any]) -> A:
    """`args` as an instance of `model` (validating a dict or another model's fields)."""
    if isinstance(args, model):
        return args
    return model.model_validate(args.model_dump() if isinstance(args, BaseModel) else args)


class _Args(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class DeploymentArgs(_Args):
    namespace: Namespace
    name: ObjectName


class ListPodsArgs(_Args):
    namespace: Namespace
    label_selector: Selector | None = None
    limit: Limit = 50


class GetEventsArgs(_Args):
    """Newest first; `involved_object` narrows to one object's events (by name)."""

    namespace: Namespace
    involved_object: ObjectName | None = None
    warnings_only: bool = False
    limit: Limit = 50


class ScaleDeploymentArgs(DeploymentArgs):
    replicas: int = Field(ge=0, le=10_000, strict=True)


class DeleteJobsArgs(_Args):
    namespace: Namespace
    label_selector: Selector = Field(description="Which jobs; never empty (no delete-all)")
