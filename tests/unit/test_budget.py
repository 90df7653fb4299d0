"""Tests for guardrails.budget: price matching and exact costs, limits, and budget verdicts."""

from __future__ import annotations

import json
from decimal import Decimal
from typing import Any

import pytest
from pydantic import ValidationError

from guardrails.budget import (
    BudgetLimits,
    BudgetVerdict,
    Cost,
    PriceTable,
    Spent,
    check,
)

PRICES: dict[str, Any] = {
    "gpt-4o-mini": {"input": 0.15, "output": 0.6},
    "gpt-4o": {"input": 2.5, "output": 10},
    "gpt-4": {"input": 30, "output": 60},
    "llama3": {"input": "0", "output": "0"},
}


@pytest.fixture
def table() -> PriceTable:
    return PriceTable.from_setting(PRICES)


# -- PriceTable ------------------------------------------------------------------------------


def test_parses_floats_without_float_drift(table: PriceTable) -> None:
    price = table.root["gpt-4o-mini"]
    assert price.input == Decimal("0.15")
    assert price.output == Decimal("0.6")


def test_from_setting_accepts_json_text_mapping_and_nothing() -> None:
    from_json = PriceTable.from_setting(json.dumps(PRICES))
    assert from_json == PriceTable.from_setting(PRICES)
    assert PriceTable.from_setting(None).root == {}
    assert PriceTable.from_setting("  ").root == {}
    assert PriceTable().root == {}


@pytest.mark.parametrize(
    "bad",
    [
        {"m": {"input": -1, "output": 1}},
        {"m": {"input": 1}},
        {"m": {"input": 1, "output": 1, "cached": 0.5}},
        {"m": {"input": "NaN", "output": 1}},
        {"m": {"input": "cheap", "output": 1}},
        ["gpt-4o"],
    ],
)
def test_malformed_tables_are_refused(bad: Any) -> None:
    with pytest.raises(ValidationError):
        PriceTable.from_setting(bad)


def test_malformed_json_is_refused() -> None:
    with pytest.raises(ValidationError):
        PriceTable.from_setting("{not json")


@pytest.mark.parametrize(
    ("model", "priced_as"),
    [
        ("gpt-4o-mini", "gpt-4o-mini"),  # exact
        ("gpt-4o-mini-2024-07-18", "gpt-4o-mini"),  # longest prefix, not "gpt-4o"
        ("gpt-4o-2024-08-06", "gpt-4o"),
        ("gpt-4-0613", "gpt-4"),
        ("llama3:70b", "llama3"),
        ("llama3@latest", "llama3"),
        ("gpt-4.1", None),  # "gpt-4" then "." is another model, not a variant
        ("gpt-4omni", None),
        ("gpt-4o-", "gpt-4o"),
        ("gpt", None),
        ("", None),
        ("claude-3-5-sonnet", None),
        ("GPT-4O-MINI", None),  # ids are matched as given
    ],
)
def test_match(table: PriceTable, model: str, priced_as: str | None) -> None:
    assert table.match(model) == priced_as


def test_cost_is_exact(table: PriceTable) -> None:
    # 1,234 in at $0.15/1M + 567 out at $0.60/1M = 0.0001851 + 0.0003402
    assert table.cost("gpt-4o-mini", 1234, 567) == Decimal("0.0005253")
    assert table.cost("gpt-4o-mini-2024-07-18", 1_000_000, 1_000_000) == Decimal("0.75")
    assert table.cost("gpt-4o-mini", 1, 0) == Decimal("0.00000015")
    assert table.cost("gpt-4o-mini", 0, 0) == Decimal(0)
    assert table.cost("llama3:8b", 10_000, 10_000) == Decimal(0)


def test_costs_sum_without_drift(table: PriceTable) -> None:
    total = sum((table.cost("gpt-4o-mini", 1, 1) or Decimal(0) for _ in range(10_000)), Decimal(0))
    assert total == Decimal("0.0075")
    floats = sum(0.15 / 1e6 + 0.6 / 1e6 for _ in range(10_000))
    assert floats != 0.0075  # what Decimal avoids


def test_cost_keeps_ten_places(table: PriceTable) -> None:
    cost = table.cost("gpt-4o-mini", 7, 3)
    assert cost == Decimal("0.00000285")
    assert cost is not None
    assert cost.as_tuple().exponent == -10


def test_unknown_model_is_flagged_not_an_error(table: PriceTable) -> None:
    assert table.cost("mystery-model", 100, 100) is None
    quote = table.quote("mystery-model", 100, 100)
    assert quote == Cost("mystery-model", 100, 100, None, None)
    assert not quote.known
    assert quote.as_dict() == {
        "model": "mystery-model",
        "input_tokens": 100,
        "output_tokens": 100,
        "cost_usd": None,
        "priced_as": None,
    }


def test_quote_names_the_price_used(table: PriceTable) -> None:
    quote = table.quote("gpt-4o-2024-08-06", 1000, 100)
    assert quote.known
    assert quote.priced_as == "gpt-4o"
    assert quote.usd == Decimal("0.0035")
    assert quote.as_dict()["cost_usd"] == "0.0035000000"


def test_negative_tokens_are_refused(table: PriceTable) -> None:
    with pytest.raises(ValueError, match=">= 0"):
        table.cost("gpt-4o", -1, 0)


def test_table_is_immutable(table: PriceTable) -> None:
    with pytest.raises(ValidationError):
        table.root["gpt-4o"].input = Decimal(0)  # type: ignore[misc]


# -- BudgetLimits and Spent ------------------------------------------------------------------


def test_limits_default_to_unlimited_and_parse_from_settings() -> None:
    assert BudgetLimits() == BudgetLimits(
        incident_tokens=None,
        incident_usd=None,
        conversation_tokens=None,
        conversation_usd=None,
        hourly_tokens=None,
        hourly_usd=None,
    )
    limits = BudgetLimits.model_validate({"incident_tokens": 20000, "hourly_usd": 5})
    assert limits.hourly_usd == Decimal(5)


@pytest.mark.parametrize(
    "bad",
    [{"incident_tokens": -1}, {"hourly_usd": -0.01}, {"hourly_usd": "inf"}, {"daily_usd": 1}],
)
def test_bad_limits_are_refused(bad: dict[str, Any]) -> None:
    with pytest.raises(ValidationError):
        BudgetLimits.model_validate(bad)


def test_spent_refuses_negative_values() -> None:
    with pytest.raises(ValidationError):
        Spent(tokens=-1)
    assert Spent.model_validate({"usd": 0.1}).usd == Decimal("0.1")  # from a float column


# -- check -----------------------------------------------------------------------------------


def test_nothing_limited_allows() -> None:
    verdict = check(BudgetLimits(), Spent(tokens=10**9, usd=Decimal(10**6)), "incident")
    assert verdict == BudgetVerdict(True)
    assert verdict.as_dict() == {"allowed": True, "reason": None, "which": None, "note": None}


def test_incident_tokens_over_the_limit() -> None:
    verdict = check(BudgetLimits(incident_tokens=20000), Spent(tokens=20480), "incident")
    assert verdict == BudgetVerdict(
        False, "incident token budget 20000 reached (20480 spent)", "incident_tokens"
    )


def test_at_the_limit_is_spent() -> None:
    limits = BudgetLimits(incident_tokens=20000, conversation_usd=Decimal("0.50"))
    at = check(limits, Spent(tokens=20000), "incident")
    assert not at.allowed
    assert at.reason == "incident token budget 20000 reached (20000 spent)"
    assert check(limits, Spent(tokens=19999), "incident").allowed
    at_usd = check(limits, Spent(usd=Decimal("0.5")), "conversation")
    assert at_usd.which == "conversation_usd"
    assert at_usd.reason == "conversation USD budget $0.50 reached ($0.50 spent)"
    assert check(limits, Spent(usd=Decimal("0.4999999999")), "conversation").allowed


def test_estimate_landing_exactly_on_the_limit_is_allowed() -> None:
    limits = BudgetLimits(incident_tokens=20000)
    assert check(limits, Spent(tokens=19000), "incident", 1000).allowed
    verdict = check(limits, Spent(tokens=19000), "incident", 1001)
    assert not verdict.allowed
    assert verdict.which == "incident_tokens"
    assert verdict.reason == (
        "incident token budget 20000 would be exceeded (19000 spent + 1001 estimated)"
    )


def test_usd_estimate() -> None:
    limits = BudgetLimits(hourly_usd=Decimal(5))
    spent = Spent(hour_usd=Decimal("4.99"))
    assert check(limits, spent, "incident", estimate_usd=Decimal("0.01")).allowed
    verdict = check(limits, spent, "incident", estimate_usd=Decimal("0.0123"))
    assert not verdict.allowed
    assert verdict.which == "hourly_usd"
    assert verdict.reason == (
        "hourly USD budget $5.00 would be exceeded ($4.99 spent + $0.0123 estimated)"
    )


def test_scopes_use_their_own_limits() -> None:
    limits = BudgetLimits(incident_tokens=100, conversation_tokens=1000)
    spent = Spent(tokens=500)
    assert check(limits, spent, "incident").which == "incident_tokens"
    assert check(limits, spent, "conversation").allowed
    only_chat = BudgetLimits(conversation_usd=Decimal(1))
    assert check(only_chat, Spent(usd=Decimal(2)), "incident").allowed
    assert check(only_chat, Spent(usd=Decimal(2)), "conversation").which == "conversation_usd"


def test_hourly_limits_apply_to_every_scope() -> None:
    limits = BudgetLimits(hourly_tokens=100_000)
    spent = Spent(tokens=10, hour_tokens=100_000)
    for scope in ("incident", "conversation"):
        verdict = check(limits, spent, scope)
        assert verdict.which == "hourly_tokens"
        assert verdict.reason == "hourly token budget 100000 reached (100000 spent)"


def test_first_refusal_in_a_fixed_order_is_reported() -> None:
    limits = BudgetLimits(
        incident_tokens=10, incident_usd=Decimal(1), hourly_tokens=10, hourly_usd=Decimal(1)
    )
    everything = Spent(tokens=10, usd=Decimal(1), hour_tokens=10, hour_usd=Decimal(1))
    assert check(limits, everything, "incident").which == "incident_tokens"
    assert check(limits, everything.model_copy(update={"tokens": 0}), "incident").which == (
        "incident_usd"
    )
    hourly_only = Spent(hour_tokens=10, hour_usd=Decimal(1))
    assert check(limits, hourly_only, "incident").which == "hourly_tokens"
    assert check(limits, Spent(hour_usd=Decimal(1)), "incident").which == "hourly_usd"


def test_zero_limit_means_no_calls() -> None:
    verdict = check(BudgetLimits(conversation_tokens=0), Spent(), "conversation")
    assert not verdict.allowed
    assert verdict.reason == "conversation token budget 0 reached (0 spent)"


def test_usd_amounts_are_formatted_readably() -> None:
    limits = BudgetLimits(incident_usd=Decimal("0.000002"))
    verdict = check(limits, Spent(usd=Decimal("0.0000025")), "incident")
    assert verdict.reason == "incident USD budget $0.000002 reached ($0.000002 spent)"
    big = check(BudgetLimits(incident_usd=Decimal(1200)), Spent(usd=Decimal(1300)), "incident")
    assert big.reason == "incident USD budget $1200.00 reached ($1300.00 spent)"


# -- unpriced spending -------------------------------------------------------------------------


def test_unpriced_tokens_count_toward_token_limits() -> None:
    limits = BudgetLimits(incident_tokens=1000)
    # 800 of the 1000 spent tokens went to an unpriced model; tokens still count them all.
    verdict = check(limits, Spent(tokens=1000, unpriced_tokens=800), "incident")
    assert verdict.which == "incident_tokens"


def test_unpriced_spending_does_not_trip_usd_limits_but_is_noted() -> None:
    limits = BudgetLimits(incident_usd=Decimal(1), hourly_usd=Decimal(5))
    spent = Spent(
        tokens=50_000,
        usd=Decimal("0.10"),
        unpriced_tokens=40_000,
        hour_tokens=90_000,
        hour_usd=Decimal("0.20"),
        hour_unpriced_tokens=70_000,
    )
    verdict = check(limits, spent, "incident")
    assert verdict.allowed
    assert verdict.reason is None
    assert verdict.note == (
        "incident USD budget excludes 40000 tokens; "
        "hourly USD budget excludes 70000 tokens at unknown prices"
    )


def test_no_note_without_a_usd_limit_or_without_unpriced_spending() -> None:
    tokens_only = BudgetLimits(incident_tokens=10**6)
    assert check(tokens_only, Spent(unpriced_tokens=5), "incident").note is None
    assert check(BudgetLimits(incident_usd=Decimal(1)), Spent(tokens=5), "incident").note is None
    hourly = check(BudgetLimits(hourly_usd=Decimal(1)), Spent(hour_unpriced_tokens=5), "incident")
    assert hourly.note == "hourly USD budget excludes 5 tokens at unknown prices"


def test_usd_refusal_mentions_unpriced_tokens() -> None:
    limits = BudgetLimits(incident_usd=Decimal(1))
    verdict = check(limits, Spent(usd=Decimal("1.25"), unpriced_tokens=3000), "incident")
    assert verdict.reason == (
        "incident USD budget $1.00 reached ($1.25 spent; 3000 more tokens at unknown prices)"
    )


# -- end to end with the price table --------------------------------------------------------


def test_price_table_and_check_together(table: PriceTable) -> None:
    limits = BudgetLimits(incident_usd=Decimal("0.01"))
    spent_usd = Decimal(0)
    calls = 0
    while check(limits, Spent(usd=spent_usd), "incident").allowed:
        cost = table.cost("gpt-4o-2024-08-06", 1000, 500)  # $0.0075 a call
        assert cost is not None
        spent_usd += cost
        calls += 1
    assert calls == 2
    assert spent_usd == Decimal("0.015")


def test_bad_arguments_are_refused() -> None:
    with pytest.raises(ValueError, match="scope"):
        check(BudgetLimits(), Spent(), "hour")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="estimates"):
        check(BudgetLimits(), Spent(), "incident", -1)
    with pytest.raises(ValueError, match="estimates"):
        check(BudgetLimits(), Spent(), "incident", estimate_usd=Decimal(-1))
