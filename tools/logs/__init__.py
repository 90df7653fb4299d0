"""Log sources (JSONL files, Grafana Loki) and the READ tools logs.search, logs.count_by and
logs.patterns."""
