//! Runs the Firehose path over a generated workload with the default rule pack, and prints how
//! much work detection did: events evaluated, events whose JSON had to be parsed into a tree,
//! matches. For profiling detection's cost (`valgrind --tool=callgrind` on it, with and without
//! `--no-rules`).
//!
//! ```sh
//! cargo run --release -p eks-audit-core --example detect-profile -- [--size typical] [--no-rules] [N]
//! ```

#[path = "../benches/workload.rs"]
mod workload;

use std::sync::Arc;

use eks_audit_core::batch::firehose;
use eks_audit_core::detect::{Detector, rules};
use eks_audit_core::envelope::models::IncomingEvent;
use eks_audit_core::{Origin, ProcessOptions};

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let size = args
        .windows(2)
        .find(|w| w[0] == "--size")
        .map_or("typical", |w| w[1].as_str());
    let rules = !args.iter().any(|a| a == "--no-rules");
    let runs: usize = args.last().and_then(|a| a.parse().ok()).unwrap_or(1);
    let workload = workload::generate(workload::Size::parse(size).expect("a workload size"));
    let detector = Arc::new(Detector::load(&rules::default_pack()).expect("the pack loads"));
    let options = ProcessOptions {
        detector: rules.then(|| detector.clone()),
        ..ProcessOptions::default()
    };
    let incoming: IncomingEvent<'_> = serde_json::from_str(&workload.event).expect("an event");
    let records = incoming.records.as_deref().expect("records");
    let mut findings = 0;
    for _ in 0..runs {
        let processed =
            firehose::process_records(records, Origin::default(), &options, None, Some("p"));
        findings += processed.finding_lines().count();
    }
    let stats = detector.stats();
    println!(
        "{size}: {} log events x {runs}; evaluated {}, trees built {}, matches {}, findings {findings}",
        workload.log_events, stats.events, stats.trees, stats.matches
    );
}
