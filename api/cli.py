"""The `metaops` command line: server, database, tokens, and HTTP client commands."""

from __future__ import annotations

import asyncio
import json
import sys
import time
from pathlib import Path
from typing import Annotated, Any, NoReturn

import httpx
import typer

from core.errors import MetaopsError
from core.settings import Settings, get_settings

app = typer.Typer(help="metaops: autonomous operations for LLM applications.",
                  no_args_is_help=True, pretty_exceptions_enable=False)
db_app = typer.Typer(help="Database schema.", no_args_is_help=True)
token_app = typer.Typer(help="API tokens.", no_args_is_help=True)
alert_app = typer.Typer(help="Send alerts (as a webhook sender would).", no_args_is_help=True)
incidents_app = typer.Typer(help="Incidents.", no_args_is_help=True)
audit_app = typer.Typer(help="The audit trail.", no_args_is_help=True)
actions_app = typer.Typer(help="Proposed actions and their approval.", no_args_is_help=True)
postmortem_app = typer.Typer(help="Post-mortems of resolved incidents.", no_args_is_help=True)
principal_app = typer.Typer(help="Slack users and the principals they act as.",
                            no_args_is_help=True)
slack_app = typer.Typer(help="Slack.", no_args_is_help=True)
for _sub, _name in ((db_app, "db"), (token_app, "token"), (alert_app, "alert"),
                    (incidents_app, "incidents"), (audit_app, "audit"), (actions_app, "actions"),
                    (postmortem_app, "postmortem"), (principal_app, "principal"),
                    (slack_app, "slack")):
    app.add_typer(_sub, name=_name)

EXIT_USAGE, EXIT_UNREACHABLE, EXIT_AUTH, EXIT_CHAIN = 1, 2, 3, 4


def fail(message: str, code: int = EXIT_USAGE) -> NoReturn:
    """The one place CLI errors become a message on stderr and an exit code."""
    typer.echo(f"error: {message}", err=True)
    raise typer.Exit(code)


def _settings() -> Settings:
    try:
        return get_settings()
    except Exception as exc:  # pydantic's ValidationError, shown without a traceback
        fail(f"bad configuration: {exc}")


def _client(settings: Settings) -> httpx.Client:
    headers = {}
    if settings.token is not None:
        headers["Authorization"] = f"Bearer {settings.token.get_secret_value()}"
    return httpx.Client(base_url=settings.url, headers=headers, timeout=30.0)


def _request(method: str, path: str, **kwargs: Any) -> httpx.Response:
    settings = _settings()
    try:
        with _client(settings) as client:
            response = client.request(method, path, **kwargs)
    except httpx.TransportError as exc:
        fail(f"cannot reach metaops at {settings.url} ({exc.__class__.__name__}); "
             "is `metaops serve` running? (set METAOPS_URL)", EXIT_UNREACHABLE)
    if response.status_code in (401, 403):
        hint = "" if settings.token else " (METAOPS_TOKEN is not set)"
        fail(f"{_message(response)}{hint}", EXIT_AUTH)
    if response.status_code >= 400:
        fail(f"HTTP {response.status_code}: {_message(response)}")
    return response


def _message(response: httpx.Response) -> str:
    try:
        err = response.json()["error"]
        fields = err.get("details", {}).get("fields")
        extra = "; ".join(f"{f['field']}: {f['problem']}" for f in fields[1:]) if fields else ""
        return str(err["message"]) + (f"; {extra}" if extra else "")
    except (ValueError, KeyError, TypeError):
        return response.text[:300] or response.reason_phrase


def _print_json(value: Any) -> None:
    typer.echo(json.dumps(value, indent=2, ensure_ascii=False))


@app.command()
def serve(
    host: Annotated[str | None, typer.Option(help="Bind address (METAOPS_HOST)")] = None,
    port: Annotated[int | None, typer.Option(help="Port (METAOPS_PORT)")] = None,
) -> None:
    """Migrate the database, then serve the API, webhooks and background workers."""
    import logging

    import uvicorn

    from api.app import create_app
    from core.migrations import upgrade
    from core.telemetry import setup_tracing

    settings = _settings()
    logging.basicConfig(level=settings.log_level.upper(),
                        format="%(asctime)s %(levelname)s %(name)s %(message)s")
    settings.data_dir.mkdir(parents=True, exist_ok=True)
    upgrade(settings.resolved_database_url)
    tracing = setup_tracing(settings)  # None unless an OTLP endpoint is configured
    try:
        uvicorn.run(create_app(settings), host=host or settings.host,
                    port=port or settings.port, log_level=settings.log_level.lower(),
                    access_log=False)
    finally:
        if tracing is not None:
            tracing.shutdown()  # flushes the spans still batched


@db_app.command("upgrade")
def db_upgrade() -> None:
    """Apply all migrations to the configured database."""
    from core.migrations import upgrade

    settings = _settings()
    settings.data_dir.mkdir(parents=True, exist_ok=True)
    upgrade(settings.resolved_database_url)
    typer.echo("database is at the latest revision")


@token_app.command("create")
def token_create(
    name: Annotated[str, typer.Option(help="Principal name the token acts as")],
    role: Annotated[str, typer.Option(help="viewer | approver | admin | webhook")],
    source: Annotated[str | None, typer.Option(help="Webhook tokens: limit to one source")] = None,
) -> None:
    """Create a token in the configured database and print it once."""
    from core.database import database_from_settings
    from guardrails import audit
    from guardrails.tokens import create_token

    settings = _settings()

    async def run() -> str:
        db = database_from_settings(settings)
        try:
            async with db.write() as session:
                row, token = await create_token(session, name=name, role=role, source=source,
                                                created_by="cli")
                await audit.append(session, type="token.created",
                                   actor=audit.Actor("human", "cli", "cli"),
                                   target=f"api-token/{row.name}", outcome="created",
                                   payload={"role": row.role, "source": row.source})
            return token
        finally:
            await db.dispose()

    try:
        token = asyncio.run(run())
    except MetaopsError as exc:
        fail(exc.message)
    typer.echo(token)


@alert_app.command("send")
def alert_send(
    file: Annotated[Path, typer.Argument(help="JSON body to post", exists=True, dir_okay=False)],
    source: Annotated[str, typer.Option(help="alertmanager|grafana|pagerduty|generic")] = (
        "alertmanager"),
) -> None:
    """Post FILE to /webhooks/SOURCE and print the incidents it touched."""
    body = file.read_bytes()
    response = _request("POST", f"/webhooks/{source}", content=body,
                        headers={"Content-Type": "application/json"})
    result = response.json()
    ids = ", ".join(str(i) for i in result.get("incident_ids", [])) or "none"
    typer.echo(f"accepted: incidents {ids}")


@incidents_app.command("list")
def incidents_list(
    status: Annotated[str | None, typer.Option(help="open | resolved")] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON")] = False,
) -> None:
    """List incidents, newest first."""
    params = {"status": status} if status else {}
    data = _request("GET", "/api/v1/incidents", params=params).json()
    if as_json:
        _print_json(data)
        return
    for inc in data["incidents"]:
        typer.echo(f"#{inc['id']:<5} {inc['status']:<9} {inc['severity']:<9} "
                   f"{inc['alert_count']:>3} alerts  {inc['title']}")


@incidents_app.command("show")
def incidents_show(
    incident_id: Annotated[int, typer.Argument(help="Incident id")],
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON")] = False,
) -> None:
    """Show one incident: alerts, findings, actions and timeline."""
    inc = _request("GET", f"/api/v1/incidents/{incident_id}").json()
    if as_json:
        _print_json(inc)
        return
    typer.echo(f"Incident #{inc['id']}: {inc['title']}")
    typer.echo(f"  status {inc['status']}, severity {inc['severity']}, "
               f"investigation {inc['investigation']}")
    typer.echo(f"  services: {', '.join(inc['services']) or '-'}; opened {inc['created_at']}")
    typer.echo("Alerts:")
    for a in inc["alerts"]:
        typer.echo(f"  - {a['name']} [{a['status']}] {a['service'] or '-'}: {a['title']}"
                   f" (seen {a['times_seen']}x)")
    if inc.get("findings"):
        from api.render import finding_lines

        typer.echo("Findings:")
        for finding in inc["findings"]:
            for line in finding_lines(finding):
                typer.echo(line)
    if inc.get("actions"):
        typer.echo("Actions:")
        for act in inc["actions"]:
            typer.echo(f"  - {act['id']} [{act['status']}] {act['tool']}: {act['preview']}")
    typer.echo("Timeline:")
    for e in inc["timeline"]:
        typer.echo(f"  {e['ts']}  {e['type']:<22} by {e['actor']['id']} via {e['actor']['via']}")


@incidents_app.command("resolve")
def incidents_resolve(incident_id: Annotated[int, typer.Argument(help="Incident id")]) -> None:
    """Resolve an incident by hand (its post-mortem is drafted next)."""
    out = _request("POST", f"/api/v1/incidents/{incident_id}/resolve").json()
    typer.echo(f"incident {incident_id}: {out['message']}")


@incidents_app.command("note")
def incidents_note(
    incident_id: Annotated[int, typer.Argument(help="Incident id")],
    text: Annotated[str, typer.Argument(help="The note")],
) -> None:
    """Add a note to the incident's timeline (a new audit event)."""
    out = _request("POST", f"/api/v1/incidents/{incident_id}/notes", json={"text": text}).json()
    typer.echo(f"note added as event {out['seq']}")


@postmortem_app.command("show")
def postmortem_show(
    incident_id: Annotated[int, typer.Argument(help="Incident id")],
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON")] = False,
) -> None:
    """Print the latest post-mortem revision (Markdown), or JSON with the validator's view."""
    out = _request("GET", f"/api/v1/incidents/{incident_id}/postmortem").json()
    if as_json:
        _print_json(out)
        return
    typer.echo(out["markdown"])
    for problem in out["problems"]:
        typer.echo(f"line {problem['line']}: {problem['message']}", err=True)


@postmortem_app.command("regenerate")
def postmortem_regenerate(incident_id: Annotated[int, typer.Argument(help="Incident id")]) -> None:
    """Re-resolve the auto-filled sections (sections a human edited are kept)."""
    _request("POST", f"/api/v1/incidents/{incident_id}/postmortem/regenerate")
    typer.echo(f"incident {incident_id}: post-mortem regeneration queued")


@audit_app.command("verify")
def audit_verify(
    file: Annotated[Path | None, typer.Option(help="Verify an NDJSON export offline")] = None,
) -> None:
    """Check the hash chain (database, or an export with --file); exit 4 naming the bad seq."""
    from guardrails import audit

    if file is not None:
        if not file.is_file():
            fail(f"no such file: {file}")
        with file.open(encoding="utf-8", errors="replace") as handle:
            report = audit.verify_file(handle)
    else:
        from core.database import database_from_settings

        settings = _settings()

        async def run() -> audit.VerifyReport:
            db = database_from_settings(settings)
            try:
                async with db.read() as session:
                    return await audit.verify_database(session)
            finally:
                await db.dispose()

        try:
            report = asyncio.run(run())
        except Exception as exc:
            fail(f"cannot read the audit trail: {exc.__class__.__name__}: {exc}",
                 EXIT_UNREACHABLE)
    if report.ok:
        typer.echo(f"audit chain OK: {report.count} events, head seq {report.head_seq} "
                   f"hash {report.head_hash[:16]}")
        return
    fail(f"audit chain BROKEN at seq {report.first_bad_seq}: {report.reason} "
         f"({report.count} events verified before it)", EXIT_CHAIN)


@audit_app.command("export")
def audit_export(
    out: Annotated[Path, typer.Option(help="Where to write the NDJSON export")],
) -> None:
    """Download the whole audit trail as NDJSON (needs an admin token)."""
    settings = _settings()
    count = 0
    try:
        with _client(settings) as client, client.stream("GET", "/api/v1/audit/export") as resp:
            if resp.status_code >= 400:
                resp.read()
                fail(f"HTTP {resp.status_code}: {_message(resp)}",
                     EXIT_AUTH if resp.status_code in (401, 403) else EXIT_USAGE)
            with out.open("w", encoding="utf-8") as handle:
                for line in resp.iter_lines():
                    if line:
                        handle.write(line + "\n")
                        count += 1
    except httpx.TransportError as exc:
        fail(f"cannot reach metaops at {settings.url} ({exc.__class__.__name__})",
             EXIT_UNREACHABLE)
    typer.echo(f"wrote {count} events to {out}")


@audit_app.command("tail")
def audit_tail(
    n: Annotated[int, typer.Option("-n", help="How many recent events")] = 20,
    follow: Annotated[bool, typer.Option("--follow", "-f", help="Keep printing new events")] = (
        False),
) -> None:
    """Print the most recent audit events (and follow new ones with -f)."""
    latest = _request("GET", "/api/v1/audit", params={"order": "desc", "limit": n}).json()
    events = list(reversed(latest["events"]))
    cursor = events[0]["seq"] - 1 if events else 0
    while True:
        data = _request("GET", "/api/v1/audit", params={"cursor": cursor, "limit": 500}).json()
        for e in data["events"]:
            typer.echo(f"{e['seq']:>6} {e['ts']} {e['type']:<22} {e['actor']['id']}"
                       f" via {e['actor']['via']} {e['outcome'] or ''}")
            cursor = e["seq"]
        if not follow:
            return
        if data["next_cursor"] is None:
            time.sleep(1.0)


@actions_app.command("list")
def actions_list(
    status: Annotated[str | None, typer.Option(help="e.g. pending_approval")] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON")] = False,
) -> None:
    """List actions, newest first."""
    data = _request("GET", "/api/v1/actions", params={"status": status} if status else {}).json()
    if as_json:
        _print_json(data)
        return
    for a in data["actions"]:
        typer.echo(f"{a['id']}  {a['status']:<16} {a['tool']:<24} {a['preview']['summary']}")


@actions_app.command("show")
def actions_show(
    action_id: Annotated[str, typer.Argument(help="Action id")],
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON")] = False,
) -> None:
    """Show one action: preview (diff), policy decision, approvals, expiry."""
    a = _request("GET", f"/api/v1/actions/{action_id}").json()
    if as_json:
        _print_json(a)
        return
    typer.echo(f"Action {a['id']}: {a['tool']} [{a['status']}]")
    typer.echo(f"  {a['preview']['summary']}")
    typer.echo(f"  policy: {a['policy'].get('rule')} ({a['policy'].get('reason')})")
    typer.echo(f"  approvals: {len([x for x in a['approvals'] if x['decision'] == 'approve'])}"
               f" of {a['required_approvals']} ({a['approver_role']}+), expires {a['expires_at']}")
    if a["preview"].get("diff"):
        typer.echo(a["preview"]["diff"])
    if a["error"]:
        typer.echo(f"  error: {a['error']}")


@actions_app.command("approve")
def actions_approve(action_id: Annotated[str, typer.Argument(help="Action id")]) -> None:
    """Approve an action (needs role approver)."""
    r = _request("POST", f"/api/v1/actions/{action_id}/approve").json()
    typer.echo(f"{r['message']}: {r['id']} is {r['status']} ({r['approvals']}/{r['required']})")


@actions_app.command("reject")
def actions_reject(
    action_id: Annotated[str, typer.Argument(help="Action id")],
    reason: Annotated[str, typer.Option(help="Why (kept in the audit trail)")],
) -> None:
    """Reject an action; any reject wins."""
    r = _request("POST", f"/api/v1/actions/{action_id}/reject", json={"reason": reason}).json()
    typer.echo(f"rejected: {r['id']} is {r['status']}")


def _on_database(work: Any) -> Any:
    """Run `work(session)` in one write transaction on the configured database."""
    from core.database import database_from_settings

    settings = _settings()

    async def run() -> Any:
        db = database_from_settings(settings)
        try:
            async with db.write() as session:
                return await work(session)
        finally:
            await db.dispose()

    try:
        return asyncio.run(run())
    except MetaopsError as exc:
        fail(exc.message)


@principal_app.command("add")
def principal_add(
    name: Annotated[str, typer.Option(help="Principal name (as in approvals and the audit)")],
    slack_user: Annotated[str, typer.Option(help="Slack user id, e.g. U0123ABCD")],
    role: Annotated[str, typer.Option(help="viewer | approver | admin")],
) -> None:
    """Map a Slack user to a principal: what they may do in Slack comes from this role only."""
    from guardrails import audit
    from guardrails.identities import add_identity

    _on_database(lambda session: add_identity(
        session, slack_user_id=slack_user, name=name, role=role, created_by="cli",
        actor=audit.Actor("human", "cli", "cli")))
    typer.echo(f"Slack user {slack_user} acts as {name} ({role})")


@principal_app.command("remove")
def principal_remove(
    slack_user: Annotated[str, typer.Option(help="Slack user id")],
) -> None:
    """Unmap a Slack user: from now on their clicks and commands are refused."""
    from guardrails import audit
    from guardrails.identities import remove_identity

    _on_database(lambda session: remove_identity(session, slack_user,
                                                 audit.Actor("human", "cli", "cli")))
    typer.echo(f"Slack user {slack_user} is no longer mapped")


@principal_app.command("list")
def principal_list() -> None:
    """The Slack users mapped to principals."""
    from guardrails.identities import list_identities

    async def rows(session: Any) -> list[tuple[str, str, str]]:
        return [(r.slack_user_id, r.name, r.role) for r in await list_identities(session)]

    for user, name, role in _on_database(rows):
        typer.echo(f"{user}\t{name}\t{role}")


@slack_app.command("socket")
def slack_socket(
    host: Annotated[str | None, typer.Option(help="Bind address (METAOPS_HOST)")] = None,
    port: Annotated[int | None, typer.Option(help="Port (METAOPS_PORT)")] = None,
) -> None:
    """Serve as `metaops serve` does, with Slack over Socket Mode (no public Request URL):
    needs METAOPS_SLACK_BOT_TOKEN and METAOPS_SLACK_APP_TOKEN (xapp-...)."""
    import os

    os.environ["METAOPS_SLACK_SOCKET_MODE"] = "true"
    get_settings.cache_clear()
    settings = _settings()
    if settings.slack_bot_token is None or settings.slack_app_token is None:
        fail("Socket Mode needs METAOPS_SLACK_BOT_TOKEN and METAOPS_SLACK_APP_TOKEN")
    serve(host=host, port=port)


@app.command()
def killswitch(state: Annotated[str, typer.Argument(help="on | off | status")]) -> None:
    """Stop (on) or allow (off) all execution of approved actions."""
    if state == "status":
        on = _request("GET", "/api/v1/killswitch").json()["on"]
    elif state in ("on", "off"):
        on = _request("POST", "/api/v1/killswitch", json={"on": state == "on"}).json()["on"]
    else:
        fail("say on, off or status")
    typer.echo(f"kill switch is {'ON: nothing executes' if on else 'off'}")


def main() -> None:
    try:
        app()
    except KeyboardInterrupt:
        sys.exit(130)


if __name__ == "__main__":
    main()
