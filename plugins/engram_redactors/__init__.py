"""Engram's built-in redactor: secrets and personal data, found by rules.

``secrets_and_pii`` finds provider API keys and tokens, JWTs, PEM private keys,
passwords in URLs and in ``password=``-style assignments, e-mail addresses,
phone numbers, payment card numbers (Luhn-checked) and IBANs (mod-97-checked).
It reports *where* each one is (:class:`engram.interfaces.Detection`, with a
typed ``kind`` and character offsets) and never keeps the matched text.

It is pure Python with precompiled regexes and no dependencies beyond the
kernel, so it is cheap to run on every event and every prompt.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from engram.hookspecs import hookimpl
from engram.interfaces import Detection

from ._rules import KINDS, RULES

__all__ = ["KINDS", "SecretsAndPiiRedactor", "register_redactors"]

# (start, end, rank, kind)
_Candidate = tuple[int, int, int, str]


def _overlaps(chosen: list[_Candidate], candidate: _Candidate) -> bool:
    start, end = candidate[0], candidate[1]
    return any(start < c_end and c_start < end for c_start, c_end, _, _ in chosen)


def _resolve(candidates: list[_Candidate]) -> list[_Candidate]:
    """Pick non-overlapping detections: most specific rule first, then longest.

    Candidates are grouped into clusters of transitively overlapping spans and
    each cluster is settled on its own.  Clusters are almost always a single
    span, so this stays linear in practice however long the text is.
    """
    candidates.sort(key=lambda c: (c[0], -c[1]))
    resolved: list[_Candidate] = []
    index = 0
    total = len(candidates)
    while index < total:
        cluster = [candidates[index]]
        cluster_end = candidates[index][1]
        index += 1
        while index < total and candidates[index][0] < cluster_end:
            cluster.append(candidates[index])
            cluster_end = max(cluster_end, candidates[index][1])
            index += 1
        if len(cluster) == 1:
            resolved.append(cluster[0])
            continue
        cluster.sort(key=lambda c: (-c[2], -(c[1] - c[0]), c[0]))
        chosen: list[_Candidate] = []
        for candidate in cluster:
            if not _overlaps(chosen, candidate):
                chosen.append(candidate)
        resolved.extend(sorted(chosen))
    return resolved


class SecretsAndPiiRedactor:
    """Rule-based detector of credentials and personal data.

    ``detect`` accepts any ``str`` (empty, megabytes long, with NUL bytes or
    lone surrogates) and returns sorted, non-overlapping detections whose
    offsets index the string it was given.
    """

    name = "secrets_and_pii"
    kinds: tuple[str, ...] = KINDS

    def detect(self, text: str) -> list[Detection]:
        if not isinstance(text, str):
            raise TypeError(f"{self.name} redactor expects str, got {type(text).__name__}")
        if not text:
            return []
        lowered: str | None = None
        candidates: list[_Candidate] = []
        for rule in RULES:
            if lowered is None and (rule.hints_casefold or rule.locator is not None):
                lowered = text.lower()
            if rule.hints:
                haystack = lowered if rule.hints_casefold and lowered is not None else text
                if not any(hint in haystack for hint in rule.hints):
                    continue
            candidates.extend((start, end, rule.rank, rule.kind) for start, end in rule.scan(text, lowered))
        return [
            Detection(kind=kind, start=start, end=end, redactor=self.name)
            for start, end, _, kind in _resolve(candidates)
        ]

    def __repr__(self) -> str:
        return f"{type(self).__name__}()"


@hookimpl
def register_redactors(register: Callable[..., Any]) -> None:
    register(SecretsAndPiiRedactor())
