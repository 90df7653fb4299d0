"""The LLM golden signals as PromQL templates with `{service}` and `{window}` placeholders.

Default metric names (override any of them with MetricNames(...)):

* ttft_histogram  ``llm_time_to_first_token_seconds`` (classic histogram, seconds)
* itl_histogram   ``llm_inter_token_latency_seconds`` (classic histogram, seconds)
* requests_total  ``llm_requests_total`` (counter, every request)
* errors_total    ``llm_request_errors_total`` (counter, label ``error_type``)
* input_tokens    ``llm_input_tokens_total`` / output_tokens ``llm_output_tokens_total`` (counters)
* cost_total      ``llm_cost_usd_total`` (counter, US dollars)
* kv_cache        ``vllm:gpu_cache_usage_perc`` (gauge 0..1; newer: vllm:kv_cache_usage_perc)
* gpu_util        ``DCGM_FI_DEV_GPU_UTIL`` (gauge 0..100, NVIDIA DCGM exporter)
* service_label   ``service``; error_type_label ``error_type``

`{service}` becomes a whole selector such as ``{service="chat-api"}`` (quotes, backslashes and
newlines escaped); `{window}` becomes a PromQL duration such as ``5m`` or ``90s``.
"""

from __future__ import annotations

import re
from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class MetricNames:
    """The metric and label names the catalog's default templates use."""

    ttft_histogram: str = "llm_time_to_first_token_seconds"
    itl_histogram: str = "llm_inter_token_latency_seconds"
    requests_total: str = "llm_requests_total"
    errors_total: str = "llm_request_errors_total"
    input_tokens: str = "llm_input_tokens_total"
    output_tokens: str = "llm_output_tokens_total"
    cost_total: str = "llm_cost_usd_total"
    kv_cache: str = "vllm:gpu_cache_usage_perc"
    gpu_util: str = "DCGM_FI_DEV_GPU_UTIL"
    service_label: str = "service"
    error_type_label: str = "error_type"


DEFAULT_METRICS = MetricNames()


@dataclass(frozen=True, slots=True)
class Signal:
    """A golden signal: its PromQL template, unit, and whether it is broken down by a label."""

    name: str
    template: str
    unit: str
    by: str | None = None


_LABEL = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")


def escape(value: str) -> str:
    """`value` as the inside of a PromQL double-quoted string."""
    return value.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")


def selector(label: str, value: str) -> str:
    """A PromQL label selector `{label="value"}`, value escaped, label name checked."""
    if not _LABEL.match(label):
        raise ValueError(f"invalid label name {label!r}")
    return f'{{{label}="{escape(value)}"}}'


def duration(seconds: float) -> str:
    """`seconds` as a PromQL duration (`5m`, `90s`, `1500ms`)."""
    ms = max(1, round(seconds * 1000))
    if ms % 60_000 == 0:
        return f"{ms // 60_000}m"
    if ms % 1000 == 0:
        return f"{ms // 1000}s"
    return f"{ms}ms"


def render(template: str, service: str, window_seconds: float,
           label: str = DEFAULT_METRICS.service_label) -> str:
    """`template` with `{service}` and `{window}` filled in (other braces left as they are)."""
    return (template.replace("{service}", selector(label, service))
            .replace("{window}", duration(window_seconds)))


def default_catalog(m: MetricNames = DEFAULT_METRICS) -> dict[str, Signal]:
    """The nine golden signals on the metric names `m`, keyed by signal name."""

    def quantile(q: float, hist: str) -> str:
        return (f"histogram_quantile({q}, sum by (le) "
                f"(rate({hist}_bucket{{service}}[{{window}}])))")

    total = f"sum(rate({m.requests_total}{{service}}[{{window}}]))"
    signals = [
        Signal("ttft_p50", quantile(0.5, m.ttft_histogram), "s"),
        Signal("ttft_p99", quantile(0.99, m.ttft_histogram), "s"),
        Signal("inter_token_latency_p99", quantile(0.99, m.itl_histogram), "s"),
        Signal("error_rate",
               f"sum by ({m.error_type_label}) (rate({m.errors_total}{{service}}[{{window}}]))"
               f" / scalar({total})", "ratio", by=m.error_type_label),
        Signal("input_tokens_per_s", f"sum(rate({m.input_tokens}{{service}}[{{window}}]))",
               "tokens/s"),
        Signal("output_tokens_per_s", f"sum(rate({m.output_tokens}{{service}}[{{window}}]))",
               "tokens/s"),
        Signal("burn_rate_usd_per_h",
               f"sum(rate({m.cost_total}{{service}}[{{window}}])) * 3600", "USD/h"),
        Signal("kv_cache_usage", f"max(max_over_time({m.kv_cache}{{service}}[{{window}}]))",
               "ratio"),
        Signal("gpu_utilization", f"avg(avg_over_time({m.gpu_util}{{service}}[{{window}}]))",
               "percent"),
    ]
    return {s.name: s for s in signals}


SIGNAL_NAMES: tuple[str, ...] = tuple(default_catalog())
