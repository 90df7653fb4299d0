"""The README's quickstart, run as written: `make run`, then the client commands."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import time
from pathlib import Path

import httpx
import pytest

from tests.support import ROOT, free_port

pytestmark = pytest.mark.slow


def _quickstart_blocks() -> tuple[str, str]:
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    section = readme.split("## Quickstart", 1)[1].split("\n## ", 1)[0]
    blocks = re.findall(r"```sh\n(.*?)```", section, flags=re.S)
    assert len(blocks) == 2, "the quickstart has a server block and a client block"
    return blocks[0].strip(), blocks[1]


def test_readme_quickstart_works_as_written(tmp_path: Path) -> None:
    server_cmd, client_block = _quickstart_blocks()
    assert server_cmd == "make run"
    port = free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("METAOPS_")}
    # Only where it listens and keeps state differ from a developer's run: not the commands.
    env.update({"METAOPS_DATA_DIR": str(tmp_path / "var"), "METAOPS_PORT": str(port),
                "METAOPS_URL": f"http://127.0.0.1:{port}"})
    log = (tmp_path / "make-run.log").open("w+b")
    proc = subprocess.Popen(["make", "run"], cwd=ROOT, env=env, stdout=log,
                            stderr=subprocess.STDOUT, start_new_session=True)
    try:
        token = None
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline and token is None:
            assert proc.poll() is None, (tmp_path / "make-run.log").read_text()
            found = re.search(r"bootstrap-admin token \(shown once.*?\): (mo_\S+)",
                              (tmp_path / "make-run.log").read_text())
            token = found.group(1) if found else None
            time.sleep(0.2)
        assert token, (tmp_path / "make-run.log").read_text()
        while time.monotonic() < deadline:
            try:
                if httpx.get(f"http://127.0.0.1:{port}/readyz", timeout=1).status_code == 200:
                    break
            except httpx.TransportError:
                time.sleep(0.2)
        placeholder = "export METAOPS_TOKEN=mo_..."
        script = client_block.replace(placeholder, f"export METAOPS_TOKEN={token}")
        assert script != client_block
        done = subprocess.run(["bash", "-euo", "pipefail", "-c", script], cwd=ROOT, env=env,
                              capture_output=True, text=True, timeout=120, check=False)
        assert done.returncode == 0, done.stdout + done.stderr
        out = done.stdout
        assert "accepted: incidents 1" in out
        assert "#1 " in out and "OpenAI error rate 92% over 5m on chat-api" in out
        assert "Incident #1:" in out and "LLMProviderErrorRateHigh [firing] chat-api" in out
        assert "incident.opened" in out and "alert.received" in out
        assert "audit chain OK" in out
        # The admin token was printed once and is not stored in clear.
        db_bytes = b"".join(p.read_bytes() for p in (tmp_path / "var").glob("metaops.db*"))
        assert token.encode() not in db_bytes
    finally:
        os.killpg(proc.pid, signal.SIGTERM)
        try:
            proc.wait(20)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
        log.close()
