//! The single-pass path against the reference path it replaced (issue 15), on arbitrary text
//! as an audit event: `pipeline::process_event` must give the same fate and the same bytes
//! both ways, in every format, with redaction off and on, with any depth limit, and the same
//! findings with the default rule pack, whose rules read the bodies the single pass hands over
//! unparsed.
#![no_main]

use std::sync::{Arc, LazyLock};

use eks_audit_core::detect::Detector;
use eks_audit_core::detect::rules::default_pack;
use eks_audit_core::filter::{Filter, StageFilter};
use eks_audit_core::oracle::with_reference;
use eks_audit_core::pipeline::process_event_detecting;
use eks_audit_core::redact::Redaction;
use eks_audit_core::schema::EventContext;
use eks_audit_core::{Format, InputLimits, ProcessOptions};
use libfuzzer_sys::fuzz_target;

static SETTINGS: LazyLock<Vec<ProcessOptions>> = LazyLock::new(|| {
    let mut settings = Vec::new();
    for format in Format::ALL {
        for redaction in ["none", "*"] {
            for max_depth in [3, 100, 200] {
                settings.push(ProcessOptions {
                    format,
                    redaction: Redaction::parse(redaction).expect("a valid rule"),
                    filter: Filter {
                        stages: StageFilter::All,
                        exclude_uris: Vec::new(),
                    },
                    limits: InputLimits {
                        max_depth,
                        ..InputLimits::default()
                    },
                    ..ProcessOptions::default()
                });
            }
        }
    }
    let detector = Arc::new(Detector::load(&default_pack()).expect("the default pack loads"));
    for format in Format::ALL {
        settings.push(ProcessOptions {
            format,
            filter: Filter {
                stages: StageFilter::All,
                exclude_uris: Vec::new(),
            },
            detector: Some(detector.clone()),
            ..ProcessOptions::default()
        });
    }
    settings
});

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let context = EventContext {
        event_id: Some("1"),
        cloudwatch_timestamp: Some(1_700_000_000_000),
        ..EventContext::default()
    };
    for options in SETTINGS.iter() {
        let (mut new, mut reference) = (Vec::new(), Vec::new());
        let (mut findings, mut reference_findings) = (Vec::new(), Vec::new());
        let fate = process_event_detecting(text, &context, options, &mut new, &mut findings);
        let reference_fate = with_reference(|| {
            process_event_detecting(
                text,
                &context,
                options,
                &mut reference,
                &mut reference_findings,
            )
        });
        assert_eq!(fate, reference_fate, "{text:?}");
        assert_eq!(new, reference, "{text:?}");
        assert_eq!(findings, reference_findings, "{text:?}");
    }
});
