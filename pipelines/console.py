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


def output_console(stderr: bool = False) -> Console:
    """A terminal's own width; NOT_A_TERMINAL_WIDTH when not a terminal and COLUMNS is unset."""
    wide = not Console(stderr=stderr).is_terminal and not os.environ.get("COLUMNS")
    return Console(stderr=stderr, width=NOT_A_TERMINAL_WIDTH if wide else None)


class Table(RichTable):
    """rich's Table whose columns fold rather than cut (overflow="fold" unless a column asks otherwise)."""

    def add_column(self, header="", *args, overflow: str = "fold", **kwargs) -> None:
        super().add_column(header, *args, overflow=overflow, **kwargs)
