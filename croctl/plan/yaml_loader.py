"""Safe YAML loading that rejects duplicate keys and aliases and remembers line numbers."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any, ClassVar

import yaml
from yaml.nodes import MappingNode, Node

from croctl.errors import PlanError

_BOOL = "tag:yaml.org,2002:bool"


class LineDict(dict[str, Any]):
    """A mapping that remembers the 1-based line of each key in the YAML source."""

    lines: dict[str, int]
    line: int


class _Loader(yaml.SafeLoader):  # type: ignore[misc]  # PyYAML ships no type stubs
    """SafeLoader + duplicate-key detection + no aliases (no billion-laughs).

    Plain scalars resolve as YAML 1.2 reads them: only true/false are booleans (YAML 1.1 read
    arms named `on` and `off`, or `yes` and `no`, as booleans), and `5e-2` is a number.
    """

    yaml_implicit_resolvers: ClassVar[dict[str, list[tuple[str, re.Pattern[str]]]]] = {
        first: [(tag, regexp) for tag, regexp in resolvers if tag != _BOOL]
        for first, resolvers in yaml.SafeLoader.yaml_implicit_resolvers.items()
    }

    def compose_node(self, parent: Node | None, index: object) -> Node | None:
        if self.check_event(yaml.AliasEvent):
            mark = self.peek_event().start_mark
            raise PlanError(
                f"line {mark.line + 1}: YAML aliases (*name) are not allowed in a plan",
                hint="write the value out in full",
            )
        return super().compose_node(parent, index)


def _construct_mapping(loader: _Loader, node: MappingNode) -> LineDict:
    result = LineDict()
    result.lines = {}
    result.line = node.start_mark.line + 1
    for key_node, value_node in node.value:
        key = loader.construct_object(key_node, deep=True)
        line = key_node.start_mark.line + 1
        if not isinstance(key, str):
            key = str(key)
        if key in result:
            raise PlanError(
                f"line {line}: duplicate key '{key}' (first at line {result.lines[key]})",
                hint="remove one of them",
            )
        result[key] = loader.construct_object(value_node, deep=True)
        result.lines[key] = line
    return result


_Loader.add_constructor(yaml.resolver.BaseResolver.DEFAULT_MAPPING_TAG, _construct_mapping)
_Loader.add_implicit_resolver(
    _BOOL, re.compile(r"^(?:true|True|TRUE|false|False|FALSE)$"), list("tTfF")
)
_Loader.add_implicit_resolver(  # after YAML 1.1's floats, which need a dot
    "tag:yaml.org,2002:float",
    re.compile(r"^[-+]?[0-9][0-9_]*(?:\.[0-9_]*)?[eE][-+]?[0-9]+$"),
    list("-+0123456789"),
)


def load_yaml(path: Path) -> tuple[Any, str]:
    """Read a YAML file safely; return the parsed document and the raw text.

    Raises:
        PlanError: the file is missing, not a file, not UTF-8, or not valid YAML.
    """
    if not path.exists():
        raise PlanError(f"{path}: plan file not found", hint="check the path")
    if not path.is_file():
        raise PlanError(f"{path}: plan path is not a regular file", hint="pass a .yaml file")
    try:
        text = path.read_text(encoding="utf-8")
    except UnicodeDecodeError as exc:
        raise PlanError(f"{path}: plan is not UTF-8 text", hint="save it as UTF-8") from exc
    except OSError as exc:
        raise PlanError(f"{path}: cannot read plan: {exc.strerror}") from exc
    try:
        document = yaml.load(text, Loader=_Loader)
    except PlanError as exc:
        raise PlanError(f"{path}:{exc.message}", hint=exc.hint) from exc
    except yaml.YAMLError as exc:
        raise PlanError(_yaml_message(path, exc), hint="fix the YAML syntax") from exc
    return document, text


def _yaml_message(path: Path, exc: yaml.YAMLError) -> str:
    mark = getattr(exc, "problem_mark", None)
    problem = getattr(exc, "problem", None) or str(exc).splitlines()[0]
    if mark is None:
        return f"{path}: invalid YAML: {problem}"
    return f"{path}:{mark.line + 1}:{mark.column + 1}: invalid YAML: {problem}"
