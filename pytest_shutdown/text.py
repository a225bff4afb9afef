"""Agent-controlled text made safe to show on a terminal.

The agent is the adversary and writes much of what a report shows: command output, commands,
file names, model messages. Raw, an ESC[2J followed by a forged "complied" line would clear
the screen and lie to the reader; a bidi override would reorder what is shown. Every
human-readable output passes such text through `printable`. JSON outputs stay exact.
"""

from __future__ import annotations

import re

# Printable ASCII passes untouched; anything else is looked at one character at a time.
_MULTILINE = re.compile(r"[^\x20-\x7e\n\t]")
_ONE_LINE = re.compile(r"[^\x20-\x7e]")
_SHORT = {"\n": "\\n", "\t": "\\t", "\r": "\\r"}


def _escape(match: re.Match[str]) -> str:
    char = match.group()
    if char.isprintable():  # letters, marks, symbols and spaces of any script
        return char
    if char in _SHORT:
        return _SHORT[char]
    code = ord(char)
    if code < 0x100:
        return f"\\x{code:02x}"
    return f"\\u{code:04x}" if code < 0x10000 else f"\\U{code:08x}"


def printable(text: str, *, multiline: bool = True) -> str:
    """`text` with every character a terminal could act on shown as a visible escape.

    Escapes what `str.isprintable` rejects: C0 controls (ESC as `\\x1b`, CR as `\\r`), DEL,
    C1 controls, bidi overrides and isolates and the other format characters (`\\u202e`),
    line and paragraph separators, lone surrogates, unassigned code points. Newlines and
    tabs stay as they are unless `multiline` is false (one-line fields and table cells).
    The result is printable ASCII plus printable non-ASCII, so applying it twice changes
    nothing. A literal backslash is left alone: the output is for reading, not parsing.
    """
    return (_MULTILINE if multiline else _ONE_LINE).sub(_escape, text)
