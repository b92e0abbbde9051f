"""PromQL as the chart's alerts and dashboard use it: which metrics an expression selects, what the code exports,
and promtool (for the chart's monitoring test modules)."""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path

import pytest
from prometheus_client import REGISTRY, CollectorRegistry
from prometheus_client.metrics import MetricWrapperBase

import podium.operator.metrics as operator_metrics
from podium.agent.metrics import AgentMetrics

# Labels Prometheus attaches to a target's series (ServiceMonitor/PodMonitor discovery), beside the metric's own.
TARGET_LABELS = {"job", "instance", "namespace", "service", "pod", "container", "endpoint"}

# --- a small PromQL reader: which metrics an expression selects, with which label matchers -----------------

_KEYWORDS = {"and", "or", "unless", "bool", "offset", "inf", "nan"}
# Aggregation operators may put `by (...)` between their name and their parenthesis.
_AGGREGATIONS = {"sum", "min", "max", "avg", "group", "stddev", "stdvar", "count", "count_values", "bottomk",
                 "topk", "quantile", "limitk", "limit_ratio"}  # fmt: skip
_LABEL_LISTS = {"by", "without", "on", "ignoring", "group_left", "group_right"}
_IDENT = re.compile(r"[a-zA-Z_:][a-zA-Z0-9_:]*")
_NUMBER = re.compile(r"[0-9][0-9a-zA-Z_.]*")  # numbers, and durations outside brackets (offset 5m)
_MATCHER = re.compile(r'\s*([a-zA-Z_][a-zA-Z0-9_]*)\s*(=~|!~|!=|=)\s*"((?:[^"\\]|\\.)*)"\s*,?')


def _matchers(body: str) -> dict[str, str]:
    found: dict[str, str] = {}
    body, pos = body.strip(), 0
    while pos < len(body):
        m = _MATCHER.match(body, pos)
        if not m:
            raise ValueError(f"cannot read label matchers {{{body}}}")
        found[m.group(1)] = m.group(3)
        pos = m.end()
    return found


def _skip_string(expr: str, i: int) -> int:
    quote, i = expr[i], i + 1
    while expr[i] != quote:
        i += 2 if expr[i] == "\\" else 1
    return i + 1


def _closing_brace(expr: str, i: int) -> int:
    """Index of the `}` closing the `{` at ``i``; braces inside label values do not count."""
    i += 1
    while expr[i] != "}":
        i = _skip_string(expr, i) if expr[i] == '"' else i + 1
    return i


def selectors(expr: str) -> list[tuple[str, dict[str, str]]]:
    """Every vector selector in a PromQL expression as (metric name, {label: value}); names from __name__ too."""
    out: list[tuple[str, dict[str, str]]] = []
    i = 0
    while i < len(expr):
        c = expr[i]
        if c in "\"'`":
            i = _skip_string(expr, i)
        elif c == "[":  # range or subquery durations
            i = expr.index("]", i) + 1
        elif c == "{":  # a selector with no name before it
            end = _closing_brace(expr, i)
            labels = _matchers(expr[i + 1 : end])
            out.append((labels.pop("__name__", ""), labels))
            i = end + 1
        elif c.isdigit() or (c == "." and expr[i + 1 : i + 2].isdigit()):
            i = _NUMBER.match(expr, i).end()  # type: ignore[union-attr]
        elif m := _IDENT.match(expr, i):
            word, i = m.group(0), m.end()
            rest = expr[i:].lstrip()
            if word.lower() in _LABEL_LISTS and rest.startswith("("):
                i = expr.index(")", i) + 1
            elif word.lower() in _KEYWORDS | _AGGREGATIONS or rest.startswith("("):
                continue  # an operator, or a function / aggregation
            elif rest.startswith("{"):
                start = expr.index("{", i)
                end = _closing_brace(expr, start)
                out.append((word, _matchers(expr[start + 1 : end])))
                i = end + 1
            else:
                out.append((word, {}))
        else:
            i += 1
    return out


# --- what the code exports ---------------------------------------------------------------------------------

_SUFFIXES = {
    "counter": ("_total", "_created"),
    "gauge": ("",),
    "histogram": ("_bucket", "_count", "_sum", "_created"),
    "summary": ("", "_count", "_sum", "_created"),
    "info": ("_info",),
}


def exported_names(registry: CollectorRegistry) -> set[str]:
    """The sample names a scrape of ``registry`` can show, families without children yet included."""
    return {family.name + s for family in registry.collect() for s in _SUFFIXES.get(family.type, ("",))}


def exported_labels(collectors: list[MetricWrapperBase]) -> dict[str, set[str]]:
    """Family name -> the label names its series carry."""
    labels: dict[str, set[str]] = {}
    for c in collectors:
        family = next(iter(c.describe()))
        for s in _SUFFIXES.get(family.type, ("",)):
            # Histogram buckets also carry `le`.
            labels[family.name + s] = set(c._labelnames) | ({"le"} if s == "_bucket" else set())
    return labels


def code_metrics() -> tuple[set[str], dict[str, set[str]]]:
    """Names and labels the operator (default registry, served by `podium operator`) and an agent export."""
    agent = AgentMetrics("writer", "team-a")
    names = exported_names(REGISTRY) | exported_names(agent.registry)
    collectors = [
        v for v in (*vars(operator_metrics).values(), *vars(agent).values()) if isinstance(v, MetricWrapperBase)
    ]
    return names, exported_labels(collectors)


# --- promtool ---

PROMTOOL = shutil.which("promtool")


def promtool(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    if PROMTOOL is None:
        pytest.fail("promtool is not installed: run scripts/setup.sh (Debian package prometheus)")
    return subprocess.run([PROMTOOL, *args], capture_output=True, text=True, timeout=60, check=False, cwd=cwd)
