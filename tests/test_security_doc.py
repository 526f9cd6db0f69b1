"""C7: SECURITY.md documents every authentication pathway's limits, equal to the code's."""

import re
from datetime import timedelta
from pathlib import Path

from portal.services.throttle import RULES
from portal.tokens import LIFETIMES

DOC = (Path(__file__).resolve().parents[1] / "SECURITY.md").read_text()


def duration(text: str) -> timedelta:
    number, unit = text.split()
    return timedelta(minutes=int(number)) * {"min": 1, "h": 60, "days": 1440}[unit]


def rows(heading: str) -> list[list[str]]:
    section = DOC.split(f"## {heading}\n", 1)[1].split("\n## ", 1)[0]
    lines = [line for line in section.splitlines() if line.startswith("| `")]
    return [[cell.strip().strip("`") for cell in line.strip("|").split("|")] for line in lines]


def test_the_documented_throttles_are_the_code_defaults():
    documented = {
        scope: (int(limit), duration(window), duration(lockout), int(cap))
        for scope, limit, window, lockout, cap in rows("Throttles")
    }
    actual = {s: (r.limit, r.window, r.lockout, r.daily_cap) for s, r in RULES.items()}
    assert documented == actual


def test_the_documented_link_lifetimes_are_the_code_defaults():
    assert {name: duration(age) for name, age in rows("Link lifetimes")} == LIFETIMES


def test_every_throttle_and_link_is_named_by_a_pathway():
    pathways = DOC.split("## Pathways\n", 1)[1].split("\n## ", 1)[0]
    named = set(re.findall(r"`([a-z-]+)`", pathways))
    assert set(RULES) | set(LIFETIMES) - {"checkout"} <= named
