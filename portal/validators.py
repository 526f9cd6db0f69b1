"""Checks on typed text shared by forms, views and services.

`control_character_problem` is the one rule for text that can reach an email header (a case
subject in "Case CS-17: <subject>", a person's or company's name, a quote or RFQ title): no
control characters at all (checklist B9, G5). A BEL, ESC, DEL or C1 character (U+0080 to
U+009F) in a subject made every staff reply on that case fail, since the email library
refuses such a header; a line break would start a header of its own. They are refused at
the input with a message next to the field, never silently dropped.
"""

import unicodedata

from wtforms.validators import ValidationError

# Unicode's control characters (C0, DEL, C1) and the line and paragraph separators that
# some mail programs treat as line breaks.
REFUSED_CATEGORIES = ("Cc", "Zl", "Zp")
CONTROL_MESSAGE = (
    "Remove the control characters (such as tabs, line breaks or escape codes) from this "
    "text: use letters, numbers and punctuation only."
)


def has_control_characters(text: str | None) -> bool:
    """True when `text` holds a control character or a line or paragraph separator."""
    return any(unicodedata.category(ch) in REFUSED_CATEGORIES for ch in text or "")


def control_character_problem(text: str | None) -> str | None:
    """What to tell the person when `text` cannot go into an email header, else None."""
    return CONTROL_MESSAGE if has_control_characters(text) else None


def no_control_characters(form, field) -> None:
    """A WTForms validator for single-line fields that can reach an email header."""
    problem = control_character_problem(field.data if isinstance(field.data, str) else "")
    if problem:
        raise ValidationError(problem)


def refuse_control_characters(form, *names: str) -> bool:
    """For a view whose form lacks the validator: put the message on each named field whose
    text has control characters; True when all of them are clean."""
    clean = True
    for name in names:
        field = getattr(form, name)
        problem = control_character_problem(field.data if isinstance(field.data, str) else "")
        if problem:
            field.errors = [*field.errors, problem]
            clean = False
    return clean
