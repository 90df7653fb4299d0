"""A real Prometheus (Debian package) as a child process on loopback, for integration tests."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.support import free_port

PROM_BINARY = os.environ.get("METAOPS_TEST_PROMETHEUS", "/usr/bin/prometheus")


@contextmanager
def running_prometheus(work: Path, config: dict[str, Any], probe: str, min_value: float = 1.0,
                       rules: dict[str, Any] | None = None,
                       wait_seconds: float = 30.0) -> Iterator[str]:
    """Starts Prometheus with `config` (and a rule file), waits until the instant query
    `probe` gives at least `min_value`, yields its base URL and stops it afterwards."""
    if not (Path(PROM_BINARY).exists() or shutil.which(PROM_BINARY)):
        pytest.fail(f"Prometheus binary {PROM_BINARY} is missing: apt-get install prometheus "
                    "(or set METAOPS_TEST_PROMETHEUS)")
    work.mkdir(parents=True, exist_ok=True)
    if rules is not None:
        (work / "rules.yml").write_text(json.dumps(rules))  # JSON is valid YAML
        config = {**config, "rule_files": [str(work / "rules.yml")]}
    (work / "prometheus.yml").write_text(json.dumps(config))
    port = free_port()
    log_path = work / "prometheus.log"
    with log_path.open("wb") as log:
        proc = subprocess.Popen(
            [PROM_BINARY, f"--config.file={work / 'prometheus.yml'}",
             f"--storage.tsdb.path={work / 'data'}", f"--web.listen-address=127.0.0.1:{port}"],
            stdout=log, stderr=subprocess.STDOUT, cwd=work)
    url = f"http://127.0.0.1:{port}"

    def logs() -> str:
        return log_path.read_text(errors="replace")[-4000:]

    try:
        deadline = time.monotonic() + wait_seconds
        while True:
            if proc.poll() is not None:
                pytest.fail(f"Prometheus exited with {proc.returncode}:\n{logs()}")
            try:
                r = httpx.get(f"{url}/api/v1/query", params={"query": probe}, timeout=2.0,
                              trust_env=False)
                result = r.json()["data"]["result"] if r.status_code == 200 else []
                if result and float(result[0]["value"][1]) >= min_value:
                    break
            except (httpx.HTTPError, ValueError, KeyError):
                pass
            if time.monotonic() > deadline:
                pytest.fail(f"`{probe}` not >= {min_value} after {wait_seconds}s:\n{logs()}")
            time.sleep(0.25)
        yield url
    finally:
        if proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
            try:
                proc.wait(10)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(10)
