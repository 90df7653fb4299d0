"""Incident intake: webhook payload schemas, normalisation, dedup/grouping store, group commit."""
