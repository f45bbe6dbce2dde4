"""Turn a YAML plan file into a validated `Plan`, reporting every problem at once."""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path
from typing import Any, TypeGuard, TypeVar
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from croctl.errors import PlanError, PlanErrors, did_you_mean
from croctl.plan import fields as f
from croctl.plan.fields import Fields, Invalid
from croctl.plan.model import (
    ChecksSpec,
    Correction,
    CovariateSpec,
    DecisionSpec,
    ExperimentSpec,
    ExposuresSpec,
    FunnelSpec,
    Goal,
    MarginType,
    MeasureSpec,
    MetricSpec,
    MetricType,
    Plan,
    RelativeCi,
    Role,
    Rule,
    SourceSpec,
)
from croctl.plan.yaml_loader import load_yaml

EXPOSURES = "exposures"
T = TypeVar("T")
_MEASURE_KEYS = {"source", "filter", "value", "window"}
_METRIC_KEYS = {
    "role",
    "type",
    "goal",
    "margin",
    "margin_type",
    "covariate",
    "cap",
    "numerator",
    "denominator",
} | _MEASURE_KEYS


def load_plan(path: Path) -> Plan:
    """Read and validate a plan file.

    Raises:
        PlanError: the file cannot be read or parsed; `PlanErrors` lists every validation problem.
    """
    path = path.absolute()
    document, raw = load_yaml(path)
    return parse_plan(document, path, hashlib.sha256(raw.encode()).hexdigest())


def parse_plan(document: Any, path: Path, sha256: str = "") -> Plan:
    """Validate a parsed YAML document as a plan whose paths are relative to `path`'s folder."""
    errors: list[PlanError] = []
    root = Fields(document, "", errors, path)
    if document is None:
        root.error("the plan is empty", hint="see plans/ for examples")
    root.get("version", _version, 1)
    timezone = root.get("timezone", _zone, None)
    experiment = _experiment(root.sub("experiment"), timezone)
    exposures = _exposures(root.sub("exposures"), path.parent)
    sources = _sources(root.sub("sources", required=False), path.parent)
    segments = _segments(root.sub("segments", required=False))
    metrics = _metrics(root.sub("metrics"), sources)
    funnels = _funnels(root.sub("funnels", required=False), sources)
    decision = _decision(root.sub("decision", required=False))
    checks = _checks(root.sub("checks", required=False))
    root.finish()
    if errors:
        raise PlanErrors(errors)
    assert experiment and exposures and metrics is not None  # guaranteed when no errors
    return Plan(
        path=path,
        sha256=sha256,
        experiment=experiment,
        exposures=exposures,
        metrics=tuple(metrics),
        sources=sources,
        segments=segments,
        decision=decision,
        checks=checks,
        timezone=timezone,
        funnels=tuple(funnels),
    )


def _zone(value: Any) -> str:
    try:
        ZoneInfo(f.text(value))
    except (ZoneInfoNotFoundError, ValueError):
        raise Invalid(f"unknown time zone {value!r}", "an IANA name such as Europe/Paris") from None
    return str(value)


def _experiment(node: Fields, timezone: str | None) -> ExperimentSpec | None:
    name = node.get("name", f.text)
    node.get("hypothesis", f.text, None)
    control = node.get("control", f.label)
    variants = node.get("variants", _allocation)
    start = node.get("start", f.timestamp, None)
    end = node.get("end", f.timestamp, None)
    node.finish()
    if start is not None:
        start = _utc(node, "start", start, timezone)
    if end is not None:
        end = _utc(node, "end", end, timezone)
    if start and end and end <= start:
        node.error(f"must be after start ({start.isoformat()})", "end")
    if variants and control and control not in variants:
        node.error(
            f"'{control}' is not one of the variants",
            "control",
            did_you_mean(control, variants) or "list it under experiment.variants",
        )
    if not (name and control and variants):
        return None
    return ExperimentSpec(
        name=name,
        control=control,
        variants=variants,
        hypothesis=node.data.get("hypothesis"),
        start=start,
        end=end,
    )


def _utc(node: Fields, key: str, moment: Any, timezone: str | None) -> Any:
    utc = f.to_utc(moment, timezone)
    if utc is None:
        node.error(
            "has no time zone and the plan sets no `timezone`",
            key,
            "append Z for UTC, or set timezone: at the top of the plan",
        )
    return utc


def _version(value: Any) -> int:
    """The plan format's version: this croctl reads version 1 (the plan schema's `const`)."""
    if value != 1 or isinstance(value, bool):
        raise Invalid(
            f"this croctl reads plans of version 1 (got {value!r})",
            "write the plan for version 1, or use the croctl that wrote it",
        )
    return 1


def _allocation(value: Any) -> dict[str, float]:
    if isinstance(value, list):
        value = dict.fromkeys((str(v) for v in value), 1.0)
    if not isinstance(value, dict) or len(value) < 2:
        raise Invalid(
            "must map at least two variant names to planned shares",
            "e.g. {control: 0.5, treatment: 0.5}",
        )
    share, shares = f.number(0, None, open_low=True), {}
    for arm, planned in value.items():
        try:
            shares[str(arm)] = share(planned)
        except Invalid as exc:  # say which arm's share
            raise Invalid(f"the share of '{arm}' {exc}") from exc
    total = sum(shares.values())
    return {k: v / total for k, v in shares.items()}


def _exposures(node: Fields, base: Path) -> ExposuresSpec | None:
    path = node.get("path", f.relative_path(base))
    unit = node.get("unit", f.text)
    variant = node.get("variant", f.text)
    ts = node.get("timestamp", f.text)
    node.finish()
    if path and unit and variant and ts:
        return ExposuresSpec(path=path, unit=unit, variant=variant, timestamp=ts)
    return None


def _sources(node: Fields, base: Path) -> dict[str, SourceSpec]:
    sources: dict[str, SourceSpec] = {}
    for name in node.data:
        if name == EXPOSURES:
            node.error("the name 'exposures' is reserved for the exposures file", name)
            continue
        src = node.sub(name)
        path = src.get("path", f.relative_path(base))
        unit = src.get("unit", f.text)
        ts = src.get("timestamp", f.text, None)
        id_column = src.get("id", f.text, None)
        src.finish()
        if path and unit:
            sources[name] = SourceSpec(name=name, path=path, unit=unit, timestamp=ts, id=id_column)
    return sources


def _segments(node: Fields) -> dict[str, str]:
    segments = {}
    for name in node.data:
        column = node.get(name, f.text)
        if column:
            segments[str(name)] = column
    return segments


def _metrics(node: Fields, sources: dict[str, SourceSpec]) -> list[MetricSpec] | None:
    if node.ok and not node.data:
        node.error("must define at least one metric")
    metrics = [m for name in node.data if (m := _metric(node.sub(name), str(name), sources))]
    primaries = [m.name for m in metrics if m.role is Role.PRIMARY]
    if node.ok and node.data and len(primaries) != 1:
        problem = "no metric has" if not primaries else f"{len(primaries)} metrics have"
        node.error(
            f"{problem} role: primary ({', '.join(primaries) or 'none'})",
            hint="exactly one metric must be primary",
        )
    return metrics


def _metric(node: Fields, name: str, sources: dict[str, SourceSpec]) -> MetricSpec | None:
    role = node.get("role", f.choice(Role))
    kind = node.get("type", f.choice(MetricType))
    goal = node.get("goal", f.choice(Goal), Goal.INCREASE)
    margin = node.get("margin", f.number(0, None, open_low=True), None)
    margin_type = node.get("margin_type", f.choice(MarginType), MarginType.RELATIVE)
    cap = node.get("cap", f.number(0.5, 1, open_high=True), None)
    covariate = node.get("covariate", _covariate, None)
    if kind is MetricType.RATIO:
        window = node.get("window", f.duration, None)  # default for both sides
        numerator = _measure(node.sub("numerator"), sources, window=window)
        denominator = _measure(node.sub("denominator"), sources, window=window)
        node.finish(_METRIC_KEYS - _MEASURE_KEYS | {"window"})
    else:
        numerator, denominator = _measure(node, sources, own_keys=_METRIC_KEYS), None
    _check_metric_consistency(node, kind, role, margin, cap, covariate)
    if not (role and kind and goal and margin_type and numerator):
        return None
    if kind is MetricType.RATIO and not denominator:
        return None
    return MetricSpec(
        name=name,
        role=role,
        type=kind,
        numerator=numerator,
        denominator=denominator,
        goal=goal,
        margin=margin,
        margin_type=margin_type,
        covariate=covariate,
        cap=cap,
    )


def _check_metric_consistency(
    node: Fields,
    kind: MetricType | None,
    role: Role | None,
    margin: float | None,
    cap: float | None,
    covariate: CovariateSpec | None,
) -> None:
    if margin is not None and role not in (Role.GUARDRAIL, None):
        node.error("only guardrail metrics take a margin", "margin")
    if kind is MetricType.RATIO and covariate is not None:
        node.error("covariate applies to proportion and mean metrics only", "covariate")
    if cap is not None and kind in (MetricType.RATIO, MetricType.PROPORTION):
        # A proportion's per-unit values are 0 or 1: its upper quantile is 1 (no effect) or,
        # when fewer than 1 - cap of units convert, 0 or a fraction, which erases the metric.
        why = "its per-unit values are already 0 or 1" if kind is MetricType.PROPORTION else None
        node.error("cap applies to mean metrics only", "cap", hint=why)
    if kind is MetricType.PROPORTION and "value" in node.data:
        node.error(
            "a proportion counts units with a matching row and takes no value",
            "value",
            "use type: mean to sum a value column",
        )


def _measure(
    node: Fields,
    sources: dict[str, SourceSpec],
    own_keys: set[str] | None = None,
    window: Any = None,
) -> MeasureSpec | None:
    source = node.get("source", f.text)
    filter_sql = node.get("filter", f.text, None)
    value = node.get("value", f.text, None)
    window = node.get("window", f.duration, window)
    node.finish(own_keys)
    if not _known_source(source, node, sources):
        return None
    return MeasureSpec(source=source, filter=filter_sql, value=value, window=window)


def _known_source(
    source: str | None, node: Fields, sources: dict[str, SourceSpec]
) -> TypeGuard[str]:
    """Whether `source` names a declared source; records an error with a suggestion if not."""
    if source and source not in sources:
        node.error(
            f"unknown source '{source}'",
            "source",
            did_you_mean(source, sources) or "declare it under sources:",
        )
        return False
    return source is not None


def _funnels(node: Fields, sources: dict[str, SourceSpec]) -> list[FunnelSpec]:
    return [f for name in node.data if (f := _funnel(node.sub(name), str(name), sources))]


def _funnel(node: Fields, name: str, sources: dict[str, SourceSpec]) -> FunnelSpec | None:
    source = node.get("source", f.text)
    window = node.get("window", f.duration, None)
    steps_node = node.sub("steps")
    steps = [(str(step), steps_node.get(step, f.text)) for step in steps_node.data]
    node.finish()
    if steps_node.ok and len(steps) < 2:
        steps_node.error("a funnel needs at least two steps", hint='step_name: "<SQL filter>"')
    if not _known_source(source, node, sources):
        return None
    if len(steps) < 2 or any(sql is None for _, sql in steps):
        return None
    measures = tuple(
        (step, MeasureSpec(source=source, filter=sql, window=window)) for step, sql in steps
    )
    return FunnelSpec(name, source, measures)


def _covariate(value: Any) -> CovariateSpec:
    if isinstance(value, str):
        return CovariateSpec(column=f.text(value))
    if isinstance(value, dict) and set(value) == {"lookback"}:
        return CovariateSpec(lookback=f.duration(value["lookback"]))
    raise Invalid(
        "must be an exposures column name or {lookback: <duration>}",
        "e.g. covariate: pre_revenue, or covariate: {lookback: 14d}",
    )


_DECISION = {
    "alpha": f.number(0, 0.5, open_low=True, open_high=True),
    "power": f.number(0, 1, open_low=True, open_high=True),
    "correction": f.choice(Correction),
    "rule": f.choice(Rule),
    "srm_alpha": f.number(0, 0.5, open_low=True, open_high=True),
    "mde": f.number(0, None, open_low=True),
    "relative_ci": f.choice(RelativeCi),
}
_SHARE = f.number(0, 1, open_low=True)
_CHECKS = {
    "min_units": f.integer(1),
    "multiple_variants_share": _SHARE,
    "multiple_variants_min_units": f.integer(1),
    "srm_warn_alpha": _SHARE,
    "implausible_lift": f.number(0, None, open_low=True),
    "min_segment_units": f.integer(1),
    "coverage_max_gap": _SHARE,
}


def _settings(node: Fields, defaults: T, parsers: dict[str, Callable[[Any], Any]]) -> T:
    """`defaults` with every valid key of `node` applied; invalid values are recorded as errors."""
    given = {key: node.get(key, parse, None) for key, parse in parsers.items()}
    node.finish()
    return replace(defaults, **{k: v for k, v in given.items() if v is not None})  # type: ignore[type-var]


def _decision(node: Fields) -> DecisionSpec:
    return _settings(node, DecisionSpec(), _DECISION)


def _checks(node: Fields) -> ChecksSpec:
    return _settings(node, ChecksSpec(), _CHECKS)
