"""The CLI's consoles and tables: no header or value is ever cut with an ellipsis ("valida…").

A table's columns fold a header or value that does not fit (the whole text, over several lines) instead of truncating
it. (Minimum widths per header would be tidier, but where their sum exceeds the console rich crops the table's right
side: worse than a folded word.) Output that does not go to a terminal (a pipe, a file, a CI log) is laid out NOT_A_TERMINAL_WIDTH
wide, unless COLUMNS says otherwise: rich would use 80 there, whatever the reader's screen.
"""

from __future__ import annotations

import os

from rich.console import Console
from rich.table import Table as RichTable

NOT_A_TERMINAL_WIDTH = 200


class _OutputConsole(Console):
    """Its width is chosen each time it lays something out, not once at import: COLUMNS when set, else the terminal's
    own width, else NOT_A_TERMINAL_WIDTH (a console made at import would keep whatever COLUMNS said then)."""

    _set_width: int | None = None  # a width given by its code (console.width = N) wins

    @property
    def size(self):
        columns = os.environ.get("COLUMNS", "")
        self._width = self._set_width or (int(columns) if columns.isdigit() else
                                          None if self.is_terminal else NOT_A_TERMINAL_WIDTH)
        return Console.size.fget(self)

    @size.setter
    def size(self, new_size) -> None:
        Console.size.fset(self, new_size)

    @property
    def width(self) -> int:
        return self.size.width

    @width.setter
    def width(self, width: int) -> None:
        self._set_width = width


def output_console(stderr: bool = False) -> Console:
    """The CLI's console (stdout, or stderr for errors): see _OutputConsole for its width."""
    return _OutputConsole(stderr=stderr)


class Table(RichTable):
    """rich's Table whose columns fold rather than cut (overflow="fold" unless a column asks otherwise)."""

    def add_column(self, header="", *args, overflow: str = "fold", **kwargs) -> None:
        super().add_column(header, *args, overflow=overflow, **kwargs)
