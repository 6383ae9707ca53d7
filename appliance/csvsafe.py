"""CSV the appliance writes, safe to open in a spreadsheet: every writer goes through here.

A cell that starts with ``=``, ``+``, ``-``, ``@``, a tab or a carriage return is a
formula to Excel, LibreOffice and Google Sheets (``=HYPERLINK(...)`` typed as a user name
at the login form would become a link in the auditor's export). Such a value is prefixed
with a single quote, OWASP's rule for CSV injection: the spreadsheet shows the text, and a
reader that strips one leading ``'`` gets the value back. Other cells are written as they
are, so an export without such a value is byte for byte what the plain ``csv`` module
writes. The header is the writer's own (fixed column names such as ECS ``@timestamp``)
and is written as given.

``bom=True`` starts the text with a UTF-8 byte-order mark, which Excel on a Chinese (or
any non-UTF-8) Windows needs to read UTF-8 rather than the ANSI code page; the text must
then be encoded as UTF-8.
"""

from __future__ import annotations

import csv
import io
from collections.abc import Iterable, Iterator, Sequence

FORMULA_PREFIXES = ("=", "+", "-", "@", "\t", "\r")
BOM = "\ufeff"


def neutralise(value: str) -> str:
    """``value``, prefixed with ``'`` if a spreadsheet would take it for a formula."""
    return "'" + value if value.startswith(FORMULA_PREFIXES) else value


def lines(
    header: Sequence[str], rows: Iterable[Sequence[str]], *, bom: bool = False
) -> Iterator[str]:
    """The CSV text (``csv`` module's default dialect) of ``header`` and then ``rows``, a
    line at a time (so it can be streamed); every row cell goes through ``neutralise``."""
    buffer = io.StringIO()
    writer = csv.writer(buffer)
    if bom:
        buffer.write(BOM)
    writer.writerow(header)
    yield _drain(buffer)
    for row in rows:
        writer.writerow([neutralise(cell) for cell in row])
        yield _drain(buffer)


def _drain(buffer: io.StringIO) -> str:
    text = buffer.getvalue()
    buffer.seek(0)
    buffer.truncate()
    return text
