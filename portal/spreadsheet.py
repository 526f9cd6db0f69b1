"""CSV exports, customer and staff: every one is written through `writer` here (checklist G6).

A spreadsheet reads a cell that starts with `=`, `+`, `-`, `@`, a tab or a carriage return
as a formula (CSV injection): `=HYPERLINK(...)` in an invoice number, a payment reference
or a description would run on the reader's machine. Every text cell gets a leading `'`
when it starts with one of those; numbers (amounts as `Decimal`, counts) are written as they
are, so a negative amount stays a number.
"""

import csv

FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r")


def safe_cell(value):
    """A cell a spreadsheet will not evaluate: text starting like a formula gets a `'`."""
    if value is None:
        return ""
    if isinstance(value, str) and value.startswith(FORMULA_STARTS):
        return "'" + value
    return value


class SafeWriter:
    """`csv.writer` whose rows are neutralised cell by cell; the only way exports write."""

    def __init__(self, buffer, **options):
        self._writer = csv.writer(buffer, **options)

    def writerow(self, row):
        return self._writer.writerow([safe_cell(value) for value in row])

    def writerows(self, rows):
        for row in rows:
            self.writerow(row)


def writer(buffer, **options) -> SafeWriter:
    """A CSV writer for an export (the options of `csv.writer`)."""
    return SafeWriter(buffer, **options)
