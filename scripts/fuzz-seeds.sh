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

for target, n in sorted(counts.items()):
    print(f"fuzz-seeds: {n} seeds -> fuzz/corpus/{target}/")
PY
