"""The readout as values: verdict, checks, metric and segment results; JSON made in one place."""

from __future__ import annotations

import math
from dataclasses import dataclass, field, fields, is_dataclass
from enum import Enum, StrEnum
from typing import Any

from croctl.errors import ExitCode

SCHEMA_VERSION = "1.0"


class Verdict(StrEnum):
    """What to do with the change (SPEC §6)."""

    SHIP = "ship"
    DO_NOT_SHIP = "do_not_ship"
    INCONCLUSIVE = "inconclusive"
    INVALID = "invalid"

    @property
    def exit_code(self) -> int:
        """Process exit code of this verdict."""
        return int(
            {
                Verdict.SHIP: ExitCode.SHIP,
                Verdict.DO_NOT_SHIP: ExitCode.DO_NOT_SHIP,
                Verdict.INCONCLUSIVE: ExitCode.INCONCLUSIVE,
                Verdict.INVALID: ExitCode.INVALID,
            }[self]
        )


class CheckStatus(StrEnum):
    """Result of a trust check; only `fail` changes the verdict (to invalid)."""

    PASS = "pass"
    WARN = "warn"
    FAIL = "fail"
    SKIPPED = "skipped"


class Outcome(StrEnum):
    """Reading of one comparison after correction, in the metric's goal direction."""

    BETTER = "better"
    WORSE = "worse"
    FLAT = "flat"
    INCONCLUSIVE = "inconclusive"


class GuardrailState(StrEnum):
    """Whether a guardrail comparison clears its margin."""

    HOLDS = "holds"
    FAILS = "fails"


@dataclass(frozen=True, slots=True)
class CheckResult:
    """One trust check (SPEC §7)."""

    name: str
    status: CheckStatus
    message: str
    statistic: float | None = None
    threshold: float | None = None
    p_value: float | None = None
    units: int | None = None
    counts: dict[str, int] = field(default_factory=dict)
    source: str | None = None


@dataclass(frozen=True, slots=True)
class ArmResult:
    """One arm's units and metric value."""

    units: int
    value: float


@dataclass(frozen=True, slots=True)
class Sensitivity:
    """The same comparison without an adjustment (CUPED off, or values uncapped)."""

    absolute: float
    relative: float
    relative_ci: tuple[float, float]
    p_value: float


@dataclass(frozen=True, slots=True)
class ComparisonResult:
    """A treatment arm against control for one metric (SPEC §8 `comparisons`)."""

    variant: str
    absolute: float
    absolute_ci: tuple[float, float]
    relative: float
    relative_ci: tuple[float, float]
    p_value: float
    p_value_adjusted: float
    significant: bool
    outcome: Outcome
    guardrail: GuardrailState | None = None
    guardrail_bound: float | None = None
    guardrail_power: float | None = None
    mde_relative: float | None = None
    reason: str | None = None
    unadjusted: Sensitivity | None = None
    uncapped: Sensitivity | None = None
    relative_ci_unbounded: bool = False  # Fieller interval with no finite bounds


@dataclass(frozen=True, slots=True)
class MetricResult:
    """A metric's per-arm values and comparisons."""

    name: str
    role: str
    type: str
    goal: str
    variants: dict[str, ArmResult]
    comparisons: list[ComparisonResult]
    margin: float | None = None
    margin_type: str | None = None
    cap: float | None = None
    cuped_theta: float | None = None
    variance_reduction: float | None = None


@dataclass(frozen=True, slots=True)
class SegmentResult:
    """One metric in one segment cell (dimension = value)."""

    dimension: str
    value: str
    metric: str
    variants: dict[str, ArmResult]
    comparisons: list[ComparisonResult]
    opposite_sign: bool = False


@dataclass(frozen=True, slots=True)
class FunnelArm:
    """One arm at one funnel step."""

    units: int  # units in the arm
    reached: int  # units that did this step and every earlier one
    conversion: float  # reached / reached at the previous step (at step 1: / units)
    drop_off: float  # 1 − conversion: the share lost at this step


@dataclass(frozen=True, slots=True)
class FunnelStepResult:
    """One step: per-arm reach and step conversion, and each treatment's effect on conversion."""

    name: str
    variants: dict[str, FunnelArm]
    comparisons: list[ComparisonResult]


@dataclass(frozen=True, slots=True)
class FunnelResult:
    """A funnel of the plan, step by step."""

    name: str
    steps: list[FunnelStepResult]


@dataclass(frozen=True, slots=True)
class HeterogeneityResult:
    """Cochran's Q: does one metric's effect differ between the values of a segment dimension?"""

    dimension: str
    metric: str
    variant: str
    cells: int
    q: float
    df: int
    p_value: float
    p_value_adjusted: float
    i_squared: float
    differs: bool


@dataclass(frozen=True, slots=True)
class PowerSummary:
    """What the primary metric could detect at the sample reached, and what is still needed.

    `units_needed` (all arms) reaches `power` at the plan's `decision.mde`; `days_more` divides
    the shortfall by the traffic seen so far (`units_per_day`).
    """

    metric: str
    power: float
    units: int
    mde_relative: float
    planned_mde: float | None = None
    units_needed: float | None = None
    units_more: float | None = None
    units_per_day: float | None = None
    days_more: float | None = None


@dataclass(frozen=True, slots=True)
class ExperimentInfo:
    """Echo of the plan's experiment block."""

    name: str
    control: str
    variants: dict[str, float]
    hypothesis: str | None = None


@dataclass(frozen=True, slots=True)
class DecisionInfo:
    """Echo of the decision settings the verdict used."""

    alpha: float
    power: float
    correction: str
    rule: str
    srm_alpha: float
    relative_ci: str = "delta"


@dataclass(frozen=True, slots=True)
class Report:
    """The whole readout; `to_dict` gives the JSON report of SPEC §8."""

    croctl_version: str
    plan_sha256: str
    experiment: ExperimentInfo
    decision: DecisionInfo
    verdict: Verdict
    reasons: list[str]
    ship_variant: str | None
    units: dict[str, int]
    checks: list[CheckResult]
    metrics: list[MetricResult]
    segments: list[SegmentResult]
    heterogeneity: list[HeterogeneityResult] = field(default_factory=list)
    funnels: list[FunnelResult] = field(default_factory=list)
    power: PowerSummary | None = None
    schema_version: str = SCHEMA_VERSION

    @property
    def exit_code(self) -> int:
        """Exit code of the verdict."""
        return self.verdict.exit_code

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready dict: stable key order (top-level keys as SPEC §8 lists), NaN/inf → None."""
        body = {f.name: _plain(getattr(self, f.name)) for f in fields(self)}
        body["exit_code"] = self.exit_code
        return {key: body[key] for key in _KEY_ORDER}


_KEY_ORDER = (
    "schema_version",
    "croctl_version",
    "plan_sha256",
    "experiment",
    "verdict",
    "exit_code",
    "reasons",
    "ship_variant",
    "units",
    "checks",
    "metrics",
    "segments",
    "heterogeneity",
    "funnels",
    "power",
    "decision",
)


def _plain(value: Any) -> Any:
    if isinstance(value, Enum):
        return value.value
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if is_dataclass(value) and not isinstance(value, type):
        return {f.name: _plain(getattr(value, f.name)) for f in fields(value)}
    if isinstance(value, dict):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_plain(v) for v in value]
    return value
