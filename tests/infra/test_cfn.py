"""The CloudFormation YAML loader: short tags in long form, and one-line errors."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from recording_archive_cli.local import template as cfn
from recording_archive_cli.local.template import TemplateError, load_template, parse_template

ROOT = Path(__file__).resolve().parents[2]


def value_of(expression: str) -> object:
    """Parse `X: <expression>` inside a minimal template and return X."""
    text = f"Resources:\n  R:\n    Type: AWS::SQS::Queue\n    Properties:\n      X: {expression}\n"
    return parse_template(text)["Resources"]["R"]["Properties"]["X"]


@pytest.mark.parametrize(
    ("expression", "expected"),
    [
        ("!Ref Table", {"Ref": "Table"}),
        ("!Ref AWS::Region", {"Ref": "AWS::Region"}),
        ("!GetAtt Table.Arn", {"Fn::GetAtt": ["Table", "Arn"]}),
        ("!GetAtt Table.Endpoint.Port", {"Fn::GetAtt": ["Table", "Endpoint.Port"]}),
        ("!GetAtt [Table, StreamArn]", {"Fn::GetAtt": ["Table", "StreamArn"]}),
        ('!Sub "arn:${AWS::Partition}:s3:::${B}"', {"Fn::Sub": "arn:${AWS::Partition}:s3:::${B}"}),
        (
            "!Sub ['${A}-${B}', {A: !Ref X, B: b}]",
            {"Fn::Sub": ["${A}-${B}", {"A": {"Ref": "X"}, "B": "b"}]},
        ),
        (
            "!If [Cond, !Ref A, !Ref AWS::NoValue]",
            {"Fn::If": ["Cond", {"Ref": "A"}, {"Ref": "AWS::NoValue"}]},
        ),
        ("!Equals [!Ref P, '']", {"Fn::Equals": [{"Ref": "P"}, ""]}),
        ("!Not [!Condition C]", {"Fn::Not": [{"Condition": "C"}]}),
        (
            "!And [!Condition A, !Condition B]",
            {"Fn::And": [{"Condition": "A"}, {"Condition": "B"}]},
        ),
        ("!Or [!Condition A, !Condition B]", {"Fn::Or": [{"Condition": "A"}, {"Condition": "B"}]}),
        ("!Select [0, !GetAZs '']", {"Fn::Select": [0, {"Fn::GetAZs": ""}]}),
        ("!Split [',', !Ref Hosts]", {"Fn::Split": [",", {"Ref": "Hosts"}]}),
        ("!Join ['', [a, !Ref B]]", {"Fn::Join": ["", ["a", {"Ref": "B"}]]}),
        (
            "!FindInMap [M, !Ref AWS::Region, K]",
            {"Fn::FindInMap": ["M", {"Ref": "AWS::Region"}, "K"]},
        ),
        ("!ImportValue shared-vpc", {"Fn::ImportValue": "shared-vpc"}),
        ("!Base64 hello", {"Fn::Base64": "hello"}),
        ("!Base64 {'Fn::Sub': x}", {"Fn::Base64": {"Fn::Sub": "x"}}),
        ("!Condition HasEmail", {"Condition": "HasEmail"}),
    ],
)
def test_short_tags_become_long_form(expression: str, expected: object) -> None:
    assert value_of(expression) == expected


def test_block_style_sub_and_nested_tags() -> None:
    text = (
        "Resources:\n"
        "  R:\n"
        "    Type: T\n"
        "    Properties:\n"
        "      P: !If\n"
        "        - C\n"
        "        - - !GetAtt A.Arn\n"
        "          - !Sub '${A.Arn}/*'\n"
        "        - !Ref AWS::NoValue\n"
    )
    assert parse_template(text)["Resources"]["R"]["Properties"]["P"] == {
        "Fn::If": [
            "C",
            [{"Fn::GetAtt": ["A", "Arn"]}, {"Fn::Sub": "${A.Arn}/*"}],
            {"Ref": "AWS::NoValue"},
        ]
    }


def test_dates_stay_strings_like_cloudformation() -> None:
    text = "AWSTemplateFormatVersion: 2010-09-09\nResources:\n  R:\n    Type: T\n"
    assert parse_template(text)["AWSTemplateFormatVersion"] == "2010-09-09"


def test_the_project_template_loads() -> None:
    template = load_template(ROOT / "template.yaml")
    assert template["Transform"] == "AWS::Serverless-2016-10-31"
    assert template["Resources"]["ArchiveFunction"]["Properties"]["Events"]
    # The module-level default is the same file.
    assert cfn.default_template_path() == ROOT / "template.yaml"


def test_default_path_can_be_overridden(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    other = tmp_path / "other.yaml"
    other.write_text("Resources:\n  Q:\n    Type: AWS::SQS::Queue\n", encoding="utf-8")
    monkeypatch.setenv(cfn.TEMPLATE_ENV, str(other))
    assert cfn.default_template_path() == other
    assert load_template()["Resources"] == {"Q": {"Type": "AWS::SQS::Queue"}}


@pytest.mark.parametrize(
    ("text", "message"),
    [
        (
            "Resources:\n  R:\n    Type: T\n    P: !Foo x\n",
            "t.yaml:4:8: could not determine a constructor for the tag '!Foo'",
        ),
        (
            "Resources:\n  R:\n    Type: T\n  R:\n    Type: U\n",
            "t.yaml:4:3: while constructing a mapping: found duplicate key 'R'",
        ),
        (
            "Resources:\n  R:\n    Type: T\n    P: [a, b\n",
            "re:t\\.yaml:5:1: (did not find )?expected ',' or '\\]'.*",
        ),
        (
            "Resources:\n  R:\n    Type: T\n    P: !GetAtt NoDot\n",
            "t.yaml:4:8: !GetAtt 'NoDot' is not 'Resource.Attribute'",
        ),
        (
            "Resources:\n  R:\n    Type: T\n    P: !GetAtt [A, B, C]\n",
            "t.yaml:4:8: !GetAtt takes [Resource, Attribute]",
        ),
        (
            "Resources:\n  R:\n    Type: T\n    P: !GetAtt {A: B}\n",
            "t.yaml:4:8: !GetAtt takes 'A.B' or [A, B]",
        ),
        ("Resources:\n  R:\n    Type: T\n    P: !Ref [A]\n", "t.yaml:4:8: !Ref takes a logical id"),
        (
            "Resources:\n  R:\n    Type: T\n    P: !Condition [A]\n",
            "t.yaml:4:8: !Condition takes a condition name",
        ),
        ("- a\n- b\n", "t.yaml: not a CloudFormation template (top level is not a mapping)"),
        ("Parameters: {}\n", "t.yaml: not a CloudFormation template (no Resources mapping)"),
        ("Resources: {}\n", "t.yaml: not a CloudFormation template (no Resources mapping)"),
        ("Resources:\n  R: {Properties: {}}\n", "t.yaml: resource 'R' has no Type"),
        ("Resources:\n  R: [1]\n", "t.yaml: resource 'R' has no Type"),
    ],
)
def test_errors_are_one_line_with_file_and_line(text: str, message: str) -> None:
    with pytest.raises(TemplateError) as excinfo:
        parse_template(text, source="t.yaml")
    if message.startswith("re:"):  # libyaml and pure-Python PyYAML word this one differently
        assert re.fullmatch(message[3:], str(excinfo.value))
    else:
        assert str(excinfo.value) == message
    assert "\n" not in str(excinfo.value)


def test_missing_file(tmp_path: Path) -> None:
    missing = tmp_path / "nope.yaml"
    with pytest.raises(TemplateError, match=r"nope\.yaml: template not found$"):
        load_template(missing)


def test_unreadable_file(tmp_path: Path) -> None:
    binary = tmp_path / "bin.yaml"
    binary.write_bytes(b"\xff\xfe\x00garbage")
    with pytest.raises(TemplateError, match=r"bin\.yaml: cannot read template"):
        load_template(binary)
    with pytest.raises(TemplateError, match="cannot read template"):
        load_template(tmp_path)  # a directory


def test_python_tags_are_refused() -> None:
    """The loader is a SafeLoader: no arbitrary object construction."""
    text = "Resources:\n  R:\n    Type: !!python/object/apply:os.system ['true']\n"
    with pytest.raises(TemplateError, match="could not determine a constructor"):
        parse_template(text, source="t.yaml")
