"""A real write tool for lifecycle tests: sets keys in a JSON file on disk (no mocks)."""

from __future__ import annotations

import hashlib
import json
import threading
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict

from tools.base import Effect, Preview, ToolResult, ToolSpec


class SetKey(BaseModel):
    model_config = ConfigDict(extra="forbid")
    key: str
    value: str


class FileTool:
    """`test.set_key`: one JSON document; every applied action id is recorded in it."""

    def __init__(self, path: Path, effect: Effect = Effect.WRITE, name: str = "test.set_key"):
        self.path = path
        self.spec = ToolSpec(name, "set a key in a JSON file", SetKey, effect)
        self._lock = threading.Lock()
        self.executions = 0
        if not path.exists():
            path.write_text(json.dumps({"values": {}, "applied": []}))

    def _load(self) -> dict[str, Any]:
        data: dict[str, Any] = json.loads(self.path.read_text())
        return data

    def preview(self, args: BaseModel) -> Preview:
        a = SetKey.model_validate(args.model_dump())
        current = self._load()["values"].get(a.key)
        return Preview(f"{a.key}: {current} → {a.value}", "", current, a.value)

    def snapshot(self, args: BaseModel) -> str:
        return hashlib.sha256(json.dumps(self._load()["values"], sort_keys=True).encode()
                              ).hexdigest()

    def execute(self, args: BaseModel, *, action_id: str, approved_by: list[str],
                snapshot: str) -> ToolResult:
        a = SetKey.model_validate(args.model_dump())
        with self._lock:
            if self.snapshot(a) != snapshot:
                return ToolResult.fail("stale: file changed")
            data = self._load()
            if action_id in data["applied"]:
                return ToolResult.ok(already_applied=True)
            data["values"][a.key] = a.value
            data["applied"].append(action_id)
            data.setdefault("approved_by", {})[action_id] = approved_by
            self.path.write_text(json.dumps(data))
            self.executions += 1
        return ToolResult.ok(key=a.key, value=a.value)

    def reconcile(self, action_id: str) -> bool | None:
        return action_id in self._load()["applied"]

    def inverse(self, args: BaseModel, before: Preview) -> tuple[str, dict[str, Any]] | None:
        a = SetKey.model_validate(args.model_dump())
        return self.spec.name, {"key": a.key, "value": str(before.current)}
