"""The cost investigator: burn rate against baseline and budget, top spenders, runaway loops."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from agents.specialist_names import COST_INVESTIGATOR
from agents.specialists.config import SpecialistConfig
from agents.specialists.deps import GraphDeps
from agents.specialists.findings import StoredFinding, load_finding, record_finding
from agents.specialists.narrative import narrate
from agents.specialists.window import Window

KIND = "cost_report"
TOOL = "metrics.cost_report"
BURN = timedelta(minutes=15)  # the spend in the 15 minutes before the alert fired, per hour
BASELINE = timedelta(hours=1)  # compared with the hour before that


def runaway_reasons(user: dict[str, Any], config: SpecialistConfig) -> list[str]:
    """Why a user's traffic looks like a loop, or [] if it does not. A loop is sustained high
    request rate plus contexts far above everyone else's or mostly tool calls (an agent that
    keeps calling itself with a growing history)."""
    rpm = float(user.get("requests_per_minute") or 0)
    minutes = float(user.get("active_minutes") or 0)
    if rpm < config.runaway_min_rpm or minutes < config.runaway_min_minutes:
        return []
    reasons = [f"{rpm:.0f} requests/min for {minutes:.0f} min"]
    factor = user.get("context_factor")
    if factor is not None and factor >= config.runaway_context_factor:
        reasons.append(f"prompts {factor:.1f}× the median of other users")
    share = float(user.get("tool_call_share") or 0)
    if share >= config.runaway_tool_call_share:
        reasons.append(f"{share * 100:.0f} % of requests end in tool calls")
    return reasons if len(reasons) > 1 else []


def _money(value: float | None) -> str:
    return "n/a" if value is None else f"${value:,.2f}"


def summarize(data: dict[str, Any]) -> str:
    burn = data.get("burn_rate_usd_per_hour")
    parts = [f"Burn rate {_money(burn)}/h in the 15 min before the alert"]
    base = data.get("baseline_burn_rate_usd_per_hour")
    extra: list[str] = []
    if base is not None:
        ratio = data.get("burn_rate_ratio")
        extra.append(f"baseline {_money(base)}/h" + (f", {ratio:.1f}×" if ratio else ""))
    budget = data.get("budget_usd_per_hour")
    if budget is not None and burn is not None:
        extra.append(f"budget {_money(budget)}/h, {burn / budget:.1f}× the budget")
    text = parts[0] + (f" ({'; '.join(extra)})." if extra else ".")
    users = data.get("top_users") or []
    total = float(data.get("spend_usd") or 0)
    if users:
        top = users[0]
        share = f", {top['cost_usd'] / total * 100:.0f} % of spend" if total else ""
        text += (f" Top user {top['user_id']}: {_money(top['cost_usd'])} over "
                 f"{top['requests']:,} requests{share}.")
    runaway = data.get("runaway_users") or []
    if runaway:
        text += " Runaway: " + "; ".join(
            f"{u['user_id']} ({', '.join(u['reasons'])})" for u in runaway) + "."
    else:
        text += " No user looks like a runaway loop."
    p50, p99 = data.get("cost_per_query_p50"), data.get("cost_per_query_p99")
    if p50 is not None and p99 is not None:
        text += f" Cost per query p50 ${p50:.4f}, p99 ${p99:.4f}."
    return text


async def _report(deps: GraphDeps, start: Any, end: Any, service: str | None,
                  ) -> tuple[str, dict[str, Any], str | None]:
    args: dict[str, Any] = {"start": start, "end": end, "top": deps.config.top}
    if service:
        args["service"] = service
    result = await deps.read(TOOL, args)
    if result is None:
        return "missing", {}, None
    return result.status, result.data, result.error


async def cost_investigator(deps: GraphDeps, incident_id: int, window: Window,
                            service: str | None) -> StoredFinding:
    existing = await load_finding(deps.db, incident_id, COST_INVESTIGATOR, KIND)
    if existing is not None:
        return existing  # re-run after a crash: the first report stands
    cfg = deps.config
    base: dict[str, Any] = {"window": window.as_dict(), "service": service,
                            "budget_usd_per_hour": cfg.budget_usd_per_hour,
                            "runaway_users": [], "top_users": [], "top_models": []}
    status, report, error = await _report(deps, window.start, window.end, service)
    if status == "missing":
        data = {**base, "status": "no_data",
                "reason": "no request log is configured (METAOPS_LOGS_PATH or METAOPS_LOKI_URL)"}
        return await record_finding(deps.db, incident_id, COST_INVESTIGATOR, KIND,
                                    "No spend data: no request log is configured.", data)
    if status == "error":
        data = {**base, "status": "error", "error": error}
        return await record_finding(deps.db, incident_id, COST_INVESTIGATOR, KIND,
                                    f"Could not read the request log: {error}", data)
    fired = window.fired_at
    _, burn, _ = await _report(deps, fired - BURN, fired, service)
    _, before, _ = await _report(deps, fired - BURN - BASELINE, fired - BURN, service)
    burn_rate = _per_hour(burn, BURN)
    baseline = _per_hour(before, BASELINE)
    runaway = []
    for user in report.get("user_activity", []):
        reasons = runaway_reasons(user, cfg)
        if reasons:
            runaway.append({"user_id": user["user_id"], "cost_usd": user.get("cost_usd"),
                            "requests": user.get("requests"),
                            "requests_per_minute": user.get("requests_per_minute"),
                            "context_factor": user.get("context_factor"),
                            "tool_call_share": user.get("tool_call_share"),
                            "reasons": reasons})
    totals = report.get("totals", {})
    data = {**base, "status": status,
            "burn_rate_usd_per_hour": burn_rate,
            "baseline_burn_rate_usd_per_hour": baseline,
            "burn_rate_ratio": round(burn_rate / baseline, 2)
            if burn_rate is not None and baseline else None,
            "over_budget": None if cfg.budget_usd_per_hour is None or burn_rate is None
            else burn_rate > cfg.budget_usd_per_hour,
            "spend_usd": totals.get("cost_usd", 0.0), "requests": totals.get("requests", 0),
            "tokens": totals.get("tokens", 0),
            "top_users": report.get("top_users", []), "top_models": report.get("top_models", []),
            "cost_per_query_p50": report.get("cost_per_query_p50"),
            "cost_per_query_p99": report.get("cost_per_query_p99"),
            "runaway_users": runaway, "user_activity": report.get("user_activity", [])}
    highlights = {"burn_rate_usd_per_hour": burn_rate, "baseline_burn_rate_usd_per_hour": baseline,
                  "top_users": data["top_users"][:3],
                  "runaway_users": [u["user_id"] for u in runaway]}
    summary = summarize(data)
    narrative = await narrate(deps, incident_id, summary, highlights)
    if narrative is not None:
        data["narrative"] = narrative
    return await record_finding(deps.db, incident_id, COST_INVESTIGATOR, KIND, summary, data,
                                highlights)


def _per_hour(report: dict[str, Any], span: timedelta) -> float | None:
    totals = report.get("totals")
    if not totals:
        return None
    return round(float(totals.get("cost_usd", 0.0)) * (timedelta(hours=1) / span), 6)
