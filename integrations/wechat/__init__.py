"""WeChat Official Account (服务号) channel: the inbound webhook `GET/POST /wechat/{dealer}`.

- `security`: signatures in constant time, the timestamp window, the safe XML envelope parser,
  safe-mode decryption through wechatpy's `WeChatCrypto` with every error mapped to 400/403.
- `inbound`: a decrypted WeChat message or event as an `InboundMessage` (or a dead letter).
- `passive`: marking reply outbox rows sent when the webhook answered them passively.
- `webhook`: the FastAPI router; the 5-second rule and the replay memory live there.
- `texts`: the few WeChat-specific owner texts (voice not understood, welcome, image received).

The customer-service sender and the API client (`client.py`, `sender.py`) are separate.
"""
