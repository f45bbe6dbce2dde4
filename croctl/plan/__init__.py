"""The measurement plan: its model and its YAML parser."""

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
    Role,
    Rule,
    SourceSpec,
)
from croctl.plan.parse import EXPOSURES, load_plan, parse_plan

__all__ = [
    "EXPOSURES",
    "ChecksSpec",
    "Correction",
    "CovariateSpec",
    "DecisionSpec",
    "ExperimentSpec",
    "ExposuresSpec",
    "FunnelSpec",
    "Goal",
    "MarginType",
    "MeasureSpec",
    "MetricSpec",
    "MetricType",
    "Plan",
    "Role",
    "Rule",
    "SourceSpec",
    "load_plan",
    "parse_plan",
]
