"""Scan log lines for secrets and personal data: a full phone number, a token, a signature."""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass, field

_BASE64_44 = re.compile(r"[A-Za-z0-9+/]{43}=")
_DIGITS = re.compile(r"\+?\d{8,15}")


@dataclass
class Secrets:
    phones: set[str] = field(default_factory=set)  # as sent, e.g. +14155550101
    tokens: set[str] = field(default_factory=set)
    signatures: set[str] = field(default_factory=set)

    def add_phones(self, numbers: Iterable[str]) -> None:
        for n in numbers:
            self.phones.add(n)
            self.phones.add(n.lstrip("+"))


@dataclass
class ScanResult:
    lines: int = 0
    leaks: list[str] = field(default_factory=list)  # "kind: line (truncated)"

    @property
    def count(self) -> int:
        return len(self.leaks)


def scan(lines: Iterable[str], secrets: Secrets) -> ScanResult:
    result = ScanResult()
    for line in lines:
        result.lines += 1
        kinds = []
        if any(token in line for token in secrets.tokens):
            kinds.append("token")
        if any(m in secrets.signatures for m in _BASE64_44.findall(line)):
            kinds.append("signature")
        if any(
            m in secrets.phones or m.lstrip("+") in secrets.phones for m in _DIGITS.findall(line)
        ):
            kinds.append("phone")
        for kind in kinds:
            result.leaks.append(f"{kind}: {line[:300]}")
    return result
