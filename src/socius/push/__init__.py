"""Push adapters: Web Push (RFC 8030, RFC 8291 aes128gcm, RFC 8292 VAPID) through
pywebpush (extra ``socius[push]``), and the operator's HTTP push gateway."""
