"""What ``course grade`` shows: a progress bar while grading, then one table row per submission."""

from __future__ import annotations

import re
import sys
import time

# Control characters, line and paragraph separators, bidirectional overrides: text from a submission
# (an exception's class name, a cell id) must not redraw or forge rows of the instructor's table.
_CONTROL = re.compile(r"[\x00-\x1f\x7f-\x9f\u2028\u2029\u202a-\u202e\u2066-\u2069]")


def clean(text, limit: int = 300) -> str:
    """Text from a submission as it may appear in a summary: one line, no control characters, bounded."""
    return _CONTROL.sub("?", str(text).replace("\n", " "))[:limit]


class Progress:
    """A one-line progress bar on stderr (redrawn in place on a terminal, one line per 10% otherwise)."""

    def __init__(self, total: int, label: str = "grading", stream=None, width: int = 30):
        self.total, self.done, self.label, self.width = total, 0, label, width
        self.stream = stream or sys.stderr
        self.start = time.monotonic()
        self.tty = hasattr(self.stream, "isatty") and self.stream.isatty()
        self._last_decile = -1
        self.draw()

    def advance(self, note: str = "") -> None:
        self.done += 1
        self.draw(note)

    def draw(self, note: str = "") -> None:
        frac = self.done / self.total if self.total else 1.0
        elapsed = time.monotonic() - self.start
        eta = elapsed / self.done * (self.total - self.done) if self.done else 0.0
        bar = "#" * int(frac * self.width) + "-" * (self.width - int(frac * self.width))
        line = (f"{self.label} [{bar}] {self.done}/{self.total} {elapsed:5.0f}s elapsed, "
                f"~{eta:.0f}s left {note[:40]}")
        if self.tty:
            self.stream.write("\r" + line.ljust(110))
            if self.done == self.total:
                self.stream.write("\n")
        elif int(frac * 10) != self._last_decile or self.done == self.total:
            self._last_decile = int(frac * 10)
            self.stream.write(line + "\n")
        self.stream.flush()


def table(rows: list[dict]) -> str:
    """Rows of ``student, assignment, score, max_score, reason`` as an aligned text table."""
    header = ("student", "assignment", "score", "why")
    lines = [header]
    for r in sorted(rows, key=lambda r: (r["student"], r["assignment"])):
        score = f"{r['score']:g}/{r['max_score']:g}"
        if r.get("manual"):
            score += " (manual)"
        lines.append((clean(r["student"], 64), clean(r["assignment"], 64), score, clean(r.get("reason") or "", 500)))
    widths = [max(len(line[i]) for line in lines) for i in range(3)]
    out = []
    for k, line in enumerate(lines):
        out.append("  ".join(line[i].ljust(widths[i]) for i in range(3)) + "  " + line[3])
        if k == 0:
            out.append("  ".join("-" * w for w in widths) + "  " + "-" * 3)
    return "\n".join(s.rstrip() for s in out)
