"""WeChat Pay v3's cryptography on `cryptography`: SHA256-RSA2048 signatures (requests, replies,
notifies, paySign), AEAD_AES_256_GCM with the APIv3 key (notify resources, platform
certificates), and key loading. Pure functions, shared by the client and the simulated provider.
"""
from __future__ import annotations

import base64
import binascii
import secrets
from pathlib import Path

from cryptography import x509
from cryptography.exceptions import InvalidSignature, InvalidTag
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import padding, rsa
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

AUTH_SCHEMA = "WECHATPAY2-SHA256-RSA2048"
AEAD_ALGORITHM = "AEAD_AES_256_GCM"
# Wechatpay-Serial of a reply or notify signed with the WeChat Pay public key (not a
# certificate): PUB_KEY_ID_ followed by digits.
PUBLIC_KEY_ID_PREFIX = "PUB_KEY_ID_"


class KeyLoadError(ValueError):
    """A key or certificate that cannot be loaded (the message never contains key material)."""


def _pem_bytes(text_or_path: str, what: str) -> bytes:
    """PEM text as given, or the contents of the file it names."""
    text = text_or_path.strip()
    if "-----BEGIN" in text:
        return text.encode()
    try:
        return Path(text).read_bytes()
    except OSError as error:
        raise KeyLoadError(f"{what}: neither PEM text nor a readable file") from error


def load_private_key(text_or_path: str) -> rsa.RSAPrivateKey:
    """The merchant API private key (apiclient_key.pem: PKCS#8, or PKCS#1)."""
    data = _pem_bytes(text_or_path, "merchant private key")
    try:
        key = serialization.load_pem_private_key(data, password=None)
    except (ValueError, TypeError) as error:
        raise KeyLoadError("merchant private key: not an unencrypted PEM private key") from error
    if not isinstance(key, rsa.RSAPrivateKey):
        raise KeyLoadError("merchant private key: not an RSA key")
    return key


def load_public_key(text_or_path: str) -> rsa.RSAPublicKey:
    """An RSA public key from PEM (a PUBLIC KEY block, or a certificate's key)."""
    data = _pem_bytes(text_or_path, "public key")
    try:
        key = x509.load_pem_x509_certificate(data).public_key() if b"CERTIFICATE" in data \
            else serialization.load_pem_public_key(data)
    except ValueError as error:
        raise KeyLoadError("public key: not a PEM public key or certificate") from error
    if not isinstance(key, rsa.RSAPublicKey):
        raise KeyLoadError("public key: not an RSA key")
    return key


def serial_hex(serial_number: int) -> str:
    """A certificate serial as WeChat writes it (upper-case hex)."""
    return format(serial_number, "X")


def serial_int(serial: str) -> int | None:
    """A Wechatpay-Serial that names a certificate, as a number (None if it is not hex)."""
    try:
        return int(serial, 16) if serial else None
    except ValueError:
        return None


def new_nonce() -> str:
    """32 random upper-case hex characters (WeChat allows up to 32)."""
    return secrets.token_hex(16).upper()


def sign(key: rsa.RSAPrivateKey, message: bytes) -> str:
    """SHA256withRSA (PKCS#1 v1.5), base64: every v3 signature."""
    return base64.b64encode(key.sign(message, padding.PKCS1v15(), hashes.SHA256())).decode()


def verify(key: rsa.RSAPublicKey, message: bytes, signature: str) -> bool:
    try:
        raw = base64.b64decode(signature, validate=True)
        key.verify(raw, message, padding.PKCS1v15(), hashes.SHA256())
    except (binascii.Error, ValueError, InvalidSignature):
        return False
    return True


def request_message(method: str, path_and_query: str, timestamp: str, nonce: str,
                    body: bytes) -> bytes:
    """What a request signature covers: method, URL path with query, time, nonce, body."""
    return f"{method}\n{path_and_query}\n{timestamp}\n{nonce}\n".encode() + body + b"\n"


def response_message(timestamp: str, nonce: str, body: bytes) -> bytes:
    """What a reply's or notify's Wechatpay-Signature covers."""
    return f"{timestamp}\n{nonce}\n".encode() + body + b"\n"


def pay_sign_message(appid: str, timestamp: str, nonce: str, package: str) -> bytes:
    """What wx.requestPayment's paySign covers."""
    return f"{appid}\n{timestamp}\n{nonce}\n{package}\n".encode()


def authorization(*, mchid: str, serial: str, key: rsa.RSAPrivateKey, method: str,
                  path_and_query: str, body: bytes, timestamp: str, nonce: str) -> str:
    """The Authorization header of one request."""
    signature = sign(key, request_message(method, path_and_query, timestamp, nonce, body))
    return (f'{AUTH_SCHEMA} mchid="{mchid}",nonce_str="{nonce}",signature="{signature}",'
            f'timestamp="{timestamp}",serial_no="{serial}"')


def parse_authorization(header: str) -> dict[str, str] | None:
    """The fields of an Authorization header (None if it is not WeChat Pay's schema)."""
    schema, _, rest = header.partition(" ")
    if schema != AUTH_SCHEMA:
        return None
    fields = {}
    for part in rest.split(","):
        name, sep, value = part.strip().partition("=")
        if not sep or len(value) < 2 or value[0] != '"' or value[-1] != '"':
            return None
        fields[name] = value[1:-1]
    return fields


def _aead_key(apiv3_key: str) -> AESGCM:
    key = apiv3_key.encode()
    if len(key) != 32:
        raise KeyLoadError("the APIv3 key must be 32 bytes")
    return AESGCM(key)


def aead_decrypt(apiv3_key: str, *, nonce: str, ciphertext: str, associated_data: str) -> bytes:
    """Decrypt an AEAD_AES_256_GCM resource (ciphertext base64, tag appended). Raises
    ValueError when the key, nonce, data or tag do not match."""
    try:
        data = base64.b64decode(ciphertext, validate=True)
        return _aead_key(apiv3_key).decrypt(nonce.encode(), data, associated_data.encode())
    except (binascii.Error, InvalidTag) as error:
        raise ValueError("AEAD_AES_256_GCM decryption failed") from error


def aead_encrypt(apiv3_key: str, *, nonce: str, plaintext: bytes, associated_data: str) -> str:
    """The inverse of aead_decrypt (what WeChat does): base64 of ciphertext + tag."""
    data = _aead_key(apiv3_key).encrypt(nonce.encode(), plaintext, associated_data.encode())
    return base64.b64encode(data).decode()
