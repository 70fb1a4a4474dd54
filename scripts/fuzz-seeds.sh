#!/usr/bin/env bash
# Seeds the fuzz corpora in fuzz/corpus/<target>/ (gitignored) from the third-party corpus in
# tests/fixtures/third-party (override with CORPUS_DIR) and events/. Idempotent: a seed file is
# named by the hash of its content. Usage: scripts/fuzz-seeds.sh
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
CORPUS="${CORPUS_DIR:-$ROOT/tests/fixtures/third-party}"
[ -d "$CORPUS" ] || { echo "fuzz-seeds: $CORPUS not found" >&2; exit 1; }

python3 - "$ROOT" "$CORPUS" <<'PY'
import base64, gzip, hashlib, json, pathlib, sys

root, corpus = pathlib.Path(sys.argv[1]), pathlib.Path(sys.argv[2])
out = root / "fuzz" / "corpus"
counts = {}

def seed(target, data: bytes):
    d = out / target
    d.mkdir(parents=True, exist_ok=True)
    (d / hashlib.sha1(data).hexdigest()).write_bytes(data)
    counts[target] = counts.get(target, 0) + 1

def json_values(text):
    """Every JSON value of a file: one document, NDJSON, or concatenated values."""
    dec, i, n = json.JSONDecoder(), 0, len(text)
    while i < n:
        while i < n and text[i].isspace():
            i += 1
        if i >= n:
            break
        value, i = dec.raw_decode(text, i)
        yield value

def audit_events(value):
    if isinstance(value, list):
        for v in value:
            yield from audit_events(v)
    elif isinstance(value, dict) and isinstance(value.get("items"), list):
        yield from audit_events(value["items"])
    elif isinstance(value, dict):
        yield value

# audit_normalizer: every audit event of the corpus, compact and as found.
for path in sorted((corpus / "audit-events").rglob("*")):
    if not path.is_file() or path.suffix == ".yaml":
        continue
    text = path.read_text(encoding="utf-8", errors="replace")
    try:
        values = list(json_values(text))
    except ValueError:
        continue
    for value in values:
        for event in audit_events(value):
            seed("audit_normalizer", json.dumps(event, separators=(",", ":")).encode())
    if len(values) == 1:
        seed("audit_normalizer", text.encode())

# Lambda events of events/ and the corpus: the handler reads them whole (the `Text` variant,
# chosen by a first u32 of 0xffffffff), and the decoder reads each record's payload.
lambda_events = sorted((root / "events").glob("*.json")) + sorted((corpus / "lambda-events").rglob("*.json"))
for path in lambda_events:
    raw = path.read_bytes()
    seed("firehose_handler", b"\xff\xff\xff\xff" + raw)
    try:
        event = json.loads(raw)
    except ValueError:
        continue
    datas = [r.get("data") for r in event.get("records", []) if isinstance(r, dict)] if isinstance(event, dict) else []
    if isinstance(event, dict) and isinstance(event.get("awslogs"), dict):
        datas.append(event["awslogs"].get("data"))
    for data in datas:
        if not isinstance(data, str):
            continue
        try:
            payload = base64.b64decode(data, validate=True)
        except ValueError:
            continue
        # Mode byte 0xf0: not wrapped again, default event and payload limits.
        seed("subscription_decoder", b"\xf0" + payload)
        if payload[:2] == b"\x1f\x8b":
            try:
                plain = gzip.decompress(payload)
            except (OSError, EOFError):
                continue
            seed("subscription_decoder", b"\xf0" + plain)
            seed("subscription_decoder", b"\xf1" + plain)
            for message in json_values(plain.decode("utf-8", "replace")):
                for e in message.get("logEvents", []) if isinstance(message, dict) else []:
                    if isinstance(e, dict) and isinstance(e.get("message"), str):
                        seed("audit_normalizer", e["message"].encode())

# Raw subscription messages (Firehose with decompression on) from the corpus.
for path in sorted((corpus / "lambda-events").rglob("*")):
    if path.is_file() and path.suffix != ".json":
        seed("subscription_decoder", b"\xf0" + path.read_bytes())

# Hostile shapes (issue "Hostile input, round two"): deep nesting in each field, year bounds,
# many distinct keys, many hours, colliding names, mixed clusters. Each stays under fuzz.sh's
# -max_len of 64 KiB.
def b64(data: bytes) -> str:
    return base64.b64encode(data).decode()

def event(received="2024-05-21T10:00:00Z", stage="2024-05-21T10:00:00Z", extra=""):
    return ('{"kind":"Event","apiVersion":"audit.k8s.io/v1","auditID":"a1","stage":"ResponseComplete",'
            '"requestURI":"/api/v1/pods","verb":"list","user":{"username":"alice"},'
            '"sourceIPs":["10.0.0.1"],"requestReceivedTimestamp":"%s","stageTimestamp":"%s"%s}'
            % (received, stage, extra))

def message(events, stream="kube-apiserver-audit-0123456789abcdef", group="/aws/eks/prod/cluster",
            owner="111122223333", filters='["f"]', event_extra=""):
    log_events = ",".join('{"id":"%s","timestamp":1716285601000,"message":%s%s}'
                          % (i, json.dumps(e), event_extra) for i, e in events)
    return ('{"messageType":"DATA_MESSAGE","owner":"%s","logGroup":"%s","logStream":"%s",'
            '"subscriptionFilters":%s,"logEvents":[%s]}' % (owner, group, stream, filters, log_events))

deep = "[" * 10_000 + "]" * 10_000
for field in ['"requestObject":%s' % deep, '"responseObject":{"a":%s}' % deep,
              '"annotations":{"k":%s}' % deep, '"objectRef":{"resource":%s}' % deep, '"x":%s' % deep]:
    seed("audit_normalizer", event(extra="," + field).encode())
for beyond in ["9999-12-31T23:00:00-02:00", "0000-01-01T00:00:00+01:00", "9999-12-31T23:59:59.999999Z"]:
    seed("audit_normalizer", event(stage=beyond).encode())
    seed("audit_normalizer", event(received=beyond).encode())
many_keys = ",".join('"k%d":"v"' % i for i in range(2_000))
seed("audit_normalizer", event(extra=',"annotations":{%s}' % many_keys).encode())
seed("audit_normalizer", event(extra=',"annotations":{"k":"v","k":"w"}').encode())

one = [("1", event())]
many_hours = [(str(i), event(received="%04d-01-01T%02d:00:00Z" % (2000 + i // 24, i % 24))) for i in range(300)]
payloads = [
    message(one, filters=deep),
    message(one, event_extra=',"x":%s' % deep),
    message(one) + message(one),
    message(one, stream="kube-apiserver-audit-a b") + message(one, stream="kube-apiserver-audit-a_b"),
    message(one) + message(one, group="/aws/eks/staging/cluster"),
    message(one) + message(one, owner="444455556666"),
    message(many_hours),
]
for payload in payloads:
    seed("subscription_decoder", b"\xf0" + payload.encode())
    seed("transform", payload.encode())
records = [{"recordId": "r%d" % i, "approximateArrivalTimestamp": 1716285601000,
            "data": b64(gzip.compress(p.encode()))} for i, p in enumerate(payloads)]
firehose = {"invocationId": "i", "deliveryStreamArn": "arn:aws:firehose:eu-west-1:111122223333:deliverystream/s",
            "region": "eu-west-1", "records": records}
seed("firehose_handler", b"\xff\xff\xff\xff" + json.dumps(firehose).encode())
seed("transform", (event() + "\n{not json\n" + event() + "\n").encode())

for target, n in sorted(counts.items()):
    print(f"fuzz-seeds: {n} seeds -> fuzz/corpus/{target}/")
PY
