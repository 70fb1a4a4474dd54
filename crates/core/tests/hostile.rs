//! Hostile input, round two: one regression test per defect an outside probe found, each
//! with the outcome the contract requires, reasoned from the input.

use eks_audit_core::{EventContext, EventFate, Format, ProcessOptions, process_event};

/// An event OCSF can otherwise represent: verb, user, source IP.
fn event_with_times(stage: &str, received: &str) -> String {
    format!(
        r#"{{"kind":"Event","apiVersion":"audit.k8s.io/v1","level":"Metadata","auditID":"a1","stage":"ResponseComplete","requestURI":"/api/v1/pods","verb":"list","user":{{"username":"alice"}},"sourceIPs":["10.0.0.1"],"stageTimestamp":"{stage}","requestReceivedTimestamp":"{received}"}}"#
    )
}

fn run(format: Format, text: &str) -> (EventFate, String) {
    let options = ProcessOptions { format, ..ProcessOptions::default() };
    let context = EventContext { cloudwatch_timestamp: Some(1_716_285_601_000), ..EventContext::default() };
    let mut out = Vec::new();
    let fate = process_event(text, &context, &options, &mut out);
    (fate, String::from_utf8(out).expect("UTF-8 output"))
}

/// Rows 2 and 11: a time whose UTC year is 10000 or -1 is valid RFC 3339 with its offset, but
/// RFC 3339 cannot write it in UTC. OCSF states times in UTC (`time_dt`), so the event is
/// quarantined, never panicking, never written with a year like `-0001`.
#[test]
fn ocsf_quarantines_times_beyond_the_years_rfc_3339_writes_in_utc() {
    let fine = "2024-05-21T10:00:00.000000Z";
    for beyond in ["9999-12-31T23:00:00-02:00", "0000-01-01T00:00:00+01:00"] {
        for event in [event_with_times(beyond, fine), event_with_times(fine, beyond)] {
            let (fate, out) = run(Format::Ocsf, &event);
            match fate {
                EventFate::Quarantined(reason) => {
                    assert!(reason.contains("outside 0-9999"), "{reason}")
                }
                other => panic!("{beyond}: expected quarantine, got {other:?} {out}"),
            }
            assert!(out.is_empty(), "nothing written for a quarantined event");
        }
    }
    // The edges are writable, and written as they are.
    let (fate, out) = run(Format::Ocsf, &event_with_times("9999-12-31T23:59:59.999999Z", fine));
    assert!(matches!(fate, EventFate::Kept { .. }), "{fate:?}");
    assert!(out.contains(r#""time_dt":"9999-12-31T23:59:59.999999Z""#), "{out}");
}

/// The flat schema keeps such an event: `TimeGenerated` falls to the next time it can write
/// (contract §4), here the request's reception.
#[test]
fn flat_takes_the_next_writable_time() {
    let (fate, out) = run(Format::Flat, &event_with_times("2024-05-21T10:00:00.000000Z", "9999-12-31T23:00:00-02:00"));
    assert!(matches!(fate, EventFate::Kept { .. }), "{fate:?}");
    assert!(out.contains(r#""TimeGenerated":"2024-05-21T10:00:00.000000Z""#), "{out}");
}
