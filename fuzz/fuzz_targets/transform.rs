//! `eks-audit transform` on arbitrary input: any bytes, gzip or not, as a Lambda event,
//! subscription messages, or audit events as JSON, NDJSON, arrays or an EventList.
//!
//! Holds: no panic (and no stack overflow); every event counted is kept, dropped or
//! quarantined; the output has one JSON line per kept event and per salvaged one (an event cut
//! by CloudWatch Logs, counted as quarantined).
#![no_main]

use std::sync::LazyLock;

use eks_audit_core::ProcessOptions;
use eks_audit_core::filter::{Filter, StageFilter};
use eks_audit_core::transform::transform;
use libfuzzer_sys::fuzz_target;
use serde_json::Value;

static KEEP_ALL: LazyLock<ProcessOptions> = LazyLock::new(|| ProcessOptions {
    filter: Filter {
        stages: StageFilter::All,
        exclude_uris: Vec::new(),
    },
    ..ProcessOptions::default()
});

fuzz_target!(|input: &[u8]| {
    let Ok(out) = transform(input.to_vec(), &KEEP_ALL, Some("eu-west-1")) else {
        return;
    };
    let tally = &out.tally;
    assert_eq!(
        tally.events,
        tally.kept + tally.dropped.total() + tally.quarantined,
        "{tally:?}"
    );
    assert!(tally.salvaged <= tally.quarantined, "{tally:?}");
    let text = std::str::from_utf8(&out.ndjson).expect("output is UTF-8");
    assert_eq!(
        text.split_terminator('\n').count() as u64,
        tally.kept + tally.salvaged
    );
    assert!(text.is_empty() || text.ends_with('\n'));
    for line in text.split_terminator('\n') {
        let value: Value = serde_json::from_str(line).unwrap_or_else(|e| {
            panic!("output line is not JSON strict readers accept ({e}): {line}")
        });
        assert!(value.is_object());
    }
});
