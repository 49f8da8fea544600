"""Binance signing against every Binance vector in signing/signing_vectors.json (the official docs'
examples), and against independent verification (hmac / cryptography) for keys without published vectors."""

import base64
import hashlib
import hmac
import json
import pickle
import random
from decimal import Decimal
from urllib.parse import parse_qsl, unquote

import pytest
from hypothesis import given, settings, strategies as st

from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ed25519, padding, rsa

from extrema.adapters.binance import (
    BinanceCredentials, encode_params, fix_logon_payload, format_param, sign_query, sign_ws_api_params,
    ws_api_payload)


@pytest.fixture(scope="module")
def binance_vectors(fixtures_dir):
    vectors = json.loads((fixtures_dir / "signing" / "signing_vectors.json").read_text())["vectors"]
    return [v for v in vectors if v["exchange"] == "binance"]


def _pairs(payload):
    # The docs' payloads are plain k=v&k=v; split without decoding so '%EF...' stays as written.
    return [tuple(part.split("=", 1)) for part in payload.split("&")]


def _check_vector(v):
    """Rebuild the vector's payload from its parameters with our code, then sign it. Returns the kind."""
    if "private_key_pem" in v:                          # FIX Logon, Ed25519
        fields = dict(f.split("=", 1) for f in v["resulting_message"].strip("|").split("|"))
        payload = fix_logon_payload(fields["49"], fields["56"], int(fields["34"]), fields["52"])
        assert payload == v["payload_escaped"].encode().decode("unicode_escape").encode()
        creds = BinanceCredentials(fields["553"], private_key_pem=v["private_key_pem"])
        assert creds.key_type == "ED25519"
        assert creds.sign(payload) == v["expected"] == fields["96"]
        return "fix-ed25519"
    creds = BinanceCredentials(v["api_key"], secret=v["secret"])
    pairs = _pairs(v["payload"])
    if "web-socket-api" in v["source"]:
        params = {k: val for k, val in pairs}
        shuffled = dict(random.Random(7).sample(list(params.items()), len(params)))
        assert ws_api_payload(shuffled) == v["payload"]     # sorted by name, values not encoded
        signed = sign_ws_api_params(creds, {k: val for k, val in shuffled.items() if k != "apiKey"})
        assert signed["apiKey"] == v["api_key"]
        assert signed["signature"] == v["expected"]
        return "ws-api-hmac"
    # REST: parameters in the documented order, recvWindow and timestamp last, values given decoded.
    params = [(k, unquote(val)) for k, val in pairs if k not in ("recvWindow", "timestamp")]
    extra = dict(pairs)
    query = sign_query(creds, params, timestamp_ms=int(extra["timestamp"]), recv_window_ms=int(extra["recvWindow"]))
    assert query == f"{v['payload']}&signature={v['expected']}"
    return "rest-hmac"


def test_every_binance_vector(binance_vectors):
    kinds = [_check_vector(v) for v in binance_vectors]
    # Five official vectors: REST HMAC (ASCII and percent-encoded Unicode), WS-API HMAC (ASCII and raw
    # Unicode) and the FIX Logon Ed25519 signature.
    assert sorted(kinds) == ["fix-ed25519", "rest-hmac", "rest-hmac", "ws-api-hmac", "ws-api-hmac"]
    print(f"checked {len(kinds)} Binance signing vectors")


def test_rest_percent_encodes_non_ascii_before_signing(binance_vectors):
    unicode_vector = next(v for v in binance_vectors if "%EF%BC%91" in v["payload"])
    creds = BinanceCredentials(unicode_vector["api_key"], secret=unicode_vector["secret"])
    query = sign_query(creds, [("symbol", "１２３４５６"), ("side", "BUY")], timestamp_ms=1, recv_window_ms=5000)
    assert query.startswith("symbol=%EF%BC%91%EF%BC%92%EF%BC%93%EF%BC%94%EF%BC%95%EF%BC%96&side=BUY&")
    payload, sig = query.rsplit("&signature=", 1)
    assert hmac.new(unicode_vector["secret"].encode(), payload.encode(), hashlib.sha256).hexdigest() == sig


def _verify_hmac(secret, query):
    payload, sig = query.rsplit("&signature=", 1)
    expected = hmac.new(secret.encode(), payload.encode("ascii"), hashlib.sha256).hexdigest()
    return hmac.compare_digest(expected, unquote(sig))


def test_ed25519_rest_signature_verifies_with_the_public_key():
    key = ed25519.Ed25519PrivateKey.generate()
    pem = key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())
    creds = BinanceCredentials("key", private_key_pem=pem)
    query = sign_query(creds, {"symbol": "BTCUSDT", "side": "SELL", "quantity": Decimal("0.010")},
                       timestamp_ms=1668481559918, recv_window_ms=5000)
    payload, sig = query.rsplit("&signature=", 1)
    assert payload == "symbol=BTCUSDT&side=SELL&quantity=0.010&recvWindow=5000&timestamp=1668481559918"
    raw = base64.b64decode(unquote(sig))
    assert len(raw) == 64
    key.public_key().verify(raw, payload.encode())     # raises InvalidSignature if wrong
    assert sig.endswith("%3D%3D")          # 64 bytes of base64 end in '==', sent percent-encoded


def test_rsa_rest_signature_verifies_with_the_public_key():
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    pem = key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                            serialization.BestAvailableEncryption(b"pw"))
    creds = BinanceCredentials("key", private_key_pem=pem.decode(), password="pw")
    assert creds.key_type == "RSA"
    query = sign_query(creds, [("symbol", "BTCUSDT")], timestamp_ms=5)
    payload, sig = query.rsplit("&signature=", 1)
    assert payload == "symbol=BTCUSDT&timestamp=5"
    key.public_key().verify(base64.b64decode(unquote(sig)), payload.encode(), padding.PKCS1v15(), hashes.SHA256())


_values = st.one_of(
    st.text(min_size=0, max_size=12),
    st.integers(min_value=0, max_value=10**15),
    st.decimals(allow_nan=False, allow_infinity=False, places=8, min_value=0, max_value=10**9),
    st.booleans())


@settings(max_examples=200, deadline=None)
@given(params=st.lists(st.tuples(st.text(alphabet=st.characters(categories=("L", "N")), min_size=1, max_size=8),
                                 _values), max_size=8),
       timestamp=st.integers(min_value=0, max_value=2**42))
def test_signed_query_decodes_to_the_parameters_and_verifies(params, timestamp):
    """Any parameters: the query is pure ASCII, an independent decoder gets the same (key, value) pairs
    back in order, and the HMAC over exactly the sent bytes verifies."""
    creds = BinanceCredentials("k", secret="s3cr3t")
    query = sign_query(creds, params, timestamp_ms=timestamp, recv_window_ms=5000)
    query.encode("ascii")
    decoded = parse_qsl(query, keep_blank_values=True, strict_parsing=False)
    expected = [(k, format_param(v)) for k, v in params] + [("recvWindow", "5000"), ("timestamp", str(timestamp))]
    assert decoded[:-1] == expected
    assert decoded[-1][0] == "signature"
    assert _verify_hmac("s3cr3t", query)


def test_encode_params_keeps_order_drops_none_and_encodes_reserved_characters():
    q = encode_params([("b", "x:y/z"), ("a", None), ("c", "a b&c=d"), ("newClientOrderId", "my.id_1-2~")])
    assert q == "b=x%3Ay%2Fz&c=a%20b%26c%3Dd&newClientOrderId=my.id_1-2~"


def test_format_param():
    assert format_param(Decimal("1E+1")) == "10"
    assert format_param(Decimal("0.00000100")) == "0.00000100"
    assert format_param(True) == "true" and format_param(False) == "false"
    assert format_param(12) == "12"
    with pytest.raises(TypeError, match="float"):
        format_param(0.1)
    with pytest.raises(ValueError):
        format_param(Decimal("NaN"))


def test_ws_api_payload_skips_signature_and_none():
    assert ws_api_payload({"b": "2", "signature": "x", "a": 1, "c": None}) == "a=1&b=2"
    with pytest.raises(ValueError, match="timestamp"):
        sign_ws_api_params(BinanceCredentials("k", secret="s"), {"symbol": "BTCUSDT"})


def test_credentials_never_show_the_secret():
    secret = "NhqPtmdSJYdKjVHjA7PZj4Mge3R5YNiP1e3UZjInClVN65XAbvqqM6A7H5fATj0j"
    api_key = "vmPUZE6mv9SD5VNHk4HlWFsOr6aKE2zvsw0MuIgwCIPy6utIco14y7Ju91duEh8A"
    creds = BinanceCredentials(api_key, secret=secret)
    for text in (repr(creds), str(creds), f"{creds}", repr([creds])):
        assert secret not in text and api_key not in text
        assert "***" in text
    with pytest.raises(TypeError, match="pickled"):
        pickle.dumps(creds)
    key = ed25519.Ed25519PrivateKey.generate()
    pem = key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                            serialization.NoEncryption()).decode()
    body = pem.splitlines()[1]
    assert body not in repr(BinanceCredentials("k", private_key_pem=pem))


def test_credentials_reject_bad_input():
    with pytest.raises(ValueError, match="exactly one"):
        BinanceCredentials("k")
    with pytest.raises(ValueError, match="exactly one"):
        BinanceCredentials("k", secret="s", private_key_pem="x")
    with pytest.raises(ValueError, match="PEM"):
        BinanceCredentials("k", private_key_pem="-----BEGIN PRIVATE KEY-----\nnot a key\n-----END PRIVATE KEY-----\n")
    with pytest.raises(ValueError, match="api_key"):
        BinanceCredentials("", secret="s")
