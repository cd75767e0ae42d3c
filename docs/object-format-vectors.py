#!/usr/bin/env python3
"""Independent implementation of docs/object-format.md, used to compute its test vectors.

It shares no code with the Rust implementation: hashlib, hmac and the `cryptography`
package's AES-GCM, and the byte layouts as the document writes them out. Run it with
`python3 docs/object-format-vectors.py`; node/tests/vectors.rs checks the Rust code
against the values it prints.
"""
import base64
import hashlib
import hmac
import struct

from cryptography.hazmat.primitives.ciphers.aead import AESGCM

NONCE_DOMAIN = b"cryptosphere/v1/nonce"


def b32(raw: bytes) -> str:
    return base64.b32encode(raw).decode().rstrip("=").lower()


def derive_key(plaintext: bytes, secret: bytes | None) -> bytes:
    if secret is None:
        return hashlib.sha256(plaintext).digest()
    return hmac.new(secret, plaintext, hashlib.sha256).digest()


def seal(key: bytes, plaintext: bytes, aad: bytes) -> bytes:
    nonce = hashlib.sha256(NONCE_DOMAIN + key).digest()[:12]
    return AESGCM(key).encrypt(nonce, plaintext, aad)


def data_chunk(plaintext: bytes, secret=None):
    key = derive_key(plaintext, secret)
    stored = seal(key, plaintext, b"")
    return hashlib.sha256(stored).digest(), key, stored


def obj(kind: int, level: int, total: int, links, entries_body: bytes, secret=None):
    """links: list of (link_kind, id); entries_body: the encoded entries."""
    clear = b"CSOB" + bytes([1]) + struct.pack("<I", len(links))
    for link_kind, chunk_id in links:
        clear += bytes([link_kind]) + chunk_id
    body = bytes([kind, level]) + struct.pack("<QI", total, len(links)) + entries_body
    key = derive_key(clear + body, secret)
    stored = clear + seal(key, body, clear)
    return hashlib.sha256(stored).digest(), key, stored


def file_of_one_chunk(content: bytes, secret=None):
    chunk_id, chunk_key, _ = data_chunk(content, secret)
    entries = chunk_key + struct.pack("<Q", len(content))
    return chunk_id, chunk_key, obj(1, 0, len(content), [(0, chunk_id)], entries, secret)


def main():
    content = b"hello, cryptosphere\n"
    secret = bytes(range(32))

    chunk_id, chunk_key, (root_id, root_key, root_stored) = file_of_one_chunk(content)
    print("hello.data_key   ", b32(chunk_key))
    print("hello.data_id    ", b32(chunk_id))
    print("hello.root_len   ", len(root_stored))
    print("hello.cap        ", f"cs:r:{b32(root_id)}:{b32(root_key)}")

    _, _, (sid, skey, _) = file_of_one_chunk(content, secret)
    print("hello.secret_cap ", f"cs:r:{b32(sid)}:{b32(skey)}")

    eid, ekey, _ = obj(1, 0, 0, [], b"")
    print("empty.cap        ", f"cs:r:{b32(eid)}:{b32(ekey)}")

    name = b"hello.txt"
    entry = struct.pack("<H", len(name)) + name + bytes([1]) + struct.pack("<I", 0o644) + root_key
    did, dkey, _ = obj(2, 0, 1, [(1, root_id)], entry)
    print("dir.cap          ", f"cs:r:{b32(did)}:{b32(dkey)}")
    print("dir.verify_cap   ", f"cs:v:{b32(did)}")


if __name__ == "__main__":
    main()
