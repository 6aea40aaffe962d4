"""An owner's MMS picture, fetched for staff, only ever from Twilio and never with credentials elsewhere.

Inbound MMS arrive as `MediaUrlN` links, stored as they are. A link comes from the webhook's
form, and a form is only as trustworthy as its signature: a leaked auth token, or a bug, could
put any URL there. A server that fetched it with the account's credentials would hand them to
whoever owns that host (a published Botpress advisory). So:

- only https links on api.twilio.com are fetched (or the configured `api_base`, the fake Twilio
  of tests and the demo), with the account's Basic credentials;
- Twilio answers with a redirect to its media CDN: that is followed only to Twilio's own hosts
  (*.twilio.com, *.twiliocdn.com, Twilio's buckets on Amazon S3), by hand and without
  credentials, at most MAX_REDIRECTS times;
- at most MAX_BYTES are read, with a timeout.
"""
from __future__ import annotations

from dataclasses import dataclass
from urllib.parse import urljoin, urlsplit

import requests

from integrations.twilio.client import TwilioAccount

MAX_BYTES = 5 * 1024 * 1024  # Twilio's own limit per MMS
MAX_REDIRECTS = 3
TIMEOUT = 10.0
API_HOST = "api.twilio.com"
CDN_SUFFIXES = (".twilio.com", ".twiliocdn.com")
# older accounts are redirected to Twilio's S3 bucket, addressed path-style on Amazon's host
S3_HOSTS = frozenset({"s3.amazonaws.com", "s3-external-1.amazonaws.com"})
S3_BUCKET_PATHS = ("/media.twiliocdn.com/", "/com.twilio.prod.twilio-api/")


class MediaRefused(Exception):
    """The link is not one of Twilio's, or what it gave back is not acceptable."""


@dataclass(frozen=True, slots=True)
class Media:
    content: bytes
    content_type: str


def _origin(url: str) -> tuple[str, str, int | None]:
    parts = urlsplit(url)
    return parts.scheme, (parts.hostname or "").lower(), parts.port


def is_twilio_api(url: str, account: TwilioAccount) -> bool:
    """Whether the link is Twilio's API (where the account's credentials belong)."""
    if account.api_base and _origin(url) == _origin(account.api_base):
        return True
    scheme, host, port = _origin(url)
    return scheme == "https" and host == API_HOST and port in (None, 443)


def is_twilio_cdn(url: str, account: TwilioAccount) -> bool:
    """Whether a redirect target is one of Twilio's hosts (fetched without credentials)."""
    if account.api_base and _origin(url) == _origin(account.api_base):
        return True
    scheme, host, port = _origin(url)
    if scheme != "https" or port not in (None, 443):
        return False
    if host in S3_HOSTS:
        return urlsplit(url).path.startswith(S3_BUCKET_PATHS)
    return host == API_HOST or host.endswith(CDN_SUFFIXES)


def fetch(url: str, account: TwilioAccount, *, session: requests.Session | None = None) -> Media:
    """The picture behind a MediaUrl; MediaRefused for any link that is not Twilio's."""
    if not is_twilio_api(url, account):
        raise MediaRefused(f"not a Twilio media link: {urlsplit(url).hostname}")
    http = session or requests.Session()
    auth: tuple[str, str] | None = (account.account_sid, account.auth_token)
    for _ in range(MAX_REDIRECTS + 1):
        response = http.get(url, auth=auth, timeout=TIMEOUT, allow_redirects=False, stream=True)
        if response.is_redirect:
            target = urljoin(url, response.headers.get("Location", ""))
            response.close()
            if not is_twilio_cdn(target, account):
                raise MediaRefused(f"Twilio redirected to a host that is not Twilio's: {urlsplit(target).hostname}")
            url, auth = target, None  # credentials go to the API only, never to the CDN
            continue
        if response.status_code != 200:
            response.close()
            raise MediaRefused(f"Twilio answered {response.status_code}")
        content = response.raw.read(MAX_BYTES + 1, decode_content=True)
        response.close()
        if len(content) > MAX_BYTES:
            raise MediaRefused(f"over {MAX_BYTES} bytes")
        return Media(content, response.headers.get("Content-Type", "application/octet-stream"))
    raise MediaRefused("too many redirects")
