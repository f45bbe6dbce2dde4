"""Trust checks of SPEC §7: is the data fit to read at all?"""

from __future__ import annotations

import math
from collections.abc import Sequence

from croctl.plan import Plan
from croctl.report import CheckResult, CheckStatus, MetricResult
from croctl.stats import compute_srm, contingency_p
from croctl.sufficient import SufficientStats

SRM_MIN_UNITS = 8


def run_checks(
    plan: Plan, data: SufficientStats, units: dict[str, int], metrics: list[MetricResult]
) -> list[CheckResult]:
    """Every trust check, in a fixed order."""
    checks = [
        check_srm(plan, units),
        check_multiple_variants(plan, data),
        check_exposure_window(data),
    ]
    checks += [check_segment_srm(plan, data, dim) for dim in range(len(plan.segments))]
    for name, counts in data.sources.items():
        if counts.has_timestamp:
            checks.append(check_pre_exposure(plan, name, units, counts.pre_exposure))
        if counts.has_id:
            checks.append(check_duplicates(plan, name, counts.rows, counts.duplicates))
        checks.append(check_join_coverage(plan, name, units, counts.covered))
    checks.append(check_sample_size(plan, metrics))
    checks.append(check_implausible_lift(plan, metrics))
    return checks


def _ordered(plan: Plan, counts: dict[str, int]) -> list[int]:
    return [counts.get(v, 0) for v in plan.experiment.variants]


def check_srm(plan: Plan, units: dict[str, int], name: str = "srm") -> CheckResult:
    """Pearson chi-square of units per arm against the planned allocation."""
    observed = _ordered(plan, units)
    threshold = plan.decision.srm_alpha
    if min(observed) < SRM_MIN_UNITS:
        return CheckResult(
            name,
            CheckStatus.SKIPPED,
            f"fewer than {SRM_MIN_UNITS} units in an arm",
            threshold=threshold,
            counts=dict(units),
        )
    statistic, p_value = compute_srm(observed, list(plan.experiment.variants.values()))
    if p_value < threshold:
        status, message = (
            CheckStatus.FAIL,
            "sample ratio mismatch: units per arm do not "
            "match the planned allocation; assignment or logging is broken",
        )
    elif p_value < plan.checks.srm_warn_alpha:
        status, message = CheckStatus.WARN, "units per arm are borderline off the allocation"
    else:
        status, message = CheckStatus.PASS, "units per arm match the planned allocation"
    return CheckResult(
        name,
        status,
        f"{message} (χ² = {statistic:.2f}, p = {p_value:.2g})",
        statistic=statistic,
        threshold=threshold,
        p_value=p_value,
        counts=dict(units),
    )


def check_segment_srm(plan: Plan, data: SufficientStats, dimension: int) -> CheckResult:
    """SRM within each value of one segment dimension; a mismatch is only a warning.

    A dimension of many values tests many cells: at `srm_alpha` 0.001, one of 1000 balanced
    values would be off by chance alone. The smallest p is Bonferroni-adjusted over the values
    tested (Holm's first step: the family-wise error stays at `srm_alpha`).
    """
    label = list(plan.segments)[dimension]
    worst: tuple[float, str] | None = None
    tested = 0
    for value, rows in data.segment_groups(dimension):
        result = check_srm(plan, data.units_by_variant(rows))
        if result.p_value is None:
            continue
        tested += 1
        if worst is None or result.p_value < worst[0]:
            worst = (result.p_value, value)
    name = f"srm_segment:{label}"
    if worst is None:
        return CheckResult(name, CheckStatus.SKIPPED, "no segment value has enough units")
    smallest, value = worst
    p_value = min(1.0, smallest * tested)
    bad = p_value < plan.decision.srm_alpha
    shown = f"p = {smallest:.2g}"
    if tested > 1:
        shown += f", {p_value:.2g} adjusted for {tested} values"
    message = (
        f"allocation is off within {label} = {value} ({shown})"
        if bad
        else f"allocation holds within every {label} value (smallest {shown})"
    )
    return CheckResult(
        name,
        CheckStatus.WARN if bad else CheckStatus.PASS,
        message,
        p_value=p_value,
        threshold=plan.decision.srm_alpha,
    )


def check_multiple_variants(plan: Plan, data: SufficientStats) -> CheckResult:
    """Units exposed to more than one arm are excluded; many of them means broken assignment."""
    multiple, seen = data.exposures.multiple_variants, data.exposures.units_seen
    share = multiple / seen if seen else 0.0
    limit = plan.checks.multiple_variants_share
    if multiple >= plan.checks.multiple_variants_min_units and share >= limit:
        status = CheckStatus.FAIL
    else:
        status = CheckStatus.WARN if multiple else CheckStatus.PASS
    message = f"{multiple} of {seen} units ({share:.2%}) saw several variants and are excluded"
    return CheckResult(
        "multiple_variants", status, message, statistic=share, threshold=limit, units=multiple
    )


def check_exposure_window(data: SufficientStats) -> CheckResult:
    """Exposure rows outside [start, end) or without a timestamp are excluded."""
    e = data.exposures
    counts = {
        v: e.before_start.get(v, 0) + e.after_end.get(v, 0) + e.no_timestamp.get(v, 0)
        for v in e.rows
    }
    total = sum(counts.values())
    message = (
        f"{total} exposure rows outside the window excluded "
        f"({sum(e.before_start.values())} before start, {sum(e.after_end.values())} "
        f"after end, {sum(e.no_timestamp.values())} without timestamp)"
    )
    return CheckResult(
        "exposure_window",
        CheckStatus.WARN if total else CheckStatus.PASS,
        message,
        units=total,
        counts=counts,
    )


def _differs(plan: Plan, hits: dict[str, int], totals: dict[str, int]) -> float:
    """p-value of a chi-square test that the share hits/totals is the same in every arm."""
    variants = [v for v in plan.experiment.variants if totals.get(v, 0) > 0]
    hit = [hits.get(v, 0) for v in variants]
    miss = [totals[v] - hits.get(v, 0) for v in variants]
    if len(variants) < 2 or sum(hit) == 0 or sum(miss) == 0:
        return 1.0
    return contingency_p(hit, miss)


def check_pre_exposure(
    plan: Plan, source: str, units: dict[str, int], pre: dict[str, int]
) -> CheckResult:
    """Rows dated before a unit's first exposure never count.

    They happened before assignment, so they should split between arms like the units do; warn
    when they do not (χ² against the units' split), a sign of arm-dependent logging or clocks.
    """
    total = sum(pre.values())
    p_value = _split_differs(plan, pre, units)
    status = CheckStatus.WARN if p_value < plan.decision.srm_alpha else CheckStatus.PASS
    message = f"{total} {source} rows before exposure excluded"
    if status is CheckStatus.WARN:
        message += f"; they do not split between arms like the units (p = {p_value:.2g})"
    return CheckResult(
        "pre_exposure_events",
        status,
        message,
        p_value=p_value,
        threshold=plan.decision.srm_alpha,
        units=total,
        counts=dict(pre),
        source=source,
    )


def _split_differs(plan: Plan, counts: dict[str, int], units: dict[str, int]) -> float:
    """p-value that `counts` split between arms in the same proportions as `units`."""
    variants = [v for v in plan.experiment.variants if units.get(v, 0) > 0]
    observed = [counts.get(v, 0) for v in variants]
    if len(variants) < 2 or sum(observed) < SRM_MIN_UNITS:
        return 1.0
    total = sum(units[v] for v in variants)
    return compute_srm(observed, [units[v] / total for v in variants])[1]


def check_duplicates(
    plan: Plan, source: str, rows: dict[str, int], duplicates: dict[str, int]
) -> CheckResult:
    """Duplicate event ids are dropped; fail when they concentrate in one arm."""
    total = sum(duplicates.values())
    p_value = _differs(plan, duplicates, rows)
    if total and p_value < plan.decision.srm_alpha:
        status = CheckStatus.FAIL
        message = f"{total} duplicate {source} ids concentrate in one arm (p = {p_value:.2g})"
    else:
        status = CheckStatus.WARN if total else CheckStatus.PASS
        message = f"{total} duplicate {source} ids dropped"
    return CheckResult(
        "duplicate_events",
        status,
        message,
        p_value=p_value,
        threshold=plan.decision.srm_alpha,
        units=total,
        counts=dict(duplicates),
        source=source,
    )


def check_join_coverage(
    plan: Plan, source: str, units: dict[str, int], covered: dict[str, int]
) -> CheckResult:
    """Share of exposed units found in the source, per arm.

    No match at all fails (wrong id column or export). A coverage gap between arms fails only when
    it is both significant and material (one arm's coverage below `1 - coverage_max_gap` of the
    best arm's, e.g. tracking missing in one arm): a small gap is expected, because for event and
    CRM sources having a row is itself an outcome the treatment may change.
    """
    # every arm with units, none covered as 0: an engine may leave an arm without a row out
    covered = {v: covered.get(v, 0) for v in units} | covered
    total = sum(covered.values())
    share = total / sum(units.values()) if units else 0.0
    shares = {v: covered[v] / n for v, n in units.items() if n}
    if total == 0:
        return CheckResult(
            "join_coverage",
            CheckStatus.FAIL,
            f"no exposed unit has a row in {source}: check the unit id column",
            counts=dict(covered),
            source=source,
        )
    p_value = _differs(plan, covered, units)
    gap = 1 - min(shares.values()) / max(shares.values())
    message = f"{share:.1%} of exposed units have rows in {source}"
    status = CheckStatus.PASS
    if p_value < plan.decision.srm_alpha:
        per_arm = ", ".join(f"{v} {s:.1%}" for v, s in shares.items())
        material = gap > plan.checks.coverage_max_gap
        status = CheckStatus.FAIL if material else CheckStatus.WARN
        message += f"; coverage differs between arms ({per_arm}; p = {p_value:.2g})"
        if material:
            message += ": is the source logged in every arm?"
    return CheckResult(
        "join_coverage",
        status,
        message,
        statistic=gap,
        threshold=plan.checks.coverage_max_gap,
        p_value=p_value,
        counts=dict(covered),
        source=source,
    )


def check_sample_size(plan: Plan, metrics: Sequence[MetricResult]) -> CheckResult:
    """Metrics with fewer than `min_units` units in an arm are inconclusive."""
    small = sorted(
        {
            m.name
            for m in metrics
            if min(a.units for a in m.variants.values()) < plan.checks.min_units
        }
    )
    message = (
        f"fewer than {plan.checks.min_units} units per arm: {', '.join(small)} "
        "reported as inconclusive"
        if small
        else f"every metric has at least {plan.checks.min_units} units per arm"
    )
    return CheckResult(
        "sample_size",
        CheckStatus.WARN if small else CheckStatus.PASS,
        message,
        threshold=plan.checks.min_units,
    )


def check_implausible_lift(plan: Plan, metrics: Sequence[MetricResult]) -> CheckResult:
    """Twyman's law: a relative effect beyond the threshold is more likely a bug than a win."""
    limit = plan.checks.implausible_lift
    flagged = [
        f"{m.name}/{c.variant} ({c.relative:+.0%})"
        for m in metrics
        for c in m.comparisons
        if math.isfinite(c.relative) and abs(c.relative) > limit
    ]
    message = (
        f"|relative effect| above {limit:.0%}: {', '.join(flagged)}; verify the data"
        if flagged
        else f"no relative effect above {limit:.0%}"
    )
    return CheckResult(
        "implausible_lift",
        CheckStatus.WARN if flagged else CheckStatus.PASS,
        message,
        threshold=limit,
    )
