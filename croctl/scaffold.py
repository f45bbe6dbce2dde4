"""`croctl init`: a starter plan from export profiles (detected columns, event names).

Pure text generation: the profiles come from `croctl.io.sniff`. The plan it writes is valid as
is (one primary metric on the likeliest conversion event) and carries commented templates for
every other role, so the analyst edits rather than types.
"""

from __future__ import annotations

import glob
import json
import os
import re
from pathlib import Path

from croctl.io.sniff import ExportProfile

VARIANT_NAMES = ("variant", "variation", "arm", "group", "bucket", "treatment", "experiment_group")
CONTROL_NAMES = ("control", "ctrl", "baseline", "original", "default", "a")
EVENT_NAMES = ("event_name", "event", "event_type", "action", "name", "type")
CONVERSIONS = ("purchase", "order", "checkout", "signup", "sign_up", "submit", "lead", "subscribe")
UNIT = re.compile(r"(user|visitor|customer|account|lead|anonymous|client|device|member)_?id$", re.I)


def _q(text: str) -> str:
    """A YAML-safe double-quoted scalar (JSON strings are valid YAML)."""
    return json.dumps(text, ensure_ascii=False)


def _pick(columns: list[str], preferred: tuple[str, ...], ending: bool = False) -> str | None:
    """The first preferred name among `columns` (in snake case: `Event Name` is `event_name`).

    `ending`: else a column whose name ends in one (`test_group`).
    """
    normal = {re.sub(r"\W+", "_", c).strip("_").lower(): c for c in columns}
    exact = next((normal[p] for p in preferred if p in normal), None)
    ends = (normal[n] for p in preferred for n in normal if ending and n.endswith(f"_{p}"))
    return exact or next(ends, None)


def _timestamps(profile: ExportProfile) -> list[str]:
    return [c for c, kind in profile.kinds.items() if kind == "timestamp"]


def _unit(profiles: list[ExportProfile]) -> str | None:
    shared = set(profiles[0].kinds).intersection(*(p.kinds for p in profiles[1:]))
    for columns in (sorted(shared), list(profiles[0].kinds)):
        match = next((c for c in columns if UNIT.search(c)), None)
        if match:
            return match
    return next((c for c in sorted(shared) if c.lower().endswith("id")), None)


def _exposures_first(profiles: list[ExportProfile]) -> list[ExportProfile]:
    """The exposures export is the one with a variant column; it goes first."""
    with_variant = [p for p in profiles if _pick(list(p.kinds), VARIANT_NAMES, ending=True)]
    first = with_variant[0] if with_variant else profiles[0]
    return [first] + [p for p in profiles if p is not first]


def _source_name(profile: ExportProfile, taken: set[str]) -> str:
    # the last plain part of the path: `events` for events.csv, events/*.csv, events/k=v/*.csv
    plain = [p for p in profile.path.parts if not glob.has_magic(p) and "=" not in p]
    stem = plain[-1].split(".")[0] if plain else ""
    name = re.sub(r"\W+", "_", stem).strip("_").lower() or "source"
    while name in taken or name == "exposures":
        name += "_2"
    taken.add(name)
    return name


def _conversion_event(values: list[tuple[str, int]]) -> str | None:
    names = [v for v, _ in values]
    for hint in CONVERSIONS:
        match = next((n for n in names if hint in n.lower()), None)
        if match:
            return match
    rare = [v for v, _ in sorted(values, key=lambda vn: vn[1]) if "view" not in v.lower()]
    return rare[0] if rare else (names[0] if names else None)


def scaffold_plan(profiles: list[ExportProfile], plan_folder: Path) -> str:
    """A starter plan (YAML text) for these exports; paths relative to `plan_folder`."""
    profiles = _exposures_first(profiles)
    exposures, others = profiles[0], profiles[1:]
    unit = _unit(profiles) or "user_id"
    variant = _pick(list(exposures.kinds), VARIANT_NAMES, ending=True) or "variant"
    labels = [v for v, _ in exposures.values.get(variant, [])] or ["control", "treatment"]
    numbered = all(v.lstrip("-").isdigit() for v in labels)  # 0 and 1: control is the lowest
    control = _pick(labels, CONTROL_NAMES) or (min(labels, key=int) if numbered else labels[0])
    labels = [control] + [v for v in labels if v != control]
    times = _timestamps(exposures)
    naive = any(p.naive_timestamps for p in profiles)
    lines = [
        "# Starter plan written by `croctl init`: check every line, then `croctl validate`.",
        "version: 1",
        *(
            ["timezone: UTC   # naive timestamps found: set the zone they were recorded in"]
            if naive
            else []
        ),
        "experiment:",
        f"  name: {_q(exposures.path.parent.name or 'my-experiment')}",
        '  hypothesis: "<what the change should do, and to which metric>"',
        f"  control: {_q(control)}",
        "  variants: {" + ", ".join(f"{_q(v)}: 1" for v in labels) + "}   # planned allocation",
        "  # start: 2026-10-01T00:00:00Z   # exposures outside [start, end) are excluded",
        "  # end: 2026-10-15T00:00:00Z",
        "exposures:",
        f"  path: {_q(_relative(exposures.path, plan_folder))}",
        f"  unit: {_q(unit)}",
        f"  variant: {_q(variant)}",
        f"  timestamp: {_q(times[0] if times else 'exposed_at')}",
    ]
    counts = ", ".join(f"{v} {n:,}" for v, n in exposures.values.get(variant, []))
    if counts:
        lines.append(f"  # variant labels seen (rows): {counts}")
    sources, events = _sources(others, unit, plan_folder)
    lines += sources
    lines += _segments(exposures, {unit, variant, *times})
    lines += _metrics(events, exposures)
    lines += [
        "decision:",
        "  alpha: 0.05",
        "  power: 0.80",
        "  correction: holm   # none | bonferroni | holm | bh",
        "  rule: superiority  # or do_no_harm",
        "  srm_alpha: 0.001",
        "  # mde: 0.05        # the relative lift the test is sized for (explains 'inconclusive')",
    ]
    return "\n".join(lines) + "\n"


def _relative(path: Path, folder: Path) -> str:
    return Path(os.path.relpath(path.resolve(), folder.resolve())).as_posix()


def _sources(
    others: list[ExportProfile], unit: str, plan_folder: Path
) -> tuple[list[str], list[tuple[str, str, ExportProfile]]]:
    """`sources:` lines, and (source name, event column, profile) for event-like sources."""
    if not others:
        return ["# sources: {}   # add event or CRM exports here"], []
    lines: list[str] = ["sources:"]
    events: list[tuple[str, str, ExportProfile]] = []
    taken: set[str] = set()
    for profile in others:
        name = _source_name(profile, taken)
        fields = [f"path: {_q(_relative(profile.path, plan_folder))}", f"unit: {_q(unit)}"]
        times = _timestamps(profile)
        if times:
            fields.append(f"timestamp: {_q(times[0])}")
        ident = _pick(list(profile.kinds), ("event_id", "id"))
        if ident and ident != unit:
            fields.append(f"id: {_q(ident)}")
        lines.append(f"  {name}: {{{', '.join(fields)}}}")
        if not times:
            lines.append("    # no timestamp: joined on the unit and not windowed (CRM-style)")
        # pandas' `to_csv` writes its index as a first column without a name
        columns = ", ".join(f"{c or '(unnamed)'} ({k})" for c, k in profile.kinds.items())
        lines.append(f"    # columns: {columns}")
        for column, counts in profile.values.items():
            if column != unit:
                values = ", ".join(f"{v} ({n:,})" for v, n in counts[:20])
                lines.append(f"    # {column} values: {values}")
        event = _pick(list(profile.values), EVENT_NAMES)
        if event:
            events.append((name, event, profile))
    return lines, events


def _segments(exposures: ExportProfile, used: set[str]) -> list[str]:
    candidates = [c for c in exposures.values if c not in used and len(exposures.values[c]) <= 20]
    if not candidates:
        return ["# segments: {device: device}   # pre-treatment columns of the exposures file"]
    return ["segments:   # pre-treatment attributes, columns of the exposures file"] + [
        f"  {c}: {_q(c)}" for c in candidates
    ]


def _metrics(events: list[tuple[str, str, ExportProfile]], exposures: ExportProfile) -> list[str]:
    covariate = next(
        (
            c
            for c, k in exposures.kinds.items()
            if k in ("number", "integer") and c.startswith("pre")
        ),
        None,
    )
    if not events:
        return [
            "metrics:",
            "  conversion:",
            "    role: primary",
            "    type: proportion",
            "    source: <a source above>",
            "    filter: \"<SQL over its columns, e.g. event_name = 'purchase'>\"",
        ]
    source, column, profile = events[0]
    values = profile.values[column]
    primary = _conversion_event(values) or ""
    others = [v for v, _ in values if v != primary]
    other = others[0] if others else primary
    number = next((c for c, k in profile.kinds.items() if k == "number"), None)

    def filter_of(value: str) -> str:
        name = (
            column
            if re.fullmatch(r"[A-Za-z_]\w*", column)
            else '"' + column.replace('"', '""') + '"'
        )
        text = value.replace("'", "''")
        return _q(f"{name} = '{text}'")

    name = re.sub(r"\W+", "_", primary).strip("_").lower() or "conversion"
    lines = [
        "metrics:",
        f"  {name}_rate:",
        "    role: primary            # exactly one: it decides the verdict",
        "    type: proportion         # share of units with at least one matching row",
        f"    source: {source}",
        f"    filter: {filter_of(primary)}",
        "    window: 7d               # counted from each unit's first exposure",
        "    goal: increase",
        "  # A guardrail: must not get worse by more than the margin.",
        "  # harmful_rate:",
        "  #   role: guardrail",
        "  #   type: proportion",
        f"  #   source: {source}",
        f"  #   filter: {filter_of(other)}",
        "  #   goal: decrease",
        "  #   margin: 0.10           # relative non-inferiority margin",
    ]
    if number:
        lines += [
            "  # Quality: value per unit (winsorized, CUPED-adjusted).",
            "  # value_per_unit:",
            "  #   role: quality",
            "  #   type: mean",
            f"  #   source: {source}",
            f"  #   filter: {filter_of(primary)}",
            f"  #   value: {_q(number)}",
            "  #   cap: 0.999",
            *([f"  #   covariate: {_q(covariate)}"] if covariate else []),
        ]
    lines += [
        "  # Diagnostic: explains why the primary moved.",
        "  # step_rate:",
        "  #   role: diagnostic",
        "  #   type: proportion",
        f"  #   source: {source}",
        f"  #   filter: {filter_of(other)}",
        "  # Downstream: late outcomes, often from a CRM source without timestamp.",
        '  # qualified_rate: {role: downstream, type: proportion, source: <crm>, filter: "..."}',
    ]
    return lines
