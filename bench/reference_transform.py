#!/usr/bin/env python3
"""The same Firehose transformation as eks-audit-forwarder, the way the reference Sentinel
connector's Python Lambda does it: the baseline `scripts/compare-python.sh` times us against.

Per Firehose record: base64-decode, gunzip, `json.loads` the CloudWatch Logs subscription message,
drop control messages and non-audit streams, `json.loads` each audit event, apply the default
filter (stage ResponseComplete, the field's excluded URIs with CloudWatch `*` wildcards), build the
flat columns (Sentinel's AWSEKSLogs_CL plus the extended ones, contract §4) as a dict, `json.dumps`
each row into NDJSON, base64 the result. Standard library only, written plainly, as such a Lambda
is: no tricks in either direction.

It keeps the same events and fills the same column values as `eks-audit invoke` (the compare
script checks the AuditIds and the rows); RawEvent is the parsed event dumped again (same JSON
value, not the same text). Usage: reference_transform.py EVENT_FILE > response.json
"""

import base64
import datetime
import gzip
import json
import os
import re
import sys

STAGES = ["ResponseComplete"]
EXCLUDE_URIS = "/version,/version?*,/metrics,/metrics?*,/logs,/logs?*,/swagger*,/livez*,/readyz*,/healthz*"
AUDIT_STREAM_PREFIX = "kube-apiserver-audit-"


def cloudwatch_pattern(pattern):
    """A CloudWatch filter-pattern string: `*` is any run of characters, the rest is literal."""
    return re.compile(".*".join(re.escape(part) for part in pattern.split("*")), re.DOTALL)


EXCLUDED = [cloudwatch_pattern(p) for p in EXCLUDE_URIS.split(",")]


def keep(event):
    if event.get("stage") not in STAGES:
        return False
    uri = event.get("requestURI")
    return not (isinstance(uri, str) and any(p.fullmatch(uri) for p in EXCLUDED))


def event_time(event, cloudwatch_ms):
    for field in ("requestReceivedTimestamp", "stageTimestamp", "timestamp"):
        value = event.get(field)
        if isinstance(value, str):
            try:
                return datetime.datetime.fromisoformat(value).astimezone(datetime.timezone.utc)
            except ValueError:
                pass
    return datetime.datetime.fromtimestamp(cloudwatch_ms / 1000, datetime.timezone.utc)


def flat_row(event, message, log_event, region, cluster):
    user = event.get("user") or {}
    object_ref = event.get("objectRef") or {}
    annotations = event.get("annotations") or {}
    status = event.get("responseStatus") or {}
    parts = [object_ref.get(k) for k in ("namespace", "resource", "name", "subresource")]
    object_path = "/".join(p for p in parts if p)
    arns = (user.get("extra") or {}).get("arn") or []
    time_generated = event_time(event, log_event["timestamp"])
    return {
        "TimeGenerated": time_generated.strftime("%Y-%m-%dT%H:%M:%S.%fZ"),
        "AwsAccountId": message.get("owner") or None,
        "Region": region,
        "ClusterName": cluster,
        "Verb": event.get("verb"),
        "User": user.get("username"),
        "SourceIPs": event.get("sourceIPs") or [],
        "UserAgent": event.get("userAgent"),
        "ObjectRef": object_path or None,
        "ResponseCode": status.get("code"),
        "Stage": event.get("stage"),
        "AuthDecision": annotations.get("authorization.k8s.io/decision"),
        "RawEvent": event,
        "AuditId": event.get("auditID"),
        "Level": event.get("level"),
        "RequestURI": event.get("requestURI"),
        "ApiGroup": object_ref.get("apiGroup"),
        "ApiVersion": object_ref.get("apiVersion"),
        "Namespace": object_ref.get("namespace"),
        "Resource": object_ref.get("resource"),
        "Subresource": object_ref.get("subresource"),
        "Name": object_ref.get("name"),
        "UserGroups": user.get("groups") or [],
        "UserArn": arns[0] if arns else None,
        "ImpersonatedUser": (event.get("impersonatedUser") or {}).get("username"),
        "AuthReason": annotations.get("authorization.k8s.io/reason"),
        "ResponseReason": status.get("reason"),
        "RequestReceivedTimestamp": event.get("requestReceivedTimestamp"),
        "StageTimestamp": event.get("stageTimestamp"),
        "LogGroup": message.get("logGroup"),
        "LogStream": message.get("logStream"),
        "EventId": str(log_event["id"]),
    }


def transform_record(record, region):
    payload = base64.b64decode(record["data"])
    if payload[:2] == b"\x1f\x8b":
        payload = gzip.decompress(payload)
    message = json.loads(payload)
    if message["messageType"] == "CONTROL_MESSAGE":
        return {"recordId": record["recordId"], "result": "Dropped", "data": ""}
    if message["messageType"] != "DATA_MESSAGE":
        raise ValueError("unknown messageType")
    if not message.get("logStream", "").startswith(AUDIT_STREAM_PREFIX):
        return {"recordId": record["recordId"], "result": "Dropped", "data": ""}
    group = re.fullmatch(r"/aws/eks/([^/]+)/cluster", message.get("logGroup", ""))
    cluster = group.group(1) if group else None
    lines = []
    for log_event in message["logEvents"]:
        event = json.loads(log_event["message"])
        if keep(event):
            lines.append(json.dumps(flat_row(event, message, log_event, region, cluster)) + "\n")
    if not lines:
        return {"recordId": record["recordId"], "result": "Dropped", "data": ""}
    return {
        "recordId": record["recordId"],
        "result": "Ok",
        "data": base64.b64encode("".join(lines).encode("utf-8")).decode("ascii"),
        "metadata": {"partitionKeys": {"account": message["owner"], "cluster": cluster or "_unknown"}},
    }


def lambda_handler(event, context):
    region = event.get("region") or os.environ.get("AWS_REGION")
    output = []
    for record in event["records"]:
        try:
            output.append(transform_record(record, region))
        except Exception:  # the record goes back untouched to Firehose's error output
            output.append({"recordId": record["recordId"], "result": "ProcessingFailed", "data": record["data"]})
    return {"records": output}


if __name__ == "__main__":
    with open(sys.argv[1], encoding="utf-8") as f:
        response = lambda_handler(json.load(f), None)
    json.dump(response, sys.stdout)
    sys.stdout.write("\n")
