"""Log sources (JSONL files, Grafana Loki) and the READ tools logs.search and logs.count_by."""
