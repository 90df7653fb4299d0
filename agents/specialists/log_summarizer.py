"""The log summarizer: the incident window's error and warning lines mined into patterns."""

from __future__ import annotations

from typing import Any

from agents.specialist_names import LOG_SUMMARIZER
from agents.specialists.deps import GraphDeps
from agents.specialists.findings import StoredFinding, load_finding, record_finding
from agents.specialists.narrative import narrate
from agents.specialists.window import Window
from guardrails.injection import screen
from tools.logs.mining import label

KIND = "log_patterns"
TOOL = "logs.patterns"


def _pct(share: float) -> str:
    return f"{share * 100:.0f} %"


def summarize(data: dict[str, Any], window: Window, services: list[str] | None) -> str:
    """One plain paragraph: how many error lines, in how many patterns, with what shares."""
    where = f"service {', '.join(services)}" if services else "all services"
    span = f"{window.start:%H:%M}–{window.end:%H:%M} UTC"
    patterns: list[dict[str, Any]] = data.get("patterns") or []
    totals: dict[str, int] = data.get("totals") or {}
    distinct: dict[str, int] = data.get("distinct") or {}
    parts: list[str] = []
    errors = [p for p in patterns if p.get("level") == "error"]
    if errors:
        shares = ", ".join(f"{_pct(p['share'])} {label(p['template'])}" for p in errors[:5])
        more = "" if len(errors) <= 5 else f" and {len(errors) - 5} smaller ones"
        n = distinct.get("error", len(errors))
        sentence = (f"{totals.get('error', 0):,} error lines in {n} distinct "
                    f"pattern{'s' if n != 1 else ''}: {shares}{more}")
        parts.append(sentence if sentence.endswith("…") else sentence + ".")
    else:
        parts.append("No error lines.")
    if totals.get("warning"):
        n = distinct.get("warning", 0)
        parts.append(f"{totals['warning']:,} warning lines in {n} pattern"
                     f"{'s' if n != 1 else ''}.")
    malformed = int((data.get("stats") or {}).get("malformed", 0))
    if malformed:
        parts.append(f"{malformed:,} malformed log lines were skipped.")
    return f"{' '.join(parts)} ({where}, {span})"


async def log_summarizer(deps: GraphDeps, incident_id: int, window: Window,
                         services: list[str] | None) -> StoredFinding:
    existing = await load_finding(deps.db, incident_id, LOG_SUMMARIZER, KIND)
    if existing is not None:
        return existing  # re-run after a crash: the first summary stands
    base: dict[str, Any] = {"window": window.as_dict(), "services": services}
    if window.empty:
        data = {**base, "status": "no_data", "patterns": [],
                "reason": "the investigation window is empty (alert starts in the future?)"}
        return await record_finding(deps.db, incident_id, LOG_SUMMARIZER, KIND,
                                    "No log window to look at: the alert starts after now.", data)
    args: dict[str, Any] = {"start": window.start, "end": window.end, "top": deps.config.top}
    if services:
        args["services"] = services
    result = await deps.read(TOOL, args)
    if result is None:
        data = {**base, "status": "no_data", "patterns": [],
                "reason": "no log source is configured (METAOPS_LOGS_PATH or METAOPS_LOKI_URL)"}
        return await record_finding(deps.db, incident_id, LOG_SUMMARIZER, KIND,
                                    "No logs to summarize: no log source is configured.", data)
    if result.status == "error":
        data = {**base, "status": "error", "patterns": [], "error": result.error}
        return await record_finding(deps.db, incident_id, LOG_SUMMARIZER, KIND,
                                    f"Could not read the logs: {result.error}", data)
    found = result.data
    data = {**base, "status": result.status, "source": found.get("source"),
            "patterns": found.get("patterns", []), "totals": found.get("totals", {}),
            "distinct": found.get("distinct", {}), "stats": found.get("stats", {})}
    # Log lines are untrusted too: a pattern that instructs the agent is flagged, never obeyed.
    report = screen({f"patterns[{i}]": {"template": p.get("template"),
                                         "exemplar": p.get("exemplar")}
                     for i, p in enumerate(data["patterns"])})
    if report.suspected:
        data["injection"] = report.as_dict()
    summary = summarize(data, window, services)
    if report.suspected:
        summary += f" Suspected prompt injection in the logs ({', '.join(report.kinds())})."
    highlights = {"patterns": [{"label": label(p["template"]), "level": p.get("level"),
                                "count": p["count"], "share": p["share"]}
                               for p in data["patterns"][:5]],
                  "totals": data["totals"]}
    narrative = await narrate(deps, incident_id, summary, highlights)
    if narrative is not None:
        data["narrative"] = narrative
    return await record_finding(deps.db, incident_id, LOG_SUMMARIZER, KIND, summary, data,
                                highlights)
