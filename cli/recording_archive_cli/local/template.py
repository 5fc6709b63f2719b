"""The SAM template: read it (YAML, short intrinsic tags included) and keep it parsed.

`load_template` turns the short forms (`!Ref X`, `!GetAtt A.B`, `!Sub ...`, `!If [...]`, ...)
into the long forms CloudFormation itself uses (`{"Ref": "X"}`, `{"Fn::GetAtt": ["A", "B"]}`,
`{"Fn::Sub": ...}`, `{"Fn::If": [...]}`), so the rest of the code only ever sees plain JSON-like
data. Like CloudFormation, it keeps dates as strings and refuses duplicate keys (PyYAML would
silently keep the last one). Any problem is a `TemplateError` whose message is one line naming the
file and the line.

`template_at` is the cached read every emulator module uses (re-read whenever the file
changes). A template problem of any kind, including a function the template does not define, is
a `TemplateError`. Imports nothing from the rest of the package.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import yaml
from yaml.constructor import ConstructorError
from yaml.nodes import MappingNode, Node, ScalarNode, SequenceNode

TEMPLATE_ENV = "RECORDING_ARCHIVE_TEMPLATE"

# Short tag -> long-form key, for the functions whose long form keeps the value's shape.
_FN_TAGS = {
    "Sub": "Fn::Sub",
    "If": "Fn::If",
    "Equals": "Fn::Equals",
    "Not": "Fn::Not",
    "And": "Fn::And",
    "Or": "Fn::Or",
    "Select": "Fn::Select",
    "Split": "Fn::Split",
    "Join": "Fn::Join",
    "FindInMap": "Fn::FindInMap",
    "GetAZs": "Fn::GetAZs",
    "ImportValue": "Fn::ImportValue",
    "Base64": "Fn::Base64",
    "Cidr": "Fn::Cidr",
    "Transform": "Fn::Transform",
    "Length": "Fn::Length",
    "ToJsonString": "Fn::ToJsonString",
}


class TemplateError(Exception):
    """The template cannot be read or is not a CloudFormation template."""


def default_template_path() -> Path:
    """`$RECORDING_ARCHIVE_TEMPLATE`, else the repository's `template.yaml`."""
    override = os.environ.get(TEMPLATE_ENV, "")
    if override:
        return Path(override)
    return Path(__file__).resolve().parents[3] / "template.yaml"


# libyaml's parser when PyYAML has it (several times faster on a template this size).
_SafeBase: type[yaml.SafeLoader] = getattr(yaml, "CSafeLoader", yaml.SafeLoader)


class _CfnLoader(_SafeBase):  # type: ignore[valid-type,misc]
    """SafeLoader + CloudFormation tags, dates kept as strings, duplicate keys refused."""


# CloudFormation reads `2010-09-09` as a string, not a date: drop the timestamp resolver (the
# resolver table is class-level, so copy it before changing it).
_CfnLoader.yaml_implicit_resolvers = {
    first: [(tag, regexp) for tag, regexp in resolvers if tag != "tag:yaml.org,2002:timestamp"]
    for first, resolvers in yaml.SafeLoader.yaml_implicit_resolvers.items()
}


def _node_value(loader: _CfnLoader, node: Node) -> Any:
    if isinstance(node, ScalarNode):
        return loader.construct_scalar(node)
    if isinstance(node, SequenceNode):
        return loader.construct_sequence(node, deep=True)
    if isinstance(node, MappingNode):
        return loader.construct_mapping(node, deep=True)
    raise ConstructorError(None, None, f"unexpected node {node.tag}", node.start_mark)


def _construct_ref(loader: _CfnLoader, node: Node) -> dict[str, Any]:
    if not isinstance(node, ScalarNode):
        raise ConstructorError(None, None, "!Ref takes a logical id", node.start_mark)
    return {"Ref": loader.construct_scalar(node)}


def _construct_condition(loader: _CfnLoader, node: Node) -> dict[str, Any]:
    if not isinstance(node, ScalarNode):
        raise ConstructorError(None, None, "!Condition takes a condition name", node.start_mark)
    return {"Condition": loader.construct_scalar(node)}


def _construct_getatt(loader: _CfnLoader, node: Node) -> dict[str, Any]:
    if isinstance(node, ScalarNode):
        value = str(loader.construct_scalar(node))
        resource, dot, attribute = value.partition(".")
        if not dot or not resource or not attribute:
            raise ConstructorError(
                None, None, f"!GetAtt {value!r} is not 'Resource.Attribute'", node.start_mark
            )
        return {"Fn::GetAtt": [resource, attribute]}
    if isinstance(node, SequenceNode):
        items = loader.construct_sequence(node, deep=True)
        if len(items) != 2:
            raise ConstructorError(
                None, None, "!GetAtt takes [Resource, Attribute]", node.start_mark
            )
        return {"Fn::GetAtt": items}
    raise ConstructorError(None, None, "!GetAtt takes 'A.B' or [A, B]", node.start_mark)


def _fn_constructor(long_name: str) -> Any:
    def construct(loader: _CfnLoader, node: Node) -> dict[str, Any]:
        return {long_name: _node_value(loader, node)}

    return construct


def _construct_mapping_no_duplicates(
    loader: _CfnLoader, node: MappingNode, deep: bool = False
) -> dict[Any, Any]:
    seen: set[Any] = set()
    for key_node, _ in node.value:
        key = loader.construct_object(key_node, deep=deep)
        if key in seen:
            raise ConstructorError(
                "while constructing a mapping",
                node.start_mark,
                f"found duplicate key {key!r}",
                key_node.start_mark,
            )
        seen.add(key)
    return yaml.SafeLoader.construct_mapping(loader, node, deep=deep)


_CfnLoader.add_constructor("!Ref", _construct_ref)
_CfnLoader.add_constructor("!Condition", _construct_condition)
_CfnLoader.add_constructor("!GetAtt", _construct_getatt)
for _short, _long in _FN_TAGS.items():
    _CfnLoader.add_constructor(f"!{_short}", _fn_constructor(_long))
_CfnLoader.construct_mapping = _construct_mapping_no_duplicates


def _one_line(exc: yaml.YAMLError, path: Path) -> str:
    mark = getattr(exc, "problem_mark", None) or getattr(exc, "context_mark", None)
    problem = getattr(exc, "problem", None) or str(exc)
    context = getattr(exc, "context", None)
    where = f"{path}:{mark.line + 1}:{mark.column + 1}" if mark is not None else str(path)
    text = f"{context}: {problem}" if context and "duplicate" in str(problem) else str(problem)
    return f"{where}: {' '.join(text.split())}"


def parse_template(text: str, *, source: str | Path = "<template>") -> dict[str, Any]:
    """Parse template text; see `load_template`."""
    path = Path(source)
    try:
        data = yaml.load(text, Loader=_CfnLoader)  # noqa: S506 - a SafeLoader subclass
    except yaml.YAMLError as exc:
        raise TemplateError(_one_line(exc, path)) from None
    if not isinstance(data, dict):
        raise TemplateError(f"{path}: not a CloudFormation template (top level is not a mapping)")
    resources = data.get("Resources")
    if not isinstance(resources, dict) or not resources:
        raise TemplateError(f"{path}: not a CloudFormation template (no Resources mapping)")
    for logical_id, resource in resources.items():
        if not isinstance(resource, dict) or not isinstance(resource.get("Type"), str):
            raise TemplateError(f"{path}: resource {logical_id!r} has no Type")
    return data


def load_template(path: str | Path | None = None) -> dict[str, Any]:
    """Read a CloudFormation/SAM YAML template into plain data, intrinsic functions in long form.

    Raises TemplateError (one line: file, line, problem) when the file is missing, is not YAML, uses
    an unknown tag, repeats a key, or is not a template.
    """
    resolved = Path(path) if path is not None else default_template_path()
    try:
        text = resolved.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise TemplateError(f"{resolved}: template not found") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise TemplateError(f"{resolved}: cannot read template ({exc})") from None
    return parse_template(text, source=resolved)


_PARSED: dict[tuple[str, int, int], dict[str, Any]] = {}


def template_at(template_path: Path | None) -> dict[str, Any]:
    """The parsed template, re-read whenever the file changes (this module never mutates it)."""
    path = Path(template_path) if template_path is not None else default_template_path()
    try:
        stat = path.stat()
    except OSError:
        return load_template(path)  # raises the TemplateError that says why
    key = (str(path.resolve()), stat.st_mtime_ns, stat.st_size)
    if key not in _PARSED:
        _PARSED[key] = load_template(path)
    return _PARSED[key]
