#!/usr/bin/env python3
"""The plainest Firehose transformation of EKS audit logs, doing only what the Microsoft Sentinel
connector's Lambda does with a CloudWatch Logs payload: the second baseline
`scripts/compare-python.sh` times us against (issue 15).

Per Firehose record: base64-decode, gunzip, `json.loads` the subscription message (control
messages are dropped), `json.loads` each audit event, keep five fields, `json.dumps` each row
into NDJSON, base64 the result. No stage or URI filter, no validation, no other column, no
response limit: every event is kept, so this baseline does less than `eks-audit invoke` and less
than bench/reference_transform.py. Standard library only.
Usage: sentinel_transform.py EVENT_FILE > response.json
"""

import base64
import gzip
import json
import sys


def transform_record(record):
    message = json.loads(gzip.decompress(base64.b64decode(record["data"])))
    lines = []
    if message.get("messageType") != "DATA_MESSAGE":
        return {"recordId": record["recordId"], "result": "Dropped", "data": ""}
    for log_event in message.get("logEvents", []):
        event = json.loads(log_event["message"])
        row = {
            "TimeGenerated": event.get("stageTimestamp"),
            "Verb": event.get("verb"),
            "User": (event.get("user") or {}).get("username"),
            "RequestURI": event.get("requestURI"),
            "ResponseCode": (event.get("responseStatus") or {}).get("code"),
        }
        lines.append(json.dumps(row) + "\n")
    return {
        "recordId": record["recordId"],
        "result": "Ok" if lines else "Dropped",
        "data": base64.b64encode("".join(lines).encode("utf-8")).decode("ascii"),
    }


def lambda_handler(event, context):
    return {"records": [transform_record(record) for record in event["records"]]}


if __name__ == "__main__":
    with open(sys.argv[1]) as f:
        json.dump(lambda_handler(json.load(f), None), sys.stdout)
