//! The soak's figures, and what must hold of them.

use std::collections::BTreeMap;
use std::fmt;
use std::time::Duration;

use crate::Plan;
use crate::downstream::{CollectRuns, Events, Reconciled};
use crate::lambda::{Counts, Mode};
use crate::proxy::{Kind, OperationStats};

/// What `collect` wrote, against the bucket's event objects.
pub struct Collected {
    /// Lines of the bucket's event objects, and the distinct events among them.
    pub bucket_lines: u64,
    pub bucket_events: u64,
    pub objects: u64,
    /// Lines `collect` wrote, and the distinct events among them.
    pub lines: u64,
    pub events: u64,
    /// Events of the bucket that `collect` did not write.
    pub lost: u64,
    /// Events `collect` wrote that the bucket does not hold.
    pub extra: u64,
    pub runs: CollectRuns,
}

impl Collected {
    pub fn new(bucket: &Events, collected: &Events, objects: u64, runs: CollectRuns) -> Collected {
        Collected {
            bucket_lines: bucket.values().sum(),
            bucket_events: bucket.len() as u64,
            objects,
            lines: collected.values().sum(),
            events: collected.len() as u64,
            lost: bucket
                .keys()
                .filter(|k| !collected.contains_key(*k))
                .count() as u64,
            extra: collected
                .keys()
                .filter(|k| !bucket.contains_key(*k))
                .count() as u64,
            runs,
        }
    }
}

pub struct Times {
    pub logged: Duration,
    pub forwarded: Duration,
    pub collected: Duration,
    pub total: Duration,
}

pub struct Report {
    pub plan: Plan,
    /// How long each environment waited, on average, for the collectors to catch up.
    pub paced: Duration,
    /// Invocations still parked after their redrives.
    pub still_parked: usize,
    pub counts: Counts,
    /// Per cluster (direct, Firehose): audit-stream events put into CloudWatch, and
    /// `reconcile`'s totals.
    pub groups: [(u64, Reconciled); 2],
    pub collect: Collected,
    pub dead_letters: usize,
    pub faults: BTreeMap<Kind, u64>,
    pub calls: BTreeMap<String, OperationStats>,
    pub times: Times,
}

impl Report {
    /// Nothing lost, anywhere; everything accounted for.
    pub fn check(&self) {
        for ((_, reconciled), mode) in self.groups.iter().zip(["direct", "Firehose"]) {
            assert_eq!(reconciled.missing, 0, "{mode}: events lost");
            assert_eq!(reconciled.code, 0, "{mode}: reconcile exits 0");
            assert_eq!(
                reconciled.unexpected, 0,
                "{mode}: lines CloudWatch does not hold"
            );
            assert!(reconciled.in_cloudwatch > 0, "{mode}: events to deliver");
        }
        assert_eq!(
            self.still_parked, 0,
            "invocations that failed every redrive"
        );
        assert_eq!(self.counts.processing_failed, 0, "records that failed");
        assert_eq!(
            self.collect.lost, 0,
            "events in the bucket that collect did not write"
        );
        assert_eq!(
            self.collect.extra, 0,
            "events collect wrote that the bucket does not hold"
        );
        assert_eq!(
            self.dead_letters, 0,
            "notifications in the dead-letter queue"
        );
        let retried: u64 = self.counts.failed_attempts.values().sum();
        assert!(
            retried > 0,
            "no invocation failed: the faults did not reach the handler"
        );
        assert!(
            self.counts.reingested_records > 0,
            "nothing was re-ingested: PutRecordBatch was not exercised"
        );
    }
}

/// `1234567` as `1,234,567`.
fn n(value: u64) -> String {
    let digits = value.to_string();
    let mut out = String::new();
    for (i, c) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(c);
    }
    out
}

impl fmt::Display for Report {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let c = &self.counts;
        let first = |mode| c.invocations.get(&mode).copied().unwrap_or(0);
        let direct = first(Mode::Direct);
        let plan_firehose = (self.plan.invocations - self.plan.invocations / 2) as u64;
        writeln!(
            f,
            "soak: {} invocations ({} direct, {} Firehose), then {} Firehose invocations of {} records back from the delivery stream in {} round(s); {} execution environments; fault rate {:.0}%, seed {}",
            n(direct + plan_firehose),
            n(direct),
            n(plan_firehose),
            n(first(Mode::Firehose).saturating_sub(plan_firehose)),
            n(c.records_from_stream),
            c.rounds,
            self.plan.workers,
            self.plan.fault_rate * 100.0,
            self.plan.seed
        )?;
        writeln!(
            f,
            "{:<10} {:>12} {:>10} {:>10} {:>12} {:>11} {:>6}",
            "mode", "CloudWatch", "events in", "delivered", "quarantined", "duplicated", "lost"
        )?;
        let mut total = [0u64; 6];
        for ((put, r), mode) in self.groups.iter().zip(["direct", "Firehose"]) {
            let row = [
                *put,
                r.in_cloudwatch,
                r.delivered,
                r.quarantined,
                r.duplicated,
                r.missing,
            ];
            for (t, v) in total.iter_mut().zip(row) {
                *t += v;
            }
            writeln!(
                f,
                "{mode:<10} {:>12} {:>10} {:>10} {:>12} {:>11} {:>6}",
                n(row[0]),
                n(row[1]),
                n(row[2]),
                n(row[3]),
                n(row[4]),
                n(row[5])
            )?;
        }
        writeln!(
            f,
            "{:<10} {:>12} {:>10} {:>10} {:>12} {:>11} {:>6}",
            "total",
            n(total[0]),
            n(total[1]),
            n(total[2]),
            n(total[3]),
            n(total[4]),
            n(total[5])
        )?;
        let read: u64 = self.groups.iter().map(|(_, r)| r.cloudwatch_events).sum();
        writeln!(
            f,
            "  (CloudWatch: audit-stream events put, {} read back by reconcile; events in: those the forwarder keeps or quarantines; delivered, quarantined, duplicated, lost: eks-audit reconcile --verify)",
            n(read)
        )?;
        let k = &self.collect;
        let codes: Vec<String> = k
            .runs
            .exit_codes
            .iter()
            .map(|(code, count)| format!("exit {code}: {count}"))
            .collect();
        writeln!(
            f,
            "collect: {} lines, {} events, {} duplicated, {} lost, against the bucket's {} event objects ({} lines, {} events); {} runs of {} collectors at once ({}), drained {:.1} s after forwarding began; dead-letter queue {}",
            n(k.lines),
            n(k.events),
            n(k.lines - k.events),
            n(k.lost),
            n(k.objects),
            n(k.bucket_lines),
            n(k.bucket_events),
            k.runs.runs,
            crate::COLLECTORS,
            codes.join(", "),
            self.times.collected.as_secs_f64(),
            self.dead_letters
        )?;
        let calls: u64 = self.calls.values().map(|s| s.calls).sum();
        let injected: u64 = self.faults.values().sum();
        let kinds: Vec<String> = Kind::ALL
            .iter()
            .map(|kind| {
                format!(
                    "{} {}",
                    kind.name(),
                    n(self.faults.get(kind).copied().unwrap_or(0))
                )
            })
            .collect();
        let records_failed: u64 = self.calls.values().map(|s| s.records_failed).sum();
        writeln!(
            f,
            "faults: {} of {} calls ({:.1}%): {} ({} records failed)",
            n(injected),
            n(calls),
            100.0 * injected as f64 / calls.max(1) as f64,
            kinds.join(", "),
            n(records_failed)
        )?;
        let operations: Vec<String> = self
            .calls
            .iter()
            .map(|(name, s)| format!("{name} {}", n(s.calls)))
            .collect();
        writeln!(f, "calls: {}", operations.join(", "))?;
        let failed: Vec<String> = c
            .failed_attempts
            .iter()
            .map(|(kind, count)| format!("{kind}: {count}"))
            .collect();
        writeln!(
            f,
            "invocations: {} failed attempt(s), retried by the caller ({}); parked {} (every retry failed), redriven {}, still parked {}; ProcessingFailed {}; {} records re-ingested; Firehose wrote {} objects of {} lines",
            c.failed_attempts.values().sum::<u64>(),
            failed.join("; "),
            c.parked,
            c.redrives,
            self.still_parked,
            c.processing_failed,
            n(c.reingested_records),
            n(c.firehose_objects),
            n(c.firehose_lines)
        )?;
        write!(
            f,
            "wall time: {:.1} s (events into CloudWatch {:.1} s, forwarding {:.1} s of which {:.1} s waiting for the collectors, collect drained at {:.1} s, then reconcile)",
            self.times.total.as_secs_f64(),
            self.times.logged.as_secs_f64(),
            self.times.forwarded.as_secs_f64(),
            self.paced.as_secs_f64(),
            self.times.collected.as_secs_f64()
        )
    }
}
