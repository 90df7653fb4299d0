"""Framework-free safety: redaction, audit, tokens, identities, policy, approvals, budgets."""
