"""Plain-text rendering of specialists' findings and proposed actions (CLI, later Slack)."""

from __future__ import annotations

from typing import Any


def _money(value: Any) -> str:
    return "-" if value is None else f"${float(value):,.2f}"


def _patterns(data: dict[str, Any]) -> list[str]:
    lines = []
    for p in data.get("patterns") or []:
        services = ", ".join(p.get("services") or []) or "-"
        lines.append(f"    {p.get('share', 0) * 100:5.1f} %  {p.get('count', 0):>7,}  "
                     f"[{p.get('level', '?')}] {p.get('template', '')}")
        lines.append(f"             seen {p.get('first_seen')} .. {p.get('last_seen')} "
                     f"in {services}")
        if p.get("exemplar"):
            lines.append(f"             e.g. {p['exemplar'][:160]}")
    return lines


def _costs(data: dict[str, Any]) -> list[str]:
    lines = [f"    burn rate {_money(data.get('burn_rate_usd_per_hour'))}/h, baseline "
             f"{_money(data.get('baseline_burn_rate_usd_per_hour'))}/h, budget "
             f"{_money(data.get('budget_usd_per_hour'))}/h"]
    if data.get("cost_per_query_p50") is not None:
        lines.append(f"    cost per query p50 ${data['cost_per_query_p50']:.4f}, "
                     f"p99 ${data.get('cost_per_query_p99') or 0:.4f}")
    for title, key, name in (("top users", "top_users", "user_id"),
                             ("top models", "top_models", "model")):
        rows = data.get(key) or []
        if rows:
            lines.append(f"    {title}:")
            lines.extend(f"      {r.get(name)!s:<24} {_money(r.get('cost_usd')):>12}  "
                         f"{r.get('tokens', 0):>12,} tokens  {r.get('requests', 0):>8,} requests"
                         for r in rows[:5])
    for u in data.get("runaway_users") or []:
        lines.append(f"    RUNAWAY {u.get('user_id')}: {'; '.join(u.get('reasons') or [])}")
    return lines


def finding_lines(finding: dict[str, Any]) -> list[str]:
    """One finding as indented text: who, the summary, then its figures."""
    data = finding.get("data") or {}
    lines = [f"  [{finding.get('specialist')}] {finding.get('summary')}"]
    if finding.get("kind") == "log_patterns":
        lines.extend(_patterns(data))
    elif finding.get("kind") == "cost_report":
        lines.extend(_costs(data))
    return lines
