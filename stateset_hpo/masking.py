"""URLs and storage locations as they may be printed, logged or stored: secrets masked.

A storage is often given with its credentials inside (``postgresql://user:PASSWORD@host/db``,
``s3://KEY:SECRET@bucket/prefix``, ``...?password=...&token=...``), and it appears in start
lines, errors, report.html's settings and interrupted-study messages. Every one of those goes
through `masked`; the study itself uses the location as given.
"""

from __future__ import annotations

import re
from typing import Optional

# query parameters whose values are secrets (a name containing one of these words)
_SECRET_WORDS = ("password", "passwd", "pwd", "secret", "token", "key", "credential", "signature", "sig")
_USERINFO = re.compile(r"^(?P<scheme>[A-Za-z][A-Za-z0-9+.-]*:/+)(?P<user>[^/@:?#]*):(?P<secret>[^/@?#]*)@")
_QUERY = re.compile(r"(?P<name>[?&;][^=&;#]*)=(?P<value>[^&;#]*)")


def masked(location: Optional[str]) -> Optional[str]:
    """``location`` with the password of its user part and the values of secret-looking query
    parameters replaced by ``***``; anything else as given."""
    if location is None:
        return None
    text = _USERINFO.sub(lambda m: f"{m['scheme']}{m['user']}:***@", location, count=1)

    def query(match: re.Match) -> str:
        name = match["name"].lower()
        return f"{match['name']}=***" if any(word in name for word in _SECRET_WORDS) else match.group(0)

    return _QUERY.sub(query, text)
