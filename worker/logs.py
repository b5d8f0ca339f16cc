"""Log set-up: one line per event, as text (`key=value` fields) or JSON (LEVERS_LOG_FORMAT).

Callers pass structured fields through `extra=` and never pass tokens or secrets. Phone numbers
are masked on the way out, whoever logged them: dramatiq, for one, logs a failed message's
arguments, which are contacts.
"""

from __future__ import annotations

import json
import logging
import re
import sys
from typing import Any

from worker.contacts import mask_number

_STANDARD = set(logging.LogRecord("", 0, "", 0, "", None, None).__dict__) | {
    "message",
    "asctime",
}
# An E.164 number; a national one of 9+ digits, maybe split by single spaces or dashes; or the
# US "(415) 555-2671" form. Not inside ids (hex, dashes) and not the log line's own timestamp,
# which is never passed through this.
_NUMBER = re.compile(
    r"\+\d{7,15}(?!\d)"
    r"|(?<![\w\-+.:])\d(?:[ \-]?\d){8,14}(?![\w\-.:])"
    r"|\(\d{2,4}\) ?\d{3}[ \-]?\d{4}(?!\d)"
)


def mask_numbers(text: str) -> str:
    return _NUMBER.sub(lambda m: mask_number(m.group(0)), text)


class MaskNumbers(logging.Filter):
    """Masks phone numbers in a record's message, fields and traceback before it is written."""

    def __init__(self, formatter: logging.Formatter) -> None:
        super().__init__()
        self.formatter = formatter

    def filter(self, record: logging.LogRecord) -> bool:
        record.msg = mask_numbers(record.getMessage())
        record.args = None
        for name, value in _fields(record).items():
            if isinstance(value, str):
                setattr(record, name, mask_numbers(value))
        if record.exc_info and not record.exc_text:
            record.exc_text = mask_numbers(self.formatter.formatException(record.exc_info))
        return True


def _fields(record: logging.LogRecord) -> dict[str, Any]:
    return {k: v for k, v in record.__dict__.items() if k not in _STANDARD}


class KeyValueFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        line = super().format(record)
        fields = _fields(record)
        if fields:
            line += " " + " ".join(f"{k}={v}" for k, v in fields.items())
        return line


class JsonFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        entry: dict[str, Any] = {
            "time": self.formatTime(record),
            "level": record.levelname,
            "logger": record.name,
            "pid": record.process,
            "message": record.getMessage(),
            **_fields(record),
        }
        if record.exc_info:
            entry["exception"] = record.exc_text or self.formatException(record.exc_info)
        return json.dumps(entry, default=str)


def configure(level: str = "INFO", fmt: str = "text") -> None:
    handler = logging.StreamHandler(sys.stderr)
    formatter: logging.Formatter
    if fmt == "json":
        formatter = JsonFormatter()
    else:
        formatter = KeyValueFormatter("%(asctime)s %(levelname)s %(process)d %(name)s: %(message)s")
    handler.setFormatter(formatter)
    handler.addFilter(MaskNumbers(formatter))
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level)
    # httpx logs every request URL at INFO; one line per batch from the sender is enough.
    logging.getLogger("httpx").setLevel(logging.WARNING)
