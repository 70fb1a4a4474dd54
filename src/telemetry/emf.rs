//! Invocation metrics as one CloudWatch Embedded Metric Format line: CloudWatch Logs turns it
//! into metrics in the `EksAuditForwarder` namespace, by `Cluster` and in total, with no
//! `PutMetricData` call on the hot path. Only the Lambda prints it, on stdout; the CLI's stdout
//! is its output.
//!
//! <https://docs.aws.amazon.com/AmazonCloudWatch/latest/monitoring/CloudWatch_Embedded_Metric_Format_Specification.html>

use std::collections::BTreeSet;

use serde_json::{Map, Value, json};

use eks_audit_core::Tally;

use crate::sink::findings::FindingsReport;

const NAMESPACE: &str = "EksAuditForwarder";

/// The `Cluster` value of an invocation whose events came from several clusters (one delivery
/// stream can serve many); their metrics then count under this name and in the total.
pub const MULTIPLE_CLUSTERS: &str = "_multiple";

/// The `Cluster` dimension for the clusters an invocation saw: the one cluster, `_unknown`
/// when none was seen (every event dropped), or [`MULTIPLE_CLUSTERS`].
pub fn cluster_dimension(clusters: &BTreeSet<String>) -> &str {
    match clusters.len() {
        0 => eks_audit_core::eks::UNKNOWN_CLUSTER,
        1 => clusters.first().expect("one element"),
        _ => MULTIPLE_CLUSTERS,
    }
}

/// One EMF line (no trailing newline) for an invocation.
pub fn line(
    tally: &Tally,
    findings: &FindingsReport,
    cluster: &str,
    timestamp_ms: i64,
    duration_ms: u64,
) -> String {
    let severity = |name: &str| findings.by_severity.get(name).copied().unwrap_or(0);
    let metrics: [(&str, &str, u64); 22] = [
        ("Records", "Count", tally.records),
        ("Events", "Count", tally.events),
        ("EventsKept", "Count", tally.kept),
        (
            "DroppedControlMessage",
            "Count",
            tally.dropped.control_message,
        ),
        (
            "DroppedNotAuditStream",
            "Count",
            tally.dropped.not_audit_stream,
        ),
        ("DroppedStage", "Count", tally.dropped.stage),
        ("DroppedExcludedUri", "Count", tally.dropped.excluded_uri),
        ("Quarantined", "Count", tally.quarantined),
        ("Salvaged", "Count", tally.salvaged),
        ("FailedRecords", "Count", tally.failed_records),
        ("ReingestedRecords", "Count", tally.reingested_records),
        ("BytesIn", "Bytes", tally.bytes_in),
        ("BytesOut", "Bytes", tally.bytes_out),
        ("Duration", "Milliseconds", duration_ms),
        ("Invocations", "Count", 1),
        ("Findings", "Count", findings.findings),
        ("FindingsCritical", "Count", severity("Critical")),
        ("FindingsHigh", "Count", severity("High")),
        ("FindingsMedium", "Count", severity("Medium")),
        ("FindingsLow", "Count", severity("Low")),
        ("FindingsInformational", "Count", severity("Informational")),
        (
            "FindingsUndelivered",
            "Count",
            findings.object_failures + findings.queue_failures,
        ),
    ];
    let mut root = Map::new();
    root.insert(
        "_aws".into(),
        json!({
            "Timestamp": timestamp_ms,
            "CloudWatchMetrics": [{
                "Namespace": NAMESPACE,
                "Dimensions": [["Cluster"], []],
                "Metrics": metrics.iter().map(|(name, unit, _)| json!({"Name": name, "Unit": unit})).collect::<Vec<_>>(),
            }],
        }),
    );
    root.insert("Cluster".into(), Value::from(cluster));
    for (name, _, value) in metrics {
        root.insert(name.into(), Value::from(value));
    }
    Value::Object(root).to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_counter_is_a_metric_by_cluster_and_in_total() {
        let mut tally = Tally {
            records: 7,
            events: 12,
            kept: 8,
            quarantined: 2,
            salvaged: 1,
            failed_records: 1,
            reingested_records: 2,
            ..Tally::default()
        };
        tally.dropped.control_message = 1;
        tally.dropped.not_audit_stream = 2;
        tally.dropped.stage = 1;
        tally.dropped.excluded_uri = 1;
        (tally.bytes_in, tally.bytes_out) = (40_000, 52_000);
        let findings = FindingsReport {
            findings: 5,
            by_severity: [("High", 3), ("Low", 2)].into_iter().collect(),
            object_failures: 1,
            queued: 4,
            queue_failures: 2,
        };
        let text = line(&tally, &findings, "prod-east", 1_716_285_600_000, 37);
        assert!(!text.contains('\n'), "one line");
        let value: Value = serde_json::from_str(&text).unwrap();

        let directive = &value["_aws"]["CloudWatchMetrics"][0];
        assert_eq!(value["_aws"]["Timestamp"], 1_716_285_600_000_i64);
        assert_eq!(directive["Namespace"], "EksAuditForwarder");
        assert_eq!(directive["Dimensions"], json!([["Cluster"], []]));
        assert_eq!(value["Cluster"], "prod-east");
        let expected = [
            ("Records", 7),
            ("Events", 12),
            ("EventsKept", 8),
            ("DroppedControlMessage", 1),
            ("DroppedNotAuditStream", 2),
            ("DroppedStage", 1),
            ("DroppedExcludedUri", 1),
            ("Quarantined", 2),
            ("Salvaged", 1),
            ("FailedRecords", 1),
            ("ReingestedRecords", 2),
            ("BytesIn", 40_000),
            ("BytesOut", 52_000),
            ("Duration", 37),
            ("Invocations", 1),
            ("Findings", 5),
            ("FindingsCritical", 0),
            ("FindingsHigh", 3),
            ("FindingsMedium", 0),
            ("FindingsLow", 2),
            ("FindingsInformational", 0),
            ("FindingsUndelivered", 3),
        ];
        let declared: Vec<&str> = directive["Metrics"]
            .as_array()
            .unwrap()
            .iter()
            .map(|m| m["Name"].as_str().unwrap())
            .collect();
        assert_eq!(declared, expected.map(|(name, _)| name));
        for (name, count) in expected {
            assert_eq!(value[name], count, "{name}");
        }
        let unit = |name: &str| {
            directive["Metrics"]
                .as_array()
                .unwrap()
                .iter()
                .find(|m| m["Name"] == name)
                .unwrap()["Unit"]
                .clone()
        };
        assert_eq!(
            (unit("BytesIn"), unit("Duration"), unit("Records")),
            (json!("Bytes"), json!("Milliseconds"), json!("Count"))
        );
    }

    #[test]
    fn cluster_dimension_names_one_cluster_or_says_why_not() {
        let set = |names: &[&str]| names.iter().map(|n| n.to_string()).collect::<BTreeSet<_>>();
        assert_eq!(cluster_dimension(&set(&["prod-east"])), "prod-east");
        assert_eq!(cluster_dimension(&set(&[])), "_unknown");
        assert_eq!(cluster_dimension(&set(&["a", "b"])), "_multiple");
    }
}
