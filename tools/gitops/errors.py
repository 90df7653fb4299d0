"""Errors of the GitOps tools: failed git commands (with the command and stderr) and refusals."""

from __future__ import annotations

import re
from collections.abc import Sequence

from core.errors import MetaopsError

_URL_USERINFO = re.compile(r"(?P<scheme>[a-zA-Z][a-zA-Z0-9+.-]*://)[^/@\s]+@")


def redact_url(text: str) -> str:
    """Hide credentials embedded in URLs (https://user:token@host/...) before text is shown."""
    return _URL_USERINFO.sub(r"\g<scheme>***@", text)


class GitOpsError(MetaopsError):
    """Something about the GitOps repository went wrong."""

    code = "gitops_error"
    status = 502


class GitCommandError(GitOpsError):
    """A git command failed or timed out; the message names the exact command and its stderr."""

    def __init__(self, argv: Sequence[str], returncode: int | None, stderr: str,
                 stdout: str = "") -> None:
        self.command = redact_url(" ".join(argv))
        self.returncode = returncode
        self.stderr = redact_url(stderr.strip())
        self.stdout = redact_url(stdout.strip())
        outcome = "timed out" if returncode is None else f"failed (exit {returncode})"
        detail = self.stderr or self.stdout or "(no output)"
        super().__init__(f"`{self.command}` {outcome}: {detail}",
                         {"command": self.command, "returncode": returncode,
                          "stderr": self.stderr})


class GitOpsRefused(GitOpsError):
    """The request cannot apply to the repository as it is (unknown flag, variant, version...)."""

    code = "gitops_refused"
    status = 422
