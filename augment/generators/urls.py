"""Credentials in server URLs: hidden wherever a URL is shown or recorded, and split off into HTTP
basic auth before a request is sent."""

from __future__ import annotations

import re
import urllib.parse

_USERINFO = re.compile(r"(?P<scheme>\b[a-zA-Z][a-zA-Z0-9+.-]*://)(?P<info>[^/?#\s]*)@")


def redact_urls(text: str) -> str:
    """Hide the password of every URL in ``text``: ``http://user:SECRET@host/v1`` ->
    ``http://user:***@host/v1``; a user-info without a password (often a token) becomes ``***``."""

    def hide(m: re.Match) -> str:
        user, colon, _ = m["info"].partition(":")
        return f"{m['scheme']}{user}:***@" if colon else f"{m['scheme']}***@"

    return _USERINFO.sub(hide, text)


def redact_url(url: str | None) -> str | None:
    """:func:`redact_urls` for one URL (None stays None): what manifests and messages record."""
    return None if url is None else redact_urls(url)


def split_credentials(url: str) -> tuple[str, str | None]:
    """``http://user:pw@host/v1`` -> (``http://host/v1``, the ``Authorization`` value for HTTP basic
    auth); a URL without user-info -> (the URL, None)."""
    import base64

    parts = urllib.parse.urlsplit(url)
    if "@" not in parts.netloc:
        return url, None
    info, _, host = parts.netloc.rpartition("@")
    user, _, password = info.partition(":")
    pair = f"{urllib.parse.unquote(user)}:{urllib.parse.unquote(password)}".encode()
    bare = urllib.parse.urlunsplit(parts._replace(netloc=host))
    return bare, "Basic " + base64.b64encode(pair).decode("ascii")
