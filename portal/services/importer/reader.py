"""Reading a CSV file of one kind: the header, every row parsed and checked, bad rows reported
by line."""

import codecs
import csv
import io

from .base import Cells, Kind, Row


def text_stream(fh):
    """Lines of text for csv: binary files are decoded as UTF-8 one line at a time (a BOM is
    dropped), so a byte that is not UTF-8 is reported on its own line, not on the header."""
    if isinstance(fh, io.TextIOBase):
        return fh
    return decoded_lines(fh)


def decoded_lines(fh):
    first = True
    for raw in fh:
        if first:
            raw, first = raw.removeprefix(codecs.BOM_UTF8), False
        yield raw.decode("utf-8")


def read_chunks(spec: Kind, fh, problems: list[tuple[int, str]], size: int | None = 5_000):
    """The file's good rows, `size` at a time (all at once for None), as they are read: a
    big file is never held whole. Bad rows go to `problems`; a key repeated anywhere in the
    file is reported on its later line (`seen` keeps every key, the one thing kept whole)."""
    reader = csv.reader(text_stream(fh))
    try:
        header = next(reader, None)
    except (csv.Error, UnicodeDecodeError) as exc:
        problems.append((1, f"cannot read the header: {exc}"))
        return
    if not header or not any(cell.strip() for cell in header):
        problems.append((1, "a header row is required: " + ", ".join(spec.columns)))
        return
    names = [cell.strip().lstrip("\ufeff").lower() for cell in header]
    reason = header_problem(spec, names)
    if reason:
        problems.append((1, reason))
        return

    rows: list[Row] = []
    seen: dict[object, int] = {}
    line = reader.line_num + 1
    while True:
        try:
            record = next(reader)
        except StopIteration:
            break
        except (csv.Error, UnicodeDecodeError) as exc:
            problems.append((line, f"cannot read this line: {exc}"))
            break
        start, line = line, reader.line_num + 1
        if not any(cell.strip() for cell in record):
            continue  # blank lines (and rows of empty cells) carry nothing
        if len(record) != len(names):
            problems.append((start, f"expected {len(names)} fields, found {len(record)}"))
            continue
        cells = Cells({name: cell.strip() for name, cell in zip(names, record, strict=True)})
        key, values, refs = spec.parse(cells)
        if cells.problems:
            problems.append((start, "; ".join(cells.problems)))
            continue
        if key in seen:
            problems.append(
                (start, f"{spec.describe(key)} appears again (first on line {seen[key]})")
            )
            continue
        seen[key] = start
        rows.append(Row(start, key, values, refs))
        if size and len(rows) >= size:
            yield rows
            rows = []
    if rows:
        yield rows


def header_problem(spec: Kind, names: list[str]) -> str:
    unknown = [n or "(blank)" for n in names if n not in spec.columns]
    if unknown:
        return (
            f"unknown column(s) {', '.join(unknown)}; "
            f"the columns for {spec.name} are {', '.join(spec.columns)}"
        )
    repeated = sorted({n for n in names if names.count(n) > 1})
    if repeated:
        return f"column(s) {', '.join(repeated)} appear more than once"
    missing = [c for c in spec.required if c not in names]
    if missing:
        return f"missing required column(s) {', '.join(missing)}"
    return ""


def check_rows(spec: Kind, rows: list[Row], state: dict, problems: list[tuple[int, str]]) -> None:
    for row in rows:
        found = spec.check(row, state)
        if found:
            problems.append((row.line, "; ".join(found)))
