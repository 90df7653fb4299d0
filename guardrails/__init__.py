"""Framework-free safety layer: redaction, audit trail, tokens, policy and approvals."""
