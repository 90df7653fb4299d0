"""The baseline for bench/ingest.py: a bare FastAPI endpoint served the way `metaops serve` serves.

One POST route that reads and parses the JSON body and answers 202 {"status": "accepted"}.
No auth, no validation, no database: the ceiling that FastAPI + uvicorn reach on this machine.

    python bench/bare_app.py --port 8099
"""

from __future__ import annotations

import argparse
import json
from typing import Any

from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse

app = FastAPI(title="bare baseline")


@app.get("/readyz")
async def readyz() -> dict[str, str]:
    return {"status": "ready"}


@app.post("/webhooks/alertmanager", status_code=202)
async def accept(request: Request) -> JSONResponse:
    body: Any = json.loads(await request.body())
    if not isinstance(body, dict):
        return JSONResponse({"status": "rejected"}, status_code=422)
    return JSONResponse({"status": "accepted"}, status_code=202)


def main() -> None:
    import uvicorn

    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--log-level", default="info")
    args = parser.parse_args()
    # The same call `metaops serve` makes (api/cli.py): uvicorn defaults, access log off.
    uvicorn.run(app, host=args.host, port=args.port, log_level=args.log_level, access_log=False)


if __name__ == "__main__":
    main()
