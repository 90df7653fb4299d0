"""Model prices and token/USD budgets: what a call costs and whether one more call may run."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from decimal import ROUND_HALF_EVEN, Decimal, localcontext
from typing import Any, Final, Literal

from pydantic import BaseModel, ConfigDict, Field, RootModel

__all__ = [
    "PER_TOKENS",
    "USD_PLACES",
    "BudgetLimits",
    "BudgetVerdict",
    "Cost",
    "ModelPrice",
    "PriceTable",
    "Scope",
    "Spent",
    "check",
]

Scope = Literal["incident", "conversation"]

PER_TOKENS: Final = 1_000_000  # prices are USD per 1M tokens, as providers publish them
# Ten places keeps one token at $0.01/1M (1e-8) exact and gives costs one stable text form.
USD_PLACES: Final = Decimal("0.0000000001")
# Separators after a priced prefix that mark a variant of the same model ("-2024-07-18",
# ":70b", "@latest"); without them "gpt-4" would price "gpt-4o" and "gpt-4.1".
_VARIANT_SEPARATORS: Final = ("-", ":", "@")


class ModelPrice(BaseModel):
    """USD per 1M input (prompt) tokens and per 1M output (completion) tokens."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    input: Decimal = Field(ge=0, allow_inf_nan=False)
    output: Decimal = Field(ge=0, allow_inf_nan=False)


@dataclass(frozen=True, slots=True)
class Cost:
    """A priced call: `usd` is None when the model has no price (`priced_as` is then None)."""

    model: str
    input_tokens: int
    output_tokens: int
    usd: Decimal | None
    priced_as: str | None

    @property
    def known(self) -> bool:
        return self.usd is not None

    def as_dict(self) -> dict[str, Any]:
        """JSON-able form for the audit payload; USD as a string so no float creeps in."""
        return {
            "model": self.model,
            "input_tokens": self.input_tokens,
            "output_tokens": self.output_tokens,
            "cost_usd": None if self.usd is None else str(self.usd),
            "priced_as": self.priced_as,
        }


class PriceTable(RootModel[dict[str, ModelPrice]]):
    """Prices keyed by model id, e.g. {"gpt-4o-mini": {"input": 0.15, "output": 0.6}}.

    A model is priced by its exact id, else by the longest priced id it starts with followed
    by "-", ":" or "@" ("gpt-4o-mini-2024-07-18" → "gpt-4o-mini"). List a variant explicitly
    when its price differs from its base ("gpt-4o-mini" must be listed, or it is priced as
    "gpt-4o"). Self-hosted models should be listed at 0 so their spend is known, not unpriced.
    """

    model_config = ConfigDict(frozen=True)

    root: dict[str, ModelPrice] = Field(default_factory=dict)

    @classmethod
    def from_setting(cls, value: str | Mapping[str, Any] | None) -> PriceTable:
        """Build from a settings value: JSON text, a mapping, or None/"" for no prices.
        Raises pydantic.ValidationError (a ValueError) on a malformed table, at start-up."""
        if value is None or (isinstance(value, str) and not value.strip()):
            return cls({})
        if isinstance(value, str):
            return cls.model_validate_json(value)
        return cls.model_validate(value)

    def match(self, model: str) -> str | None:
        """The priced id `model` is charged as, or None when it has no price."""
        if model in self.root:
            return model
        best: str | None = None
        for key in self.root:
            if (
                len(model) > len(key)
                and model.startswith(key)
                and model[len(key)] in _VARIANT_SEPARATORS
                and (best is None or len(key) > len(best))
            ):
                best = key
        return best

    def quote(self, model: str, input_tokens: int, output_tokens: int) -> Cost:
        """Cost of one call, with the flag and matched id; an unknown model is never an error."""
        if input_tokens < 0 or output_tokens < 0:
            raise ValueError(f"token counts must be >= 0 (got {input_tokens}, {output_tokens})")
        key = self.match(model)
        if key is None:
            return Cost(model, input_tokens, output_tokens, None, None)
        price = self.root[key]
        # Decimal end to end: sums of many small float costs drift; these are exact.
        with localcontext() as ctx:
            ctx.prec = 40
            usd = (input_tokens * price.input + output_tokens * price.output) / PER_TOKENS
            usd = usd.quantize(USD_PLACES, rounding=ROUND_HALF_EVEN)
        return Cost(model, input_tokens, output_tokens, usd, key)

    def cost(self, model: str, input_tokens: int, output_tokens: int) -> Decimal | None:
        """USD for one call, or None when the model has no price."""
        return self.quote(model, input_tokens, output_tokens).usd


class BudgetLimits(BaseModel):
    """Optional caps; None means unlimited. Tokens are input + output. `hourly_*` cap all model
    calls in the last hour, whatever the scope. 0 means "no model calls" for that cap."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    incident_tokens: int | None = Field(default=None, ge=0)
    incident_usd: Decimal | None = Field(default=None, ge=0, allow_inf_nan=False)
    conversation_tokens: int | None = Field(default=None, ge=0)
    conversation_usd: Decimal | None = Field(default=None, ge=0, allow_inf_nan=False)
    hourly_tokens: int | None = Field(default=None, ge=0)
    hourly_usd: Decimal | None = Field(default=None, ge=0, allow_inf_nan=False)


class Spent(BaseModel):
    """What was already spent, computed by the caller from the llm_call audit events: in the
    scope (this incident or conversation) and across everything in the last hour.

    `tokens` counts every call; `usd` only the priced ones, whose tokens are not in
    `unpriced_tokens` (the tokens of calls to models with no price)."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    tokens: int = Field(default=0, ge=0)
    usd: Decimal = Field(default=Decimal(0), ge=0, allow_inf_nan=False)
    unpriced_tokens: int = Field(default=0, ge=0)
    hour_tokens: int = Field(default=0, ge=0)
    hour_usd: Decimal = Field(default=Decimal(0), ge=0, allow_inf_nan=False)
    hour_unpriced_tokens: int = Field(default=0, ge=0)


@dataclass(frozen=True, slots=True)
class BudgetVerdict:
    """allowed, or refused with a human `reason` and `which` limit (a BudgetLimits field name).
    `note` flags an allowed verdict whose USD caps could not see part of the spending."""

    allowed: bool
    reason: str | None = None
    which: str | None = None
    note: str | None = None

    def as_dict(self) -> dict[str, Any]:
        return {
            "allowed": self.allowed,
            "reason": self.reason,
            "which": self.which,
            "note": self.note,
        }


def _usd(value: Decimal) -> str:
    """$ with at least 2 and at most 6 decimals: "$5.00", "$0.0123", "$0.000002"."""
    text = f"{value.quantize(Decimal('0.000001'), rounding=ROUND_HALF_EVEN):f}"
    whole, _, frac = text.partition(".")
    frac = frac.rstrip("0").ljust(2, "0")
    return f"${whole}.{frac}"


def _tokens_refusal(
    label: str, which: str, limit: int, spent: int, estimate: int
) -> BudgetVerdict | None:
    if spent >= limit:
        return BudgetVerdict(False, f"{label} token budget {limit} reached ({spent} spent)", which)
    if spent + estimate > limit:
        return BudgetVerdict(
            False,
            f"{label} token budget {limit} would be exceeded "
            f"({spent} spent + {estimate} estimated)",
            which,
        )
    return None


def _usd_refusal(
    label: str, which: str, limit: Decimal, spent: Decimal, estimate: Decimal, unpriced: int
) -> BudgetVerdict | None:
    blind = f"; {unpriced} more tokens at unknown prices" if unpriced else ""
    if spent >= limit:
        return BudgetVerdict(
            False, f"{label} USD budget {_usd(limit)} reached ({_usd(spent)} spent{blind})", which
        )
    if spent + estimate > limit:
        return BudgetVerdict(
            False,
            f"{label} USD budget {_usd(limit)} would be exceeded "
            f"({_usd(spent)} spent + {_usd(estimate)} estimated{blind})",
            which,
        )
    return None


def check(
    limits: BudgetLimits,
    spent: Spent,
    scope: Scope,
    estimate_tokens: int = 0,
    *,
    estimate_usd: Decimal | None = None,
) -> BudgetVerdict:
    """May one more model call run in `scope`?

    Boundary: a cap is spent once spending is at or above it, so a call is refused when
    spending has reached the cap, or when spending plus the estimate would pass it (a call that
    lands exactly on the cap is allowed; the next one is not). Caps are checked scope tokens,
    scope USD, hourly tokens, hourly USD; the first refusal is reported.

    Unpriced calls count toward token caps but cannot toward USD caps, so a USD cap alone does
    not bound them: the verdict stays allowed (the model is optional, but a missing price entry
    should not silently switch it off) and `note` says how many tokens the USD caps could not
    see, for the audit; a USD refusal's reason mentions them too. Token caps are the backstop.
    """
    if scope not in ("incident", "conversation"):
        raise ValueError(f"unknown budget scope {scope!r}")
    if estimate_tokens < 0 or (estimate_usd is not None and estimate_usd < 0):
        raise ValueError("estimates must be >= 0")
    est_usd = estimate_usd if estimate_usd is not None else Decimal(0)
    scope_tokens: int | None = getattr(limits, f"{scope}_tokens")
    scope_usd: Decimal | None = getattr(limits, f"{scope}_usd")

    refusal: BudgetVerdict | None = None
    if scope_tokens is not None:
        refusal = _tokens_refusal(
            scope, f"{scope}_tokens", scope_tokens, spent.tokens, estimate_tokens
        )
    if refusal is None and scope_usd is not None:
        refusal = _usd_refusal(
            scope, f"{scope}_usd", scope_usd, spent.usd, est_usd, spent.unpriced_tokens
        )
    if refusal is None and limits.hourly_tokens is not None:
        refusal = _tokens_refusal(
            "hourly", "hourly_tokens", limits.hourly_tokens, spent.hour_tokens, estimate_tokens
        )
    if refusal is None and limits.hourly_usd is not None:
        refusal = _usd_refusal(
            "hourly",
            "hourly_usd",
            limits.hourly_usd,
            spent.hour_usd,
            est_usd,
            spent.hour_unpriced_tokens,
        )
    if refusal is not None:
        return refusal

    blind: list[str] = []
    if scope_usd is not None and spent.unpriced_tokens:
        blind.append(f"{scope} USD budget excludes {spent.unpriced_tokens} tokens")
    if limits.hourly_usd is not None and spent.hour_unpriced_tokens:
        blind.append(f"hourly USD budget excludes {spent.hour_unpriced_tokens} tokens")
    note = "; ".join(blind) + " at unknown prices" if blind else None
    return BudgetVerdict(True, note=note)
