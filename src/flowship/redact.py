"""The one rule that keeps secrets out of what flowship shows: passwords in URLs and
secret-looking query parameters are replaced by ``***``.

Used for everything that leaves the process: ``flowship info``, error messages (CLI and
HTTP), log lines of ``flowship serve`` and ``GET /flowship``. It works on free text, so a
URL inside an exception message is caught as well as a bare URL.
"""

from __future__ import annotations

import logging
import re

MASK = "***"

# scheme://user:password@host -> scheme://user:***@host. The password stops at "@", and
# never spans "/" or whitespace, so "http://host:5000/path" (a port) is left alone.
_USERINFO = re.compile(r"(?P<head>[A-Za-z][A-Za-z0-9+.\-]*://[^:/@\s]*):(?P<secret>[^@/\s]+)@")
# ?password=...&token=... (SQLAlchemy, JDBC-style, SAS tokens, API keys)
_QUERY = re.compile(
    r"(?P<head>[?&;](?:password|passwd|pwd|token|access_token|secret|sig|api[_-]?key"
    r"|access[_-]?key)=)(?P<secret>[^&;\s#]+)",
    re.IGNORECASE,
)


def redact(text: str) -> str:
    """``text`` with every URL password and secret query parameter masked."""
    if "@" not in text and "=" not in text:  # the common case: nothing to mask
        return text
    text = _USERINFO.sub(rf"\g<head>:{MASK}@", text)
    return _QUERY.sub(rf"\g<head>{MASK}", text)


class RedactingFilter(logging.Filter):
    """A logging filter that redacts each record's formatted message (and traceback)."""

    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        cleaned = redact(message)
        if cleaned != message:
            record.msg, record.args = cleaned, None
        if record.exc_info and record.exc_info[1] is not None:
            formatted = logging.Formatter().formatException(record.exc_info)
            record.exc_text = redact(formatted)
        return True
