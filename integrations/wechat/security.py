"""Checks that come before any WeChat body is believed: signatures, time, XML, decryption.

wechatpy's own checks are not enough on their own (see ../shared/platforms.md): its
`check_signature` compares with `!=` and has no time window, and malformed ciphertext escapes
its crypto as IndexError, ValueError or struct.error. Everything here raises `Refused` with the
HTTP status to answer instead.
"""
from __future__ import annotations

import hashlib
import hmac
import re
import struct
import time
import xml.etree.ElementTree as ET
from dataclasses import dataclass

from wechatpy.crypto import WeChatCrypto
from wechatpy.exceptions import InvalidAppIdException, InvalidSignatureException

from bot.webhooks import MAX_BODY, Refused  # noqa: F401  (re-exported: the WeChat checks raise it)

# WeChat's own retries come within 15 s; anything older than this is a replay.
MAX_SKEW = 300
# Control characters WeChat does not escape; expat refuses them (tab, newline, return are fine).
_CONTROL = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f]")
_DTD = re.compile(rb"<!\s*(DOCTYPE|ENTITY)", re.IGNORECASE)
_DIGITS = re.compile(r"[0-9]{1,20}")


def sign(*parts: str) -> str:
    """WeChat's signature: sha1 over the sorted, concatenated parts."""
    return hashlib.sha1("".join(sorted(parts)).encode()).hexdigest()


def check_signature(token: str, given: str | None, *parts: str, name: str = "signature") -> None:
    """Checks sha1(sorted([token, *parts])) against the given one in constant time."""
    expected = sign(token, *parts)
    if not given or not hmac.compare_digest(expected.encode(), given.strip().lower().encode("ascii", "replace")):
        raise Refused(403, f"wrong {name}")


def check_timestamp(timestamp: str | None, nonce: str | None, *, now: float | None = None) -> None:
    """The timestamp must be digits within MAX_SKEW seconds of now; the nonce short and present."""
    if not timestamp or not _DIGITS.fullmatch(timestamp):
        raise Refused(403, "missing or malformed timestamp")
    if not nonce or len(nonce) > 64:
        raise Refused(403, "missing or malformed nonce")
    skew = abs((time.time() if now is None else now) - int(timestamp))
    if skew > MAX_SKEW:
        raise Refused(403, f"timestamp is {int(skew)} s away from now (at most {MAX_SKEW} s allowed)")


def refuse_dtd(body: bytes) -> None:
    """No DTD, no entities: refuses billion-laughs and external-entity bodies before parsing."""
    if _DTD.search(body):
        raise Refused(400, "XML with a DOCTYPE or ENTITY declaration is refused")


def parse_xml(body: bytes | str) -> ET.Element:
    """Parses a WeChat XML document (no DTD allowed); the root must be <xml>."""
    raw = body if isinstance(body, bytes) else body.encode("utf-8")
    refuse_dtd(raw)
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError:
        raise Refused(400, "body is not UTF-8") from None
    try:
        root = ET.fromstring(_CONTROL.sub("", text))
    except ET.ParseError as error:
        raise Refused(400, f"malformed XML: {error}") from None
    if root.tag != "xml":
        raise Refused(400, "the XML root is not <xml>")
    return root


def child_text(root: ET.Element, tag: str) -> str | None:
    """The text of a direct child that holds only text; None when missing, nested or repeated."""
    found = root.findall(tag)
    if len(found) != 1 or len(found[0]):
        return None
    return found[0].text or ""


@dataclass(frozen=True, slots=True)
class SafeMode:
    """Safe-mode crypto of one account: wechatpy's WeChatCrypto behind mapped exceptions."""

    token: str
    aes_key: str
    appid: str

    def _crypto(self) -> WeChatCrypto:
        try:
            return WeChatCrypto(self.token, self.aes_key, self.appid)
        except Exception:  # noqa: BLE001  (a misconfigured key: the account, not the request)
            raise Refused(403, "this account's EncodingAESKey is not valid") from None

    def decrypt(self, encrypt: str, msg_signature: str | None, timestamp: str, nonce: str) -> str:
        """Checks msg_signature over (token, timestamp, nonce, Encrypt), then decrypts."""
        check_signature(self.token, msg_signature, timestamp, nonce, encrypt, name="msg_signature")
        crypto = self._crypto()
        try:
            # a dict skips wechatpy's own XML parsing; it checks the signature again (with !=)
            return crypto.decrypt_message({"Encrypt": encrypt}, msg_signature.strip().lower(), timestamp, nonce)  # type: ignore[union-attr]
        except InvalidSignatureException:
            raise Refused(403, "wrong msg_signature") from None
        except InvalidAppIdException:
            raise Refused(403, "the message is for another AppId") from None
        except (IndexError, ValueError, struct.error, TypeError, KeyError, UnicodeError) as error:
            raise Refused(400, f"bad ciphertext ({type(error).__name__})") from None
        except Exception as error:  # noqa: BLE001  (whatever else the cipher raises on garbage)
            raise Refused(400, f"bad ciphertext ({type(error).__name__})") from None

    def encrypt(self, xml: str, nonce: str, timestamp: str) -> str:
        """The encrypted passive reply envelope, signed with msg_signature."""
        return self._crypto().encrypt_message(xml, nonce, timestamp)
