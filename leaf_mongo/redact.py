"""Redaction of MongoDB connection strings: the URI is a secret and is never shown as given."""

from __future__ import annotations

import re
from urllib.parse import parse_qsl, urlencode

_SECRET_OPTIONS = {
    "password",
    "tlscertificatekeyfilepassword",
    "authmechanismproperties",
    "sslclientcertificatekeypassword",
}
_USERINFO = re.compile(r"^(?P<scheme>mongodb(?:\+srv)?://)(?P<user>[^:@/]*)(?::(?P<pw>[^@/]*))?@", re.IGNORECASE)
_URI_IN_TEXT = re.compile(r"mongodb(?:\+srv)?://[^\s'\"]+", re.IGNORECASE)


def redact_uri(uri: str) -> str:
    """Return ``uri`` with the password (and secret options) replaced by ``***``.

    ``mongodb://alice:s3cret@host/?authSource=admin`` becomes ``mongodb://alice:***@host/?authSource=admin``.
    """
    out = _USERINFO.sub(lambda m: f"{m['scheme']}{m['user']}{':***' if m['pw'] is not None else ''}@", uri, count=1)
    if "?" in out:
        base, _, query = out.partition("?")
        pairs = parse_qsl(query, keep_blank_values=True)
        if any(k.lower() in _SECRET_OPTIONS for k, _ in pairs):
            safe = [(k, "***" if k.lower() in _SECRET_OPTIONS else v) for k, v in pairs]
            out = f"{base}?{urlencode(safe, safe='*:,')}"
    return out


def redact_text(text: str, uri: str | None = None) -> str:
    """Redact every MongoDB URI inside free text (error messages, logs), and ``uri``'s password if given."""
    text = _URI_IN_TEXT.sub(lambda m: redact_uri(m.group(0)), text)
    if uri:
        m = _USERINFO.match(uri)
        if m and m["pw"]:
            text = text.replace(m["pw"], "***")
    return text
