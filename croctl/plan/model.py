"""The measurement plan as typed, immutable values (SPEC §3)."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime, timedelta
from enum import StrEnum
from pathlib import Path


class Role(StrEnum):
    """What a metric is for; only primary and guardrails enter the verdict."""

    PRIMARY = "primary"
    GUARDRAIL = "guardrail"
    DIAGNOSTIC = "diagnostic"
    QUALITY = "quality"
    DOWNSTREAM = "downstream"


class MetricType(StrEnum):
    """How a metric turns rows into a per-unit value."""

    PROPORTION = "proportion"
    MEAN = "mean"
    RATIO = "ratio"


class Goal(StrEnum):
    """Which direction of change is good."""

    INCREASE = "increase"
    DECREASE = "decrease"


class MarginType(StrEnum):
    """Scale on which a guardrail's non-inferiority margin is expressed."""

    RELATIVE = "relative"
    ABSOLUTE = "absolute"


class Correction(StrEnum):
    """Multiple-testing correction applied within a family of comparisons."""

    NONE = "none"
    BONFERRONI = "bonferroni"
    HOLM = "holm"
    BH = "bh"


class RelativeCi(StrEnum):
    """How the relative effect's CI is computed."""

    DELTA = "delta"
    FIELLER = "fieller"


class Rule(StrEnum):
    """Decision rule for the primary metric."""

    SUPERIORITY = "superiority"
    DO_NO_HARM = "do_no_harm"


@dataclass(frozen=True, slots=True)
class ExperimentSpec:
    """The experiment's name, arms and analysis window."""

    name: str
    control: str
    variants: dict[str, float]
    hypothesis: str | None = None
    start: datetime | None = None
    end: datetime | None = None

    @property
    def treatments(self) -> list[str]:
        """Arms compared against control, in plan order."""
        return [v for v in self.variants if v != self.control]


@dataclass(frozen=True, slots=True)
class ExposuresSpec:
    """The exposure log: who saw which variant, and when."""

    path: Path
    unit: str
    variant: str
    timestamp: str


@dataclass(frozen=True, slots=True)
class SourceSpec:
    """An event or CRM export joined to units by their id."""

    name: str
    path: Path
    unit: str
    timestamp: str | None = None
    id: str | None = None


@dataclass(frozen=True, slots=True)
class MeasureSpec:
    """Rows of one source that count for a unit, and what they add up to."""

    source: str
    filter: str | None = None
    value: str | None = None
    window: timedelta | None = None


@dataclass(frozen=True, slots=True)
class CovariateSpec:
    """A CUPED covariate: a pre-period exposures column, or the metric itself over a lookback."""

    column: str | None = None
    lookback: timedelta | None = None


@dataclass(frozen=True, slots=True)
class MetricSpec:
    """One metric of the plan.

    For proportion and mean metrics `numerator` holds the measure and `denominator` is None;
    ratio metrics have both.
    """

    name: str
    role: Role
    type: MetricType
    numerator: MeasureSpec
    denominator: MeasureSpec | None = None
    goal: Goal = Goal.INCREASE
    margin: float | None = None
    margin_type: MarginType = MarginType.RELATIVE
    covariate: CovariateSpec | None = None
    cap: float | None = None
    plan_key: str = ""  # where the metric is defined, for error messages (default metrics.<name>)

    @property
    def key(self) -> str:
        """Dotted plan key of the metric."""
        return self.plan_key or f"metrics.{self.name}"

    def measures(self) -> tuple[tuple[str, MeasureSpec], ...]:
        """The metric's measures with their side: ("num", ...) and, for ratios, ("den", ...)."""
        if self.denominator is None:
            return (("num", self.numerator),)
        return (("num", self.numerator), ("den", self.denominator))


@dataclass(frozen=True, slots=True)
class FunnelSpec:
    """Ordered steps, each a filter on one source.

    A unit reaches step k when it has matching rows for steps 1..k (in any order) in the window.
    """

    name: str
    source: str
    steps: tuple[tuple[str, MeasureSpec], ...]

    @property
    def step_metrics(self) -> tuple[MetricSpec, ...]:
        """One proportion per step ("did step k"); the pipeline chains them into reach."""
        return tuple(
            MetricSpec(
                name=f"{self.name}/{step}",
                role=Role.DIAGNOSTIC,
                type=MetricType.PROPORTION,
                numerator=measure,
                plan_key=f"funnels.{self.name}.steps.{step}",
            )
            for step, measure in self.steps
        )


@dataclass(frozen=True, slots=True)
class DecisionSpec:
    """How comparisons turn into a verdict."""

    alpha: float = 0.05
    power: float = 0.80
    correction: Correction = Correction.HOLM
    rule: Rule = Rule.SUPERIORITY
    srm_alpha: float = 0.001
    mde: float | None = None  # relative effect the test is powered for (explains inconclusive)
    relative_ci: RelativeCi = RelativeCi.DELTA


@dataclass(frozen=True, slots=True)
class ChecksSpec:
    """Thresholds of the trust checks (SPEC §7); every one may be overridden in the plan."""

    min_units: int = 150
    multiple_variants_share: float = 0.01
    multiple_variants_min_units: int = 10
    srm_warn_alpha: float = 0.01
    implausible_lift: float = 0.5
    min_segment_units: int = 50
    coverage_max_gap: float = 0.5


@dataclass(frozen=True, slots=True)
class Plan:
    """A validated measurement plan; paths are absolute."""

    path: Path
    sha256: str
    experiment: ExperimentSpec
    exposures: ExposuresSpec
    metrics: tuple[MetricSpec, ...]
    sources: dict[str, SourceSpec] = field(default_factory=dict)
    segments: dict[str, str] = field(default_factory=dict)
    decision: DecisionSpec = field(default_factory=DecisionSpec)
    checks: ChecksSpec = field(default_factory=ChecksSpec)
    timezone: str | None = None
    as_of: datetime | None = None  # read the data as it was at this moment (UTC)
    funnels: tuple[FunnelSpec, ...] = ()

    @property
    def measured(self) -> tuple[MetricSpec, ...]:
        """Everything the pipeline aggregates: the metrics, then every funnel step in order."""
        return self.metrics + tuple(m for f in self.funnels for m in f.step_metrics)

    @property
    def capped(self) -> dict[int, float]:
        """The cap of each capped metric, by its index in `measured`."""
        return {i: m.cap for i, m in enumerate(self.measured) if m.cap is not None}

    @property
    def covariate_columns(self) -> list[str]:
        """Exposures columns used as CUPED covariates, sorted."""
        return sorted(
            {m.covariate.column for m in self.metrics if m.covariate and m.covariate.column}
        )

    @property
    def used_sources(self) -> list[str]:
        """Sources some metric or funnel step reads, in plan order."""
        used = {m.source for metric in self.measured for _, m in metric.measures()}
        return [name for name in self.sources if name in used]

    def source_values(self, source: str) -> list[str]:
        """Value columns the plan sums from `source` (checked for NaN/inf)."""
        return sorted(
            {
                m.value
                for metric in self.measured
                for _, m in metric.measures()
                if m.source == source and m.value
            }
        )

    def reach_chain(self, index: int) -> tuple[int, ...]:
        """For a funnel step at `index` of `measured`, the indices of its steps 1..k; else ()."""
        offset = len(self.metrics)
        for funnel in self.funnels:
            if index < offset + len(funnel.steps):
                return tuple(range(offset, index + 1)) if index >= offset else ()
            offset += len(funnel.steps)
        return ()

    @property
    def primary(self) -> MetricSpec:
        """The one primary metric (validated on parse)."""
        return next(m for m in self.metrics if m.role is Role.PRIMARY)
