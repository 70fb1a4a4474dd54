//! `eks-audit subscribe --check`: whether a cluster's audit logs are flowing, decided from what
//! CloudWatch Logs reports (pure: the caller passes the time).
//!
//! Flowing means: a `kube-apiserver-audit-*` stream received an event within the maximum age,
//! and a subscription filter delivers the log group (ours by name, or, when a destination is
//! given, any filter delivering there).
//!
//! A stream's `lastEventTimestamp` is updated "on an eventual consistency basis, typically in
//! less than an hour", so the later of it and `lastIngestionTime` is used: either alone could
//! call a busy stream stale.
//! <https://docs.aws.amazon.com/AmazonCloudWatchLogs/latest/APIReference/API_LogStream.html>

use std::fmt;
use std::time::Duration;

use super::plan::FilterSpec;

/// A `kube-apiserver-audit-*` stream as `DescribeLogStreams` reports it (epoch milliseconds).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct StreamActivity {
    pub name: String,
    pub last_event_ms: Option<i64>,
    pub last_ingestion_ms: Option<i64>,
}

impl StreamActivity {
    fn latest_ms(&self) -> Option<i64> {
        self.last_event_ms.max(self.last_ingestion_ms)
    }
}

/// What a log group holds: its audit streams and its subscription filters.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(crate) struct Observed {
    pub audit_streams: Vec<StreamActivity>,
    pub filters: Vec<FilterSpec>,
}

/// What the check looks for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Expected {
    /// The name of our subscription filter (`--filter-name`).
    pub filter_name: String,
    /// When given, a filter of another name delivering here counts too (the SAM stack's), and
    /// ours delivering elsewhere does not.
    pub destination_arn: Option<String>,
    /// How old the latest audit event may be for the logs to count as flowing (`--max-age`).
    pub max_age: Duration,
}

/// Why a log group is not flowing.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Problem {
    /// No `kube-apiserver-audit-*` stream: audit logging is off, or was never on.
    NoAuditStream,
    /// Audit streams exist but report no event at all.
    NoAuditEvent,
    /// The latest audit event is older than the maximum age.
    Stale {
        /// How long ago the latest audit event was.
        age: Duration,
        /// The maximum age it exceeds.
        max_age: Duration,
    },
    /// No filter of our name (nor, with a destination, one delivering there).
    FilterMissing {
        /// The filter name looked for.
        name: String,
    },
    /// Our filter delivers somewhere else than the expected destination.
    FilterElsewhere {
        /// Our filter's name.
        name: String,
        /// Where it delivers instead.
        destination_arn: String,
    },
}

impl fmt::Display for Problem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Problem::NoAuditStream => {
                f.write_str("no kube-apiserver-audit-* log stream (audit logging off?)")
            }
            Problem::NoAuditEvent => {
                f.write_str("kube-apiserver-audit-* log streams hold no event")
            }
            Problem::Stale { age, max_age } => {
                write!(
                    f,
                    "last audit event {} ago (max age {})",
                    human(*age),
                    human(*max_age)
                )
            }
            Problem::FilterMissing { name } => write!(f, "subscription filter {name} missing"),
            Problem::FilterElsewhere {
                name,
                destination_arn,
            } => {
                write!(
                    f,
                    "subscription filter {name} delivers to {destination_arn}"
                )
            }
        }
    }
}

/// The verdict on one log group.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Health {
    /// The audit stream with the latest event, and that event's age.
    pub latest: Option<(String, Duration)>,
    /// The filter that delivers the log group, when there is one.
    pub filter: Option<FilterSpec>,
    /// Why the log group is not flowing; empty when it is.
    pub problems: Vec<Problem>,
}

impl Health {
    /// Whether audit logs flow: no problem found.
    pub fn is_flowing(&self) -> bool {
        self.problems.is_empty()
    }
}

impl fmt::Display for Health {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(if self.is_flowing() {
            "flowing"
        } else {
            "NOT flowing"
        })?;
        let mut parts: Vec<String> = self.problems.iter().map(ToString::to_string).collect();
        if let Some((stream, age)) = &self.latest
            && !self
                .problems
                .iter()
                .any(|p| matches!(p, Problem::Stale { .. }))
        {
            parts.push(format!("last audit event {} ago in {stream}", human(*age)));
        }
        if let Some(filter) = &self.filter {
            parts.push(format!(
                "filter {} -> {}",
                filter.name, filter.destination_arn
            ));
        }
        if !parts.is_empty() {
            write!(f, ": {}", parts.join("; "))?;
        }
        Ok(())
    }
}

/// Judges a log group that exists, at `now_ms` (epoch milliseconds).
pub(crate) fn assess(observed: &Observed, expected: &Expected, now_ms: i64) -> Health {
    let mut problems = Vec::new();
    let latest = observed
        .audit_streams
        .iter()
        .filter_map(|s| Some((s, s.latest_ms()?)))
        .max_by_key(|(_, at)| *at)
        .map(|(s, at)| {
            (
                s.name.clone(),
                Duration::from_millis(now_ms.saturating_sub(at).max(0).unsigned_abs()),
            )
        });
    match &latest {
        _ if observed.audit_streams.is_empty() => problems.push(Problem::NoAuditStream),
        None => problems.push(Problem::NoAuditEvent),
        Some((_, age)) if *age > expected.max_age => {
            problems.push(Problem::Stale {
                age: *age,
                max_age: expected.max_age,
            });
        }
        Some(_) => {}
    }
    let ours = observed
        .filters
        .iter()
        .find(|f| f.name == expected.filter_name);
    let filter = match (&expected.destination_arn, ours) {
        (Some(destination), Some(ours)) if ours.destination_arn != *destination => {
            problems.push(Problem::FilterElsewhere {
                name: ours.name.clone(),
                destination_arn: ours.destination_arn.clone(),
            });
            None
        }
        (_, Some(ours)) => Some(ours.clone()),
        (Some(destination), None) => observed
            .filters
            .iter()
            .find(|f| f.destination_arn == *destination)
            .cloned(),
        (None, None) => None,
    };
    if filter.is_none() && ours.is_none() {
        problems.push(Problem::FilterMissing {
            name: expected.filter_name.clone(),
        });
    }
    Health {
        latest,
        filter,
        problems,
    }
}

/// A duration as operators write it: `90s`, `15m`, `2h`, `1d`, or a sum (`1h30m`). A bare number
/// is seconds.
pub fn parse_duration(text: &str) -> Result<Duration, String> {
    let invalid = || format!("{text:?} is not a duration (examples: 90s, 15m, 2h, 1h30m, 1d)");
    let text = text.trim();
    if let Ok(seconds) = text.parse::<u64>() {
        return Ok(Duration::from_secs(seconds));
    }
    let mut total = Duration::ZERO;
    let mut rest = text;
    while !rest.is_empty() {
        let digits = rest
            .find(|c: char| !c.is_ascii_digit())
            .ok_or_else(invalid)?;
        let number: u64 = rest[..digits].parse().map_err(|_| invalid())?;
        let unit_len = rest[digits..]
            .find(|c: char| c.is_ascii_digit())
            .unwrap_or(rest.len() - digits);
        let seconds = match &rest[digits..digits + unit_len] {
            "s" => 1,
            "m" => 60,
            "h" => 3600,
            "d" => 86_400,
            _ => return Err(invalid()),
        };
        total += Duration::from_secs(number.checked_mul(seconds).ok_or_else(invalid)?);
        rest = &rest[digits + unit_len..];
    }
    if text.is_empty() {
        Err(invalid())
    } else {
        Ok(total)
    }
}

/// A duration in its two largest units: `45s`, `12m`, `3h5m`, `2d4h`.
pub fn human(duration: Duration) -> String {
    let s = duration.as_secs();
    match s {
        0..60 => format!("{s}s"),
        60..3600 => format!("{}m", s / 60),
        3600..86_400 => match (s / 3600, s % 3600 / 60) {
            (h, 0) => format!("{h}h"),
            (h, m) => format!("{h}h{m}m"),
        },
        _ => match (s / 86_400, s % 86_400 / 3600) {
            (d, 0) => format!("{d}d"),
            (d, h) => format!("{d}d{h}h"),
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const NOW: i64 = 1_716_300_000_000;
    const MINUTE: i64 = 60_000;
    const STREAM: &str = "arn:aws:firehose:us-east-1:111122223333:deliverystream/eks-audit";

    fn stream(
        name: &str,
        last_event_ago: Option<i64>,
        last_ingestion_ago: Option<i64>,
    ) -> StreamActivity {
        StreamActivity {
            name: name.to_owned(),
            last_event_ms: last_event_ago.map(|ago| NOW - ago),
            last_ingestion_ms: last_ingestion_ago.map(|ago| NOW - ago),
        }
    }

    fn filter(name: &str, destination: &str) -> FilterSpec {
        FilterSpec {
            name: name.to_owned(),
            destination_arn: destination.to_owned(),
            role_arn: None,
            pattern: String::new(),
        }
    }

    fn expected(destination: Option<&str>) -> Expected {
        Expected {
            filter_name: "eks-audit-forwarder".to_owned(),
            destination_arn: destination.map(str::to_owned),
            max_age: Duration::from_secs(15 * 60),
        }
    }

    fn healthy() -> Observed {
        Observed {
            audit_streams: vec![
                stream(
                    "kube-apiserver-audit-old",
                    Some(400 * MINUTE),
                    Some(400 * MINUTE),
                ),
                stream("kube-apiserver-audit-new", Some(2 * MINUTE), Some(MINUTE)),
            ],
            filters: vec![filter("eks-audit-forwarder", STREAM)],
        }
    }

    #[test]
    fn a_recent_audit_event_and_our_filter_is_flowing() {
        let health = assess(&healthy(), &expected(Some(STREAM)), NOW);
        assert!(health.is_flowing(), "{health}");
        assert_eq!(
            health.latest,
            Some((
                "kube-apiserver-audit-new".to_owned(),
                Duration::from_secs(60)
            ))
        );
        assert_eq!(
            health.to_string(),
            format!(
                "flowing: last audit event 1m ago in kube-apiserver-audit-new; filter eks-audit-forwarder -> {STREAM}"
            )
        );
    }

    #[test]
    fn the_later_of_event_and_ingestion_time_counts() {
        // lastEventTimestamp lags up to an hour behind; lastIngestionTime does not.
        let mut observed = healthy();
        observed.audit_streams = vec![stream(
            "kube-apiserver-audit-a",
            Some(50 * MINUTE),
            Some(3 * MINUTE),
        )];
        assert!(assess(&observed, &expected(None), NOW).is_flowing());
        observed.audit_streams = vec![stream("kube-apiserver-audit-a", Some(3 * MINUTE), None)];
        assert!(assess(&observed, &expected(None), NOW).is_flowing());
    }

    #[test]
    fn an_old_last_event_is_stale() {
        let mut observed = healthy();
        observed.audit_streams = vec![stream(
            "kube-apiserver-audit-a",
            Some(185 * MINUTE),
            Some(185 * MINUTE),
        )];
        let health = assess(&observed, &expected(None), NOW);
        assert_eq!(
            health.problems,
            [Problem::Stale {
                age: Duration::from_secs(185 * 60),
                max_age: Duration::from_secs(900)
            }]
        );
        assert_eq!(
            health.to_string(),
            format!(
                "NOT flowing: last audit event 3h5m ago (max age 15m); filter eks-audit-forwarder -> {STREAM}"
            )
        );
    }

    #[test]
    fn a_group_without_audit_streams_is_not_flowing() {
        let observed = Observed {
            audit_streams: vec![],
            filters: vec![filter("eks-audit-forwarder", STREAM)],
        };
        let health = assess(&observed, &expected(None), NOW);
        assert_eq!(health.problems, [Problem::NoAuditStream]);
        assert!(
            health
                .to_string()
                .starts_with("NOT flowing: no kube-apiserver-audit-* log stream")
        );
    }

    #[test]
    fn audit_streams_without_events_are_not_flowing() {
        let observed = Observed {
            audit_streams: vec![stream("kube-apiserver-audit-a", None, None)],
            ..healthy()
        };
        assert_eq!(
            assess(&observed, &expected(None), NOW).problems,
            [Problem::NoAuditEvent]
        );
    }

    #[test]
    fn a_missing_filter_is_not_flowing() {
        let observed = Observed {
            filters: vec![filter("splunk", "arn:aws:lambda:us-east-1:1:function:x")],
            ..healthy()
        };
        let health = assess(&observed, &expected(Some(STREAM)), NOW);
        assert_eq!(
            health.problems,
            [Problem::FilterMissing {
                name: "eks-audit-forwarder".to_owned()
            }]
        );
        assert_eq!(health.filter, None);
    }

    #[test]
    fn with_a_destination_a_filter_of_another_name_delivering_there_counts() {
        let stack = filter("stack-FirehoseSubscriptionprod-1X2Y", STREAM);
        let observed = Observed {
            filters: vec![stack.clone()],
            ..healthy()
        };
        let health = assess(&observed, &expected(Some(STREAM)), NOW);
        assert!(health.is_flowing(), "{health}");
        assert_eq!(health.filter, Some(stack));
        // Without a destination only our name counts.
        assert!(!assess(&observed, &expected(None), NOW).is_flowing());
    }

    #[test]
    fn our_filter_delivering_elsewhere_is_not_flowing() {
        let elsewhere = "arn:aws:firehose:us-east-1:111122223333:deliverystream/old";
        let observed = Observed {
            filters: vec![filter("eks-audit-forwarder", elsewhere)],
            ..healthy()
        };
        let health = assess(&observed, &expected(Some(STREAM)), NOW);
        assert_eq!(
            health.problems,
            [Problem::FilterElsewhere {
                name: "eks-audit-forwarder".to_owned(),
                destination_arn: elsewhere.to_owned()
            }]
        );
        // Without a destination, ours is ours wherever it delivers.
        assert!(assess(&observed, &expected(None), NOW).is_flowing());
    }

    #[test]
    fn every_problem_is_reported() {
        let observed = Observed::default();
        let health = assess(&observed, &expected(None), NOW);
        assert_eq!(health.problems.len(), 2);
        assert_eq!(
            health.to_string(),
            "NOT flowing: no kube-apiserver-audit-* log stream (audit logging off?); subscription filter eks-audit-forwarder missing"
        );
    }

    #[test]
    fn an_event_from_the_future_is_zero_seconds_old() {
        let observed = Observed {
            audit_streams: vec![stream("kube-apiserver-audit-a", Some(-MINUTE), None)],
            ..healthy()
        };
        assert_eq!(
            assess(&observed, &expected(None), NOW).latest.unwrap().1,
            Duration::ZERO
        );
    }

    #[test]
    fn durations_parse_as_operators_write_them() {
        assert_eq!(parse_duration("15m"), Ok(Duration::from_secs(900)));
        assert_eq!(parse_duration("90s"), Ok(Duration::from_secs(90)));
        assert_eq!(parse_duration("2h"), Ok(Duration::from_secs(7200)));
        assert_eq!(parse_duration("1h30m"), Ok(Duration::from_secs(5400)));
        assert_eq!(parse_duration("1d"), Ok(Duration::from_secs(86_400)));
        assert_eq!(parse_duration("600"), Ok(Duration::from_secs(600)));
        for bad in ["", "m", "15x", "1.5h", "-1m", "15 m", "h1"] {
            assert!(parse_duration(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn durations_print_in_two_units() {
        let s = Duration::from_secs;
        assert_eq!(human(s(45)), "45s");
        assert_eq!(human(s(15 * 60 + 59)), "15m");
        assert_eq!(human(s(3600)), "1h");
        assert_eq!(human(s(3 * 3600 + 5 * 60)), "3h5m");
        assert_eq!(human(s(2 * 86_400)), "2d");
        assert_eq!(human(s(2 * 86_400 + 4 * 3600 + 59)), "2d4h");
    }
}
