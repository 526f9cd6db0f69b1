"""The payment-reminder schedule as staff type it and the settings store it: days from the
due date (`-3, 0, 7, 30`). Apart from the reminders themselves so the settings can check a
schedule without importing the worker's code (which reads the clock, which reads the
settings)."""

import re

# The schedule: whole days from the due date within these bounds, at most MAX_STEPS of them.
EARLIEST, LATEST = -60, 365
MAX_STEPS = 10


def check_schedule(days) -> None:
    """Raise ValueError (a sentence for people) unless `days` is a usable schedule: whole
    days from EARLIEST to LATEST, in order, each once, one to MAX_STEPS of them."""
    if not isinstance(days, list) or not all(type(day) is int for day in days):
        raise ValueError("Each step is a whole number of days, like -3, 0 or 7.")
    if not days:
        raise ValueError("Give at least one day, e.g. -3, 0, 7, 30.")
    if len(days) > MAX_STEPS:
        raise ValueError(f"At most {MAX_STEPS} reminders per invoice.")
    if min(days) < EARLIEST or max(days) > LATEST:
        raise ValueError(
            f"Each day is from {EARLIEST} ({-EARLIEST} days before the due date) "
            f"to {LATEST} (a year after it)."
        )
    if days != sorted(set(days)):
        raise ValueError("List each day once, from the earliest to the latest.")


def parse_schedule(text: str) -> list[int]:
    """The schedule as staff type it (`-3, 0, 7, 30`), sorted with each day once; raises
    ValueError with a sentence for people."""
    days = []
    for part in re.split(r"[,;\s]+", (text or "").strip()):
        if not part:
            continue
        try:
            days.append(int(part.replace("\u2212", "-")))  # a typographic minus too
        except ValueError:
            raise ValueError(
                f"“{part[:20]}” is not a whole number of days (like -3, 0 or 7)."
            ) from None
    days = sorted(set(days))
    check_schedule(days)
    return days


def schedule_text(days) -> str:
    """The schedule as the settings form shows it: `-3, 0, 7, 30`."""
    return ", ".join(str(day) for day in days)
