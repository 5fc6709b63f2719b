"""CloudFormation intrinsic functions, resolved the way CloudFormation does for what our template
uses: `Ref` to parameters (defaults, or overrides), pseudo parameters and created resources,
`Fn::GetAtt`, `Fn::Sub`, `Fn::If` with the template's Conditions, `Fn::Join`, `Fn::Select`,
`Fn::Split`, `Fn::FindInMap`, `AWS::NoValue`.

Pure data in, data out: no AWS calls, no file access (the template is passed in). Imports
nothing from the rest of the package.
"""

from __future__ import annotations

import base64
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

PARTITION = "aws"


class LocalResourceError(Exception):
    """The template's resources cannot be created or resolved locally (one-line message)."""


class _NoValue:
    """`AWS::NoValue`: the property is removed."""


NO_VALUE = _NoValue()

SUB_VAR = re.compile(r"\$\{([^}]*)\}")


@dataclass
class Physical:
    """What `Ref` and `Fn::GetAtt` return for a created resource."""

    ref: str
    attributes: dict[str, str]


def scalar_text(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (int, float, str)):
        return str(value)
    raise LocalResourceError(f"expected a scalar, got {type(value).__name__}")


class Resolver:
    def __init__(
        self,
        template: Mapping[str, Any],
        *,
        region: str,
        account_id: str,
        stack_name: str,
        parameters: Mapping[str, str] | None = None,
    ) -> None:
        self.template = template
        self.region = region
        self.account_id = account_id
        self.stack_name = stack_name
        self.resources: dict[str, Physical] = {}
        declared: Mapping[str, Any] = template.get("Parameters") or {}
        self.parameters: dict[str, str] = {}
        for name, spec in declared.items():
            if isinstance(spec, Mapping) and "Default" in spec:
                default = spec["Default"]
                if isinstance(default, list):
                    default = ",".join(scalar_text(v) for v in default)
                self.parameters[name] = scalar_text(default)
        for name, value in (parameters or {}).items():
            if name not in declared:
                raise LocalResourceError(f"unknown template parameter {name!r}")
            self.parameters[name] = str(value)
        self._conditions: dict[str, bool] = {}

    # --- conditions ------------------------------------------------------------------------
    def condition(self, name: str) -> bool:
        if name not in self._conditions:
            conditions: Mapping[str, Any] = self.template.get("Conditions") or {}
            if name not in conditions:
                raise LocalResourceError(f"unknown condition {name!r}")
            self._conditions[name] = self._evaluate(conditions[name])
        return self._conditions[name]

    def _evaluate(self, expr: Any) -> bool:
        if isinstance(expr, bool):
            return expr
        if isinstance(expr, Mapping) and len(expr) == 1:
            (fn, arg), *_ = expr.items()
            if fn == "Condition":
                return self.condition(str(arg))
            if fn == "Fn::Equals":
                left, right = (self.resolve(v) for v in arg)
                return scalar_text(left) == scalar_text(right)
            if fn == "Fn::Not":
                return not self._evaluate(arg[0])
            if fn == "Fn::And":
                return all(self._evaluate(v) for v in arg)
            if fn == "Fn::Or":
                return any(self._evaluate(v) for v in arg)
        raise LocalResourceError(f"unsupported condition expression {expr!r}")

    # --- references ------------------------------------------------------------------------
    def ref(self, name: str) -> Any:
        pseudo: dict[str, Any] = {
            "AWS::Region": self.region,
            "AWS::AccountId": self.account_id,
            "AWS::StackName": self.stack_name,
            "AWS::StackId": (
                f"arn:{PARTITION}:cloudformation:{self.region}:{self.account_id}"
                f":stack/{self.stack_name}/local"
            ),
            "AWS::Partition": PARTITION,
            "AWS::URLSuffix": "amazonaws.com",
            "AWS::NoValue": NO_VALUE,
        }
        if name in pseudo:
            return pseudo[name]
        if name in self.parameters:
            return self.parameters[name]
        if name in self.resources:
            return self.resources[name].ref
        raise LocalResourceError(f"Ref {name!r}: not a parameter or a locally created resource")

    def getatt(self, logical_id: str, attribute: str) -> str:
        physical = self.resources.get(logical_id)
        if physical is None:
            raise LocalResourceError(
                f"GetAtt {logical_id}.{attribute}: {logical_id} is not created locally"
            )
        if attribute not in physical.attributes:
            raise LocalResourceError(f"GetAtt {logical_id}.{attribute}: unknown attribute")
        return physical.attributes[attribute]

    def sub(self, arg: Any) -> str:
        if isinstance(arg, list):
            text, variables = arg[0], {k: self.resolve(v) for k, v in arg[1].items()}
        else:
            text, variables = arg, {}

        def replace(match: re.Match[str]) -> str:
            name = match.group(1)
            if name.startswith("!"):
                return "${" + name[1:] + "}"
            if name in variables:
                return scalar_text(variables[name])
            if "." in name and not name.startswith("AWS::"):
                logical_id, _, attribute = name.partition(".")
                return self.getatt(logical_id, attribute)
            return scalar_text(self.ref(name))

        return SUB_VAR.sub(replace, str(text))

    # --- values ----------------------------------------------------------------------------
    def resolve(self, value: Any) -> Any:
        if isinstance(value, list):
            items = [self.resolve(v) for v in value]
            return [v for v in items if v is not NO_VALUE]
        if not isinstance(value, Mapping):
            return value
        if len(value) == 1:
            (key, arg), *_ = value.items()
            handler = self._functions().get(key)
            # An IAM statement's "Condition" block is a mapping, the intrinsic takes a name.
            if handler is not None and not (key == "Condition" and not isinstance(arg, str)):
                return handler(arg)
        resolved = {k: self.resolve(v) for k, v in value.items()}
        return {k: v for k, v in resolved.items() if v is not NO_VALUE}

    def _functions(self) -> dict[str, Callable[[Any], Any]]:
        return {
            "Ref": lambda arg: self.ref(str(arg)),
            "Fn::GetAtt": self._fn_getatt,
            "Fn::Sub": self.sub,
            "Fn::If": self._fn_if,
            "Fn::Join": lambda arg: str(arg[0]).join(scalar_text(v) for v in self.resolve(arg[1])),
            "Fn::Select": lambda arg: self.resolve(arg[1])[int(self.resolve(arg[0]))],
            "Fn::Split": lambda arg: scalar_text(self.resolve(arg[1])).split(str(arg[0])),
            "Fn::FindInMap": self._fn_find_in_map,
            "Fn::GetAZs": lambda _arg: [f"{self.region}{z}" for z in "abc"],
            "Fn::Base64": lambda arg: base64.b64encode(
                scalar_text(self.resolve(arg)).encode()
            ).decode(),
            "Fn::Equals": lambda arg: self._evaluate({"Fn::Equals": arg}),
            "Condition": lambda arg: self.condition(str(arg)),
        }

    def _fn_getatt(self, arg: Any) -> str:
        logical_id, attribute = arg if isinstance(arg, list) else str(arg).split(".", 1)
        return self.getatt(str(logical_id), str(self.resolve(attribute)))

    def _fn_if(self, arg: Any) -> Any:
        name, when_true, when_false = arg
        return self.resolve(when_true if self.condition(str(name)) else when_false)

    def _fn_find_in_map(self, arg: Any) -> Any:
        name, first, second = (scalar_text(self.resolve(v)) for v in arg)
        try:
            return self.resolve(self.template["Mappings"][name][first][second])
        except KeyError:
            raise LocalResourceError(f"FindInMap {name}/{first}/{second}: not found") from None


def references(value: Any) -> set[str]:
    """Logical ids and parameter names a value refers to (Ref, GetAtt, Sub)."""
    found: set[str] = set()
    if isinstance(value, list):
        for v in value:
            found |= references(v)
    elif isinstance(value, Mapping):
        for key, arg in value.items():
            if key == "Ref":
                found.add(str(arg))
            elif key == "Fn::GetAtt":
                found.add(str(arg[0] if isinstance(arg, list) else str(arg).split(".")[0]))
            elif key == "Fn::Sub":
                text = arg[0] if isinstance(arg, list) else arg
                for name in SUB_VAR.findall(str(text)):
                    if not name.startswith("!"):
                        found.add(name.split(".")[0])
                if isinstance(arg, list):
                    found |= references(arg[1])
            else:
                found |= references(arg)
    return found
