"""Plays WeChat's server in tests: accounts, signed URLs, safe-mode encryption, message XML.

The encryption is our own, written from WeChat's description (AES-256-CBC, key =
base64(EncodingAESKey + "="), IV = key[:16], random(16) + length(4, big-endian) + xml + AppId,
PKCS#7 to 32-byte blocks) and pinned to the official sample's test vector, so the webhook's
decryption (wechatpy) is tested against an independent implementation.
"""
from __future__ import annotations

import base64
import hashlib
import os
import struct
import time
from dataclasses import dataclass, field
from typing import Any

from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes

from bot.db import Database
from bot.models import Channel, ChannelAccount
from tests.factories import make_dealer

# WeChat's official sample (WXBizMsgCrypt) test vector
VECTOR_TOKEN = "pamtest"
VECTOR_APPID = "wxb11529c136998cb6"
VECTOR_AES_KEY = "abcdefghijklmnopqrstuvwxyz0123456789ABCDEFG"
VECTOR_TIMESTAMP = "1409304348"
VECTOR_NONCE = "xxxxxx"
VECTOR_RANDOM = b"aaaabbbbccccdddd"
VECTOR_TEXT = "我是中文abcd123"
VECTOR_ENCRYPTED = "jn1L23DB+6ELqJ+6bruv21Y6MD7KeIfP82D6gU39rmkgczbWwt5+3bnyg5K55bgVtVzd832WzZGMhkP72vVOfg=="

OPENID = "oLVPpjqs9BhvzwPj5A-vTYAX3GLc"
ACCOUNT_ID = "gh_dealer0001"


def sign(*parts: str) -> str:
    return hashlib.sha1("".join(sorted(parts)).encode()).hexdigest()


def _cipher(aes_key: str) -> Cipher:  # type: ignore[type-arg]
    key = base64.b64decode(aes_key + "=")
    return Cipher(algorithms.AES(key), modes.CBC(key[:16]))


def encrypt(text: str, *, aes_key: str = VECTOR_AES_KEY, appid: str = VECTOR_APPID, random: bytes | None = None) -> str:
    """Encrypts like WeChat: base64(AES-CBC(random16 + len + text + appid, PKCS#7/32))."""
    data = text.encode()
    plain = (random or os.urandom(8).hex().encode()) + struct.pack(">I", len(data)) + data + appid.encode()
    pad = 32 - len(plain) % 32
    plain += bytes([pad]) * pad
    encryptor = _cipher(aes_key).encryptor()
    return base64.b64encode(encryptor.update(plain) + encryptor.finalize()).decode()


def encrypt_raw(plain: bytes, *, aes_key: str = VECTOR_AES_KEY) -> str:
    """Encrypts bytes as they are (no framing, no padding): for malformed-ciphertext tests."""
    encryptor = _cipher(aes_key).encryptor()
    return base64.b64encode(encryptor.update(plain) + encryptor.finalize()).decode()


def decrypt(encrypted: str, *, aes_key: str = VECTOR_AES_KEY) -> tuple[str, str]:
    """Decrypts a safe-mode payload; returns (xml, appid)."""
    decryptor = _cipher(aes_key).decryptor()
    plain = decryptor.update(base64.b64decode(encrypted)) + decryptor.finalize()
    plain = plain[: -plain[-1]]
    (length,) = struct.unpack(">I", plain[16:20])
    return plain[20 : 20 + length].decode(), plain[20 + length :].decode()


def add_account(
    db: Database,
    *,
    slug: str = "test",
    mode: str = "safe",
    allow_plain: bool = False,
    enabled: bool = True,
    token: str = VECTOR_TOKEN,
    aes_key: str = VECTOR_AES_KEY,
    appid: str = VECTOR_APPID,
) -> int:
    """Adds a dealer with a WeChat account; returns the dealer's id."""
    with db.transaction() as session:
        dealer = make_dealer(session, slug=slug)
        session.add(
            ChannelAccount(
                dealer_id=dealer.id,
                channel=Channel.wechat,
                config={"appid": appid, "mode": mode, "allow_plain": allow_plain},
                secrets={"token": token, "aes_key": aes_key, "secret": "not-used-here"},
                enabled=enabled,
            )
        )
        return dealer.id


def _cdata(value: str) -> str:
    return "<![CDATA[" + value.replace("]]>", "]]]]><![CDATA[>") + "]]>"


def message_xml(msg_type: str, *, openid: str = OPENID, create_time: int | None = None, **fields: Any) -> str:
    """A message as WeChat posts it: strings in CDATA, numbers bare."""
    parts = [
        f"<ToUserName>{_cdata(ACCOUNT_ID)}</ToUserName>",
        f"<FromUserName>{_cdata(openid)}</FromUserName>",
        f"<CreateTime>{create_time or int(time.time())}</CreateTime>",
        f"<MsgType>{_cdata(msg_type)}</MsgType>",
    ]
    for name, value in fields.items():
        parts.append(f"<{name}>{value}</{name}>" if isinstance(value, (int, float)) else f"<{name}>{_cdata(str(value))}</{name}>")
    return "<xml>" + "".join(parts) + "</xml>"


def text_xml(content: str, msg_id: int = 1234567890123456, **kw: Any) -> str:
    return message_xml("text", Content=content, MsgId=msg_id, **kw)


def event_xml(event: str, **fields: Any) -> str:
    return message_xml("event", Event=event, **fields)


@dataclass
class WeChatServer:
    """Posts to /wechat/{slug} exactly as WeChat does for the account's mode."""

    client: Any
    slug: str = "test"
    mode: str = "safe"
    token: str = VECTOR_TOKEN
    aes_key: str = VECTOR_AES_KEY
    appid: str = VECTOR_APPID
    sent: list[tuple[dict[str, str], bytes]] = field(default_factory=list)

    def request(
        self, xml: str, *, timestamp: str | None = None, nonce: str | None = None, encrypted: bool | None = None
    ) -> tuple[dict[str, str], bytes]:
        """The query parameters and body for one message."""
        timestamp = timestamp or str(int(time.time()))
        nonce = nonce or os.urandom(5).hex()
        params = {"signature": sign(self.token, timestamp, nonce), "timestamp": timestamp, "nonce": nonce, "openid": OPENID}
        if encrypted is None:
            encrypted = self.mode in ("safe", "compatible")
        if not encrypted:
            return params, xml.encode()
        encrypt_field = encrypt(xml, aes_key=self.aes_key, appid=self.appid)
        return self.envelope(params, encrypt_field, plain_fields=xml if self.mode == "compatible" else None)

    def envelope(
        self, params: dict[str, str], encrypt_field: str, *, plain_fields: str | None = None
    ) -> tuple[dict[str, str], bytes]:
        """A safe-mode envelope for the Encrypt field, with msg_signature over it."""
        params = {**params, "encrypt_type": "aes", "msg_signature": sign(self.token, params["timestamp"], params["nonce"], encrypt_field)}
        inner = ""
        if plain_fields is not None:  # compatible mode: the plaintext fields too, then Encrypt
            inner = plain_fields.removeprefix("<xml>").removesuffix("</xml>")
        body = f"<xml><ToUserName>{_cdata(ACCOUNT_ID)}</ToUserName>{inner}<Encrypt>{_cdata(encrypt_field)}</Encrypt></xml>"
        return params, body.encode()

    def post(self, xml: str, **kw: Any) -> Any:
        params, body = self.request(xml, **kw)
        return self.send(params, body)

    def send(self, params: dict[str, str], body: bytes | Any) -> Any:
        if isinstance(body, bytes):
            self.sent.append((params, body))
        return self.client.post(f"/wechat/{self.slug}", params=params, content=body, headers={"Content-Type": "text/xml"})

    def reply_text(self, response: Any) -> str:
        """The passive reply's Content, decrypting it (and checking its signature) in safe mode."""
        import xml.etree.ElementTree as ET

        root = ET.fromstring(response.text)
        encrypted = root.findtext("Encrypt")
        if encrypted is not None:
            timestamp, nonce = root.findtext("TimeStamp") or "", root.findtext("Nonce") or ""
            assert root.findtext("MsgSignature") == sign(self.token, timestamp, nonce, encrypted)
            xml_text, appid = decrypt(encrypted, aes_key=self.aes_key)
            assert appid == self.appid
            root = ET.fromstring(xml_text)
        assert root.findtext("MsgType") == "text"
        assert root.findtext("ToUserName") == OPENID
        assert root.findtext("FromUserName") == ACCOUNT_ID
        return root.findtext("Content") or ""
