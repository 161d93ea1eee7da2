#!/usr/bin/env python3
"""Writes the hand-made seeds of tests/fuzz/corpus/<target>/ (files named hand-*).

Seeds found by fuzzing (minimized, named after their SHA-1 by libFuzzer) live next to them and
are never touched. Run from anywhere: python3 tests/fuzz/make_seeds.py

Input layouts (fuzz_support.h and each harness's header comment):
  ws_decoder     [settings][chunk plan][frames]   settings: bit0 role (1 = client),
                 bits1-3 max_message index, bits4-7 stop() every N callbacks
  http_request   [settings][chunk plan][bytes]    settings: bit0 response, bits1-2 head
                 bytes, bits3-4 header count, bits5-6 body limit index
  sse_roundtrip  [session][chunk plan][ops]       op: kind byte, length byte, payload, extras
  config_load    the YAML text
  long_poll_batch [settings][body]                settings: bits0-1 max_message, bits2-3 count
  ws_session_frames [settings][chunk plan][frames] settings: bits0-1 max_message
  mux_codec      [settings][chunk plan][data]     settings: bits0-1 max_message, bits2-3 count,
                 bits4-7 key order; data: a query, a send body and SSE ops all at once
  chunk plan:    n, then (n & 15) size bytes (b & 0x7F, times 64 when b & 0x80)
"""

import os
import struct

ROOT = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(os.path.dirname(ROOT))


def plan(*sizes):
    return bytes([len(sizes)]) + bytes(sizes)


def write(target, name, data):
    d = os.path.join(ROOT, "corpus", target)
    os.makedirs(d, exist_ok=True)
    with open(os.path.join(d, "hand-" + name), "wb") as f:
        f.write(data)


# ---- ws_decoder ------------------------------------------------------------------------------

MASK = bytes([0x37, 0xFA, 0x21, 0x3D])


def frame(op, payload=b"", fin=True, masked=True, rsv=0, form=None, length=None):
    """One frame; `form` forces a length encoding (16 or 64), `length` a false length."""
    n = len(payload) if length is None else length
    first = (0x80 if fin else 0) | rsv | op
    mbit = 0x80 if masked else 0
    if form is None:
        form = 7 if n < 126 else 16 if n < 65536 else 64
    if form == 7:
        head = bytes([first, mbit | n])
    elif form == 16:
        head = bytes([first, mbit | 126]) + struct.pack(">H", n)
    else:
        head = bytes([first, mbit | 127]) + struct.pack(">Q", n)
    if not masked:
        return head + payload
    body = bytes(b ^ MASK[i % 4] for i, b in enumerate(payload))
    return head + MASK + body


def ws_seeds():
    server = 0x0C  # role server, max_message 1 MiB (index 6 << 1), never stop
    client = 0x0D
    whole = plan()
    cases = {
        "text": [frame(1, b"Hello")],
        "text-fragmented": [frame(1, b"Hel", fin=False), frame(0, b"lo")],
        "ping-inside-fragments": [frame(2, b"\x00\x01", fin=False), frame(9, b"hi"),
                                  frame(0, b"\xff")],
        "pong": [frame(0xA, b"")],
        "close-reason": [frame(8, b"\x03\xe8bye")],
        "close-empty-then-garbage": [frame(8, b""), b"\xff\xff\xff"],
        "binary-126": [frame(2, bytes(range(126)))],
        "binary-16bit": [frame(2, bytes(300))],
        "binary-64bit-header-only": [frame(2, b"", length=70000)],
        "empty-text": [frame(1, b""), frame(1, b"x")],
        "utf8-across-fragments": [frame(1, "é€".encode()[:2], fin=False),
                                  frame(0, "é€".encode()[2:])],
        "err-rsv": [frame(1, b"x", rsv=0x40)],
        "err-opcode": [frame(3, b"x")],
        "err-control-fragmented": [frame(9, b"x", fin=False)],
        "err-control-long": [frame(9, bytes(126))],
        "err-nonminimal-16": [frame(2, b"abc", form=16)],
        "err-nonminimal-64": [frame(2, b"abc", form=64)],
        "err-64bit-top-bit": [frame(2, b"", length=1 << 63)],
        "err-continuation-alone": [frame(0, b"x")],
        "err-new-message-in-fragmented": [frame(1, b"a", fin=False), frame(1, b"b")],
        "err-utf8": [frame(1, b"ok\xc3\x28")],
        "err-utf8-truncated": [frame(1, b"\xe2\x82")],
        "err-utf8-surrogate": [frame(1, b"\xed\xa0\x80")],
        "err-close-1-byte": [frame(8, b"\x03")],
        "err-close-code-1005": [frame(8, b"\x03\xed")],
        "err-close-reason-utf8": [frame(8, b"\x03\xe8\xff")],
    }
    for name, frames in cases.items():
        data = b"".join(frames)
        write("ws_decoder", "server-" + name, bytes([server]) + whole + data)
    # The same in the client role (frames unmasked), cut in chunks, with stop() after callbacks.
    for name in ["text", "text-fragmented", "ping-inside-fragments", "close-reason",
                 "binary-16bit", "err-utf8", "utf8-across-fragments"]:
        data = b"".join(cases[name])
        unmasked = b"".join(
            frame(f[0] & 0x0F, _unmask(f), fin=bool(f[0] & 0x80), masked=False) for f in
            cases[name])
        write("ws_decoder", "client-" + name, bytes([client]) + plan(1) + unmasked)
        write("ws_decoder", "server-stop-" + name, bytes([server | 0x10]) + plan(2, 3) + data)
    write("ws_decoder", "client-err-masked", bytes([client]) + whole + frame(1, b"x"))
    write("ws_decoder", "server-err-unmasked", bytes([server]) + whole +
          frame(1, b"x", masked=False))
    write("ws_decoder", "server-too-big", bytes([0x02]) + plan(0, 1) + frame(1, b"0123456789"))
    write("ws_decoder", "server-max-125", bytes([0x04]) + plan(0x81) + frame(2, bytes(125)) +
          frame(2, bytes(126)))


def _unmask(f):
    """The payload of a masked frame built by frame() (lengths < 65536)."""
    n = f[1] & 0x7F
    start = 2 + (2 if n == 126 else 8 if n == 127 else 0)
    key = f[start:start + 4]
    return bytes(b ^ key[i % 4] for i, b in enumerate(f[start + 4:]))


# ---- http_request ----------------------------------------------------------------------------

REQ = 0x7E   # request, 8 KiB head, 100 headers, 1 MiB body
RESP = 0x7F  # response, same limits

UPGRADE = (b"GET /chat?x=1 HTTP/1.1\r\nHost: server.example.com\r\nUpgrade: websocket\r\n"
           b"Connection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n"
           b"Origin: http://example.com\r\nSec-WebSocket-Protocol: chat, superchat\r\n"
           b"Sec-WebSocket-Version: 13\r\n\r\n")
ACCEPT = (b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
          b"Sec-WebSocket-Accept: s3pPLMBiTxaQ9kYGzzhZRbK+xOo=\r\n"
          b"Sec-WebSocket-Protocol: chat\r\n\r\n")


def http_seeds():
    requests = {
        "get": b"GET / HTTP/1.1\r\nHost: a\r\n\r\n",
        "upgrade": UPGRADE,
        "upgrade-then-frames": UPGRADE + b"\x81\x85\x37\xfa\x21\x3d\x7f\x9f\x4d\x51\x58",
        "upgrade-no-version": UPGRADE.replace(b"Sec-WebSocket-Version: 13\r\n", b""),
        "upgrade-bad-key": UPGRADE.replace(b"dGhlIHNhbXBsZSBub25jZQ==", b"short"),
        "pipelined": b"GET /a HTTP/1.1\r\nHost: a\r\n\r\nGET /b HTTP/1.1\r\nHost: a\r\n\r\n",
        "post-length": b"POST /s HTTP/1.1\r\nHost: a\r\nContent-Length: 5\r\n\r\nhello",
        "post-chunked-trailer": (b"POST /s HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n"
                                 b"\r\n5\r\nhello\r\n0\r\nX-Trailer: 1\r\n\r\n"),
        "smuggle-cl-te": (b"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 4\r\n"
                          b"Transfer-Encoding: chunked\r\n\r\n0\r\n\r\n"),
        "double-cl": b"POST / HTTP/1.1\r\nContent-Length: 1\r\nContent-Length: 2\r\n\r\nab",
        "bad-chunk": b"POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n",
        "obs-fold": b"GET / HTTP/1.1\r\nHost: a\r\nX: 1\r\n 2\r\n\r\n",
        "bare-lf": b"GET / HTTP/1.1\nHost: a\n\n",
        "bare-cr": b"GET / HTTP/1.1\rHost: a\r\n\r\n",
        "h2-preface": b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n",
        "h2c-upgrade": (b"GET / HTTP/1.1\r\nHost: a\r\nConnection: Upgrade, HTTP2-Settings\r\n"
                        b"Upgrade: h2c\r\nHTTP2-Settings: AAMAAABkAAQCAAAAAAIAAAAA\r\n\r\n"),
        "bad-header-name": b"GET / HTTP/1.1\r\nHo st: a\r\n\r\n",
        "nul-in-value": b"GET / HTTP/1.1\r\nHost: a\x00b\r\n\r\n",
        "trailing-space": b"GET / HTTP/1.1\r\nHost: a  \r\nX:\r\n\r\n",
        "http10": b"GET / HTTP/1.0\r\n\r\n",
        "absolute-form": b"GET http://a/b?c HTTP/1.1\r\nHost: a\r\n\r\n",
        "connect": b"CONNECT a:443 HTTP/1.1\r\nHost: a:443\r\n\r\nrest",
        "leading-crlf": b"\r\n\r\nGET / HTTP/1.1\r\nHost: a\r\n\r\n",
        "bad-version": b"GET / HTTP/1.2\r\n\r\n",
        "unknown-method": b"BREW / HTTP/1.1\r\n\r\n",
    }
    for name, data in requests.items():
        write("http_request", "req-" + name, bytes([REQ]) + plan() + data)
    write("http_request", "req-upgrade-bytewise", bytes([REQ]) + plan(1) + UPGRADE)
    write("http_request", "req-pipelined-split", bytes([REQ]) + plan(0, 7, 30) +
          requests["pipelined"])
    # Limits: 64-byte heads, 1 header, 16-byte bodies.
    write("http_request", "req-head-too-large", bytes([0x60]) + plan() + UPGRADE)
    write("http_request", "req-too-many-headers", bytes([0x7E & ~0x18]) + plan(3) +
          b"GET / HTTP/1.1\r\nA: 1\r\nB: 2\r\n\r\n")
    write("http_request", "req-body-too-large", bytes([0x3E]) + plan(5) +
          b"POST / HTTP/1.1\r\nContent-Length: 17\r\n\r\n01234567890123456")
    responses = {
        "accept": ACCEPT,
        "accept-then-frame": ACCEPT + b"\x81\x02hi",
        "ok": b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok",
        "426": b"HTTP/1.1 426 Upgrade Required\r\nSec-WebSocket-Version: 13\r\n\r\n",
        "bad-accept": ACCEPT.replace(b"s3pP", b"AAAA"),
        "extension": ACCEPT.replace(b"\r\n\r\n", b"\r\nSec-WebSocket-Extensions: x\r\n\r\n"),
        "status-10": b"HTTP/1.1 10 x\r\n\r\n",
        "status-space": b"HTTP/1.1  101\r\n\r\n",
        "status-999": b"HTTP/1.1 999 x\r\n\r\n",
        "lf-only": b"HTTP/1.1 101 OK\nUpgrade: websocket\n\n",
        "obs-fold": b"HTTP/1.1 101 OK\r\nUpgrade: websocket\r\n x\r\n\r\n",
    }
    for name, data in responses.items():
        write("http_request", "resp-" + name, bytes([RESP]) + plan() + data)
    write("http_request", "resp-accept-split", bytes([RESP]) + plan(0, 1, 9) + ACCEPT)
    write("http_request", "resp-head-too-large", bytes([0x61]) + plan() + ACCEPT)


# ---- sse_roundtrip ---------------------------------------------------------------------------

def op(kind, payload=b"", extra=b"", variant=False):
    n = len(payload)
    size = bytes([n]) if n < 0x80 else bytes([0x80 | (n >> 8), n & 0xFF])
    return bytes([kind | (8 if variant else 0)]) + size + payload + extra


def sse_seeds():
    u64 = lambda v: struct.pack(">Q", v)
    announce = op(7, b"/chat?session=a1-Zx_9Q", u64(25000) + u64(0) + u64(3000))
    cases = {
        "text": op(0, b"hello"),
        "text-lines": op(0, b"a\nb\n\nc\n"),
        "text-cr": op(1, b"a\rb\r\nc"),
        "text-empty": op(2),
        "text-fields": op(0, b"data: x\nid: y\nevent: z\nretry: 1\n: c"),
        "text-odd": op(0, "\u2028\u2029\ufeff\x00\u0085".encode()),
        "text-bom-first": op(0, b"\xef\xbb\xbfx"),
        "text-not-utf8": op(0, b"\xff\xfe\r"),
        "binary": op(3, bytes(range(256))),
        "binary-empty": op(3),
        "heartbeat": op(4) + op(0, b"x"),
        "gap": op(0, b"x") + op(5, b"\x00" * 9),
        "gap-variant": op(5, b"", u64(7) + u64(2**64 - 1), variant=True),
        "close": op(6, b"bye", b"\x03\xe8"),
        "close-reason-escapes": op(6, "\"\\\n\r\t\u2028é".encode(), b"\x0f\xa0"),
        "reset": op(6, b"unknown", b"\x02", variant=True),
        "announce": announce,
        "seq-max": op(0, b"x", u64(2**64 - 1), variant=True) + op(0, b"y"),
        "stream": (announce + op(0, b"one") + op(3, b"\x00\x01") + op(4) +
                   op(5, b"\x00" * 3) + op(6, b"bye", b"\x03\xe8")),
        "id-probes": b"".join(op(7, p, variant=True) for p in [
            b"a1-Zx_9Q.5", b"a.05", b"a.0", b"a.18446744073709551615",
            b"a.18446744073709551616", b".1", b"a.b.1", b"a.+1", b"a. 1", b"a.1 "]),
    }
    for i, (name, data) in enumerate(cases.items()):
        write("sse_roundtrip", name, bytes([i % 8]) + plan() + data)
        if name in ("stream", "text-lines", "text-cr", "text-odd"):
            write("sse_roundtrip", name + "-split", bytes([i % 8]) + plan(1, 2, 0, 5) + data)


# ---- config_load -----------------------------------------------------------------------------

def config_seeds():
    for path in ["examples/minimal.yaml", "examples/wsbridge.yaml",
                 "tests/unit/config/bad/missing.yaml", "tests/unit/config/bad/mistakes.yaml",
                 "tests/unit/config/bad/syntax.yaml", "tests/unit/config/bad/types.yaml"]:
        with open(os.path.join(REPO, path), "rb") as f:
            write("config_load", os.path.basename(path), f.read())
    minimal = b"listen:\n  - address: 0.0.0.0:8080\nroutes:\n  - path: /\n    backend: ws://127.0.0.1:9000/\n"
    cases = {
        "yaml-1040-comma": b",",
        "yaml-1040-flow": b"{a: [b, c",
        "yaml-unclosed": b"[",
        "two-documents": minimal + b"---\n" + minimal,
        "empty-documents": b"---\n---\n",
        "empty": b"",
        "null": b"~",
        "anchors": (b"x: &a [1, 2]\nlisten:\n  - address: 127.0.0.1:0\nroutes:\n"
                    b"  - &r {path: /a/, backend: 'wss://[::1]:443/x?y'}\n  - *r\n"),
        "alias-bomb": (b"a: &a [x, x, x, x, x, x, x, x]\nb: &b [*a, *a, *a, *a, *a, *a, *a]\n"
                       b"c: &c [*b, *b, *b, *b, *b, *b, *b]\nd: [*c, *c, *c, *c, *c, *c, *c]\n"),
        "tags": b"listen: !!binary aGVsbG8=\nroutes: !custom []\n",
        "deep": b"[" * 300 + b"]" * 300,
        "route-full": minimal + (
            b"    transports: [sse, longpoll]\n    origins: ['https://*.example.com:8443',"
            b" 'http://A.example.com:80', 'null', '*']\n    require_origin: true\n"
            b"    subprotocols: [chat]\n    forward_headers: [Cookie, X-Trace]\n"
            b"    idle_timeout: 1.5s\n    max_message: 64k\n    rate: {messages_per_second: 0.5,"
            b" burst: 1}\n    replay_buffer: 1g\n    resume_window: 1h\n"),
        "limits": (b"instance: a1\nadmin: {address: '[::1]:9090'}\ndrain_timeout: 0\n"
                   b"limits:\n  max_header_bytes: 16k\n  header_timeout: 250ms\n"
                   b"  max_message: 18446744073709551615\n") + minimal,
        "tls": (b"listen:\n  - address: 127.0.0.1:8443\n    tls: {cert: /nonexistent.pem, key: k}"
                b"\nroutes:\n  - path: /x\n    backend: ws://h:1\n"),
        "bad-values": (b"listen: [{address: 'host:99999'}]\nroutes:\n  - path: /../a\n"
                       b"    backend: 'ws://u@h/#f'\n    idle_timeout: 1.0001s\n"
                       b"    max_message: 99999999999g\n    origins: [http://a/b]\n"),
        "duplicates": minimal + b"  - path: /\n    backend: ws://127.0.0.1:9000/\nroutes: []\n",
        "unit-values": b"30s\n1.5m\n0\n16k\n1G\nws://[::1]:80/a?b\nhttps://*.a.b:443\n/chat/x?y\n",
    }
    for name, data in cases.items():
        write("config_load", name + ".yaml", data)


# ---- long_poll_batch -------------------------------------------------------------------------

def long_poll_seeds():
    full = 0x0F  # max_message 1 MiB, 1000 messages
    cases = {
        "empty-array": b"[]",
        "batch": b'[{"text":"hi"},{"binary":"AAE="}]',
        "batch-whitespace": b' [ { "text" : "a\\u00e9\\ud83d\\ude00\\n" } , {"binary":""} ] ',
        "batch-escapes": b'[{"text":"\\"\\\\\\/\\b\\f\\n\\r\\t\\u2028"}]',
        "err-lone-surrogate": b'[{"text":"\\ud800"}]',
        "err-bad-base64": b'[{"binary":"AAE"}]',
        "err-duplicate-key": b'[{"text":"a","text":"b"}]',
        "err-unknown-key": b'[{"txt":"a"}]',
        "err-both": b'[{"text":"a","binary":"AA=="}]',
        "err-trailing-comma": b'[{"text":"a"},]',
        "err-nested": b"[[[[[[[[]]]]]]]]",
        "err-number": b'[{"text":1}]',
        "err-raw-control": b'[{"text":"a\x01"}]',
        "err-invalid-utf8": b'[{"text":"\xc3\x28"}]',
        "err-after": b"[] x",
        "poll-full": (b'{"reset":{"session":"S","reason":"unknown"},"gap":{"from":1,"to":5},'
                      b'"messages":[{"seq":7,"text":"hi"},{"seq":8,"binary":"AAE="}],'
                      b'"close":{"code":1000,"reason":"bye"}}'),
        "poll-minimal": b'{"messages":[]}',
        "poll-reordered": b'{"close":{"reason":"","code":65535},"messages":[]}',
        "err-poll-code": b'{"messages":[],"close":{"code":65536,"reason":""}}',
        "err-poll-seq": b'{"messages":[{"seq":01,"text":""}]}',
        "text-body": "plain text é".encode(),
    }
    for name, data in cases.items():
        write("long_poll_batch", name, bytes([full]) + data)
    write("long_poll_batch", "limit-count", bytes([0x0F & ~0x0C | 0x04]) +
          b'[{"text":"a"},{"text":"b"}]')
    write("long_poll_batch", "limit-size", bytes([0x0E]) + b'[{"text":"0123456789abcdefg"}]')
    write("long_poll_batch", "limit-zero", bytes([0x00]) + b'[{"binary":"AA=="},{"text":')


# ---- ws_session_frames -----------------------------------------------------------------------

def ws_session_seeds():
    ack = b'\x01{"type":"ack","seq":5}'
    close = b'\x01{"type":"close","code":4000,"reason":"bye"}'
    seeds = {
        "text": frame(0x1, b"hello"),
        "binary": frame(0x2, b"\x00\x01\x02"),
        "binary-empty": frame(0x2, b"\x00"),
        "ack": frame(0x2, ack),
        "close": frame(0x2, close),
        "close-default": frame(0x2, b'\x01{"type":"close"}'),
        "fragmented-kind": frame(0x2, b"\x00", fin=False) + frame(0x9, b"p") +
                           frame(0x0, b"abc", fin=False) + frame(0x0, b"def"),
        "fragmented-control": frame(0x2, ack[:3], fin=False) + frame(0x0, ack[3:]),
        "no-kind": frame(0x2, b""),
        "bad-kind": frame(0x2, b"\x02xyz"),
        "bad-json": frame(0x2, b'\x01{"type":"ack","seq":}'),
        "unknown-type": frame(0x2, b'\x01{"type":"hello"}'),
        "mixed": frame(0x1, b"a") + frame(0x2, b"\x00b") + frame(0x2, ack) + frame(0x8, b"\x03\xe8"),
    }
    for name, data in seeds.items():
        write("ws_session_frames", name, bytes([0x03]) + plan() + data)
        write("ws_session_frames", name + "-split", bytes([0x03]) + plan(1, 3) + data)
    write("ws_session_frames", "limit", bytes([0x02]) + plan(7) + frame(0x1, b"x" * 65) + frame(0x1, b"ok"))


# ---- mux_codec -------------------------------------------------------------------------------

def mux_seeds():
    u64 = lambda v: struct.pack(">Q", v)
    full = 0x0F  # max_message 1 MiB, 10000 messages
    ids = [("X%021d" % i).encode() for i in range(101)]
    queries = {
        "q-two": b"transport=mux&session=AB.0&session=a1-Zx_9Q.17",
        "q-other-params": b"x=1&session=S.5&&transport=mux&sessionx=1&session=T.0",
        "q-100": b"&".join(b"session=" + i + b".0" for i in ids[:100]),
        "q-101": b"&".join(b"session=" + i + b".0" for i in ids),
        "q-twice": b"session=S.1&session=T.2&session=S.3",
        "q-bad-seq": b"session=S.01&session=S.-1&session=S.18446744073709551616",
        "q-max-seq": b"session=S.18446744073709551615",
        "q-leading-zero": b"session=S.01",
        "q-no-dot": b"session=S",
        "q-empty": b"session=.1",
        "q-percent": b"session=S%2E1",
    }
    for name, data in queries.items():
        write("mux_codec", name, bytes([full]) + plan() + data)
    bodies = {
        "s-two": (b'[{"session":"AB","seq":4,"messages":[{"text":"a"},{"binary":"AAE="}]},'
                  b'{"session":"CD","seq":1,"messages":[{"text":"b"}]}]'),
        "s-key-order": b'[{"messages":[],"seq":1,"session":"S"},{"seq":2,"session":"T","messages":[]}]',
        "s-empty": b"[]",
        "s-whitespace": b' [ { "session" : "S" , "seq" : 1 , "messages" : [ ] } ] ',
        "s-escapes": b'[{"session":"S","seq":1,"messages":[{"text":"\u00e9\ud83d\ude00\n\r\u2028"}]}]',
        "s-err-twice": b'[{"session":"S","seq":1,"messages":[]},{"session":"S","seq":2,"messages":[]}]',
        "s-err-seq0": b'[{"session":"S","seq":0,"messages":[]}]',
        "s-err-missing": b'[{"session":"S","seq":1}]',
        "s-err-dup-key": b'[{"session":"S","session":"T","seq":1,"messages":[]}]',
        "s-err-unknown-key": b'[{"session":"S","seq":1,"messages":[],"x":1}]',
        "s-err-bad-id": b'[{"session":"a b","seq":1,"messages":[]}]',
        "s-err-surrogate": b'[{"session":"S","seq":1,"messages":[{"text":"\ud800"}]}]',
        "s-err-101": b"[" + b",".join(b'{"session":"' + i + b'","seq":1,"messages":[]}' for i in ids) + b"]",
    }
    for name, data in bodies.items():
        write("mux_codec", name, bytes([full]) + plan() + data)
    write("mux_codec", "s-limit-size", bytes([0x0E]) + plan() +
          b'[{"session":"S","seq":1,"messages":[{"text":"0123456789abcdefg"}]}]')
    write("mux_codec", "s-limit-count", bytes([0x07]) + plan() +
          b'[{"session":"S","seq":1,"messages":[{"text":"a"},{"text":"b"}]}]')
    # SSE operations: op byte = kind | variant 8 | session << 4.
    def mop(kind, session=0, payload=b"", extra=b"", variant=False):
        n = len(payload)
        size = bytes([n]) if n < 0x80 else bytes([0x80 | (n >> 8), n & 0xFF])
        return bytes([kind | (8 if variant else 0) | (session << 4)]) + size + payload + extra
    announce = mop(7, 0, b"/chat?transport=mux", u64(30000) + u64(1000) + bytes([3]) +
                   bytes([0, 0]) + u64(5) + u64(3) +
                   bytes([1, 1]) +
                   bytes([2, 2 | (7 << 3)]) + u64(0) + u64(1) + b"chat.v2")
    streams = {
        "e-stream": (announce + mop(0, 0, b"hello") + mop(0, 1, b"a\nb\n") + mop(1, 0, b"x\ry") +
                     mop(3, 2, bytes(range(40))) + mop(6, 0, variant=True) +
                     mop(4, 1, b"", u64(3) + u64(9)) + mop(5, 0, b"bye", b"\x03\xe8") +
                     mop(6, 1, b"replaced")),
        "e-text-lines": mop(0, 3, b"\n\nline\n\n"),
        "e-text-fields": mop(0, 4, b"data: x\nid: y\nevent: z\nretry: 1\n: c"),
        "e-text-odd": mop(2, 5, "\u2028\u2029\ufeff\x00\u0085".encode()),
        "e-text-not-utf8": mop(0, 6, b"\xff\xfe\r"),
        "e-empty": mop(0, 7) + mop(3, 7),
        "e-seq-max": mop(0, 8, b"x", u64(2**64 - 1), variant=True) + mop(0, 8, b"y"),
        "e-close-escapes": mop(5, 9, "\"\\\n\r\t\u2028é".encode(), b"\x0f\xa0"),
    }
    for name, data in streams.items():
        write("mux_codec", name, bytes([full]) + plan() + data)
        write("mux_codec", name + "-split", bytes([full]) + plan(1, 2, 0, 5) + data)


if __name__ == "__main__":
    ws_seeds()
    http_seeds()
    sse_seeds()
    config_seeds()
    long_poll_seeds()
    ws_session_seeds()
    mux_seeds()
