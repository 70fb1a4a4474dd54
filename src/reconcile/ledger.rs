//! The comparison of `eks-audit reconcile`, per UTC hour: the keys of the events CloudWatch
//! holds against the lines found in the bucket, and the report.
//!
//! Each hour keeps the keys CloudWatch holds, sorted, with a found flag each: 17 bytes per
//! event once CloudWatch is read ([`Ledger::seal`]). Lines are matched against them by binary
//! search and not kept, except the rare ones CloudWatch does not hold. README "Proving nothing
//! was lost" has the measurement.

use std::io::Write;

use serde::Serialize;

use super::events::{Expected, Found, Key};
use super::window::{Window, format_time};

/// How an hour was checked.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Checked {
    /// Every object that may hold its events was downloaded and its lines compared by key.
    Objects,
    /// The objects' `x-amz-meta-events` counts agreed with CloudWatch: nothing was
    /// downloaded, and a missing event and a duplicated one would cancel out.
    Metadata,
}

/// The events CloudWatch holds for one hour on one side (delivered, or quarantined), and
/// which of them were found.
#[derive(Debug, Default)]
struct Side {
    /// Keys of the events the forwarder should have written; sorted once CloudWatch is read.
    expected: Vec<Key>,
    /// One flag per key of `expected`: whether a line of it was found.
    found: Vec<bool>,
    /// Whether `expected` is sorted and `found` allocated.
    sealed: bool,
    /// Lines found (copies included).
    lines: u64,
    /// Extra copies of keys CloudWatch holds.
    duplicated: u64,
    /// Keys found that CloudWatch does not hold for the hour, one per line: rare, so kept.
    unexpected: Vec<Key>,
    /// Lines found that name no event.
    unidentified: u64,
}

impl Side {
    /// Sorts the keys, gives back their vector's spare capacity and allocates the found
    /// flags: from here on the side costs 17 bytes per event.
    fn seal(&mut self) {
        if !self.sealed {
            self.expected.sort_unstable();
            self.expected.shrink_to_fit();
            self.found = vec![false; self.expected.len()];
            self.sealed = true;
        }
    }

    /// A line of `key` (or of no key) was found: marks the first copy of the key not yet
    /// found, else counts a duplicate, else an unexpected line.
    fn found(&mut self, key: Option<Key>) {
        self.seal();
        self.lines += 1;
        let Some(key) = key else {
            self.unidentified += 1;
            return;
        };
        let first = self.expected.partition_point(|k| *k < key);
        let mut at = first;
        while self.expected.get(at) == Some(&key) {
            if !self.found[at] {
                self.found[at] = true;
                return;
            }
            at += 1;
        }
        if at > first {
            self.duplicated += 1;
        } else {
            self.unexpected.push(key);
        }
    }

    /// (missing, duplicated, unexpected): copies CloudWatch holds that were not found; extra
    /// copies found; distinct keys found that CloudWatch lacks, plus lines naming no event
    /// (their extra copies count as duplicated).
    fn difference(mut self) -> (u64, u64, u64) {
        self.seal();
        let missing = self.found.iter().filter(|found| !**found).count() as u64;
        self.unexpected.sort_unstable();
        let total = self.unexpected.len() as u64;
        self.unexpected.dedup();
        let distinct = self.unexpected.len() as u64;
        (
            missing,
            self.duplicated + (total - distinct),
            distinct + self.unidentified,
        )
    }
}

/// One hour's account.
#[derive(Debug, Default)]
struct Hour {
    /// Events to deliver, and the event lines found.
    events: Side,
    /// Events to quarantine, and the quarantine lines found.
    quarantine: Side,
    /// Set when the hour was settled by object metadata: (events, quarantined events).
    by_metadata: Option<(u64, u64)>,
}

/// Both sides of the comparison, per hour of the window.
#[derive(Debug)]
pub struct Ledger {
    window: Window,
    hours: Vec<Hour>,
    /// Lines found that are not JSON objects of a known shape.
    unreadable_lines: u64,
}

impl Ledger {
    /// An empty ledger of every hour of `window`.
    pub fn new(window: Window) -> Ledger {
        Ledger {
            window,
            hours: (0..window.hour_count()).map(|_| Hour::default()).collect(),
            unreadable_lines: 0,
        }
    }

    /// The window.
    pub fn window(&self) -> &Window {
        &self.window
    }

    /// Counts a CloudWatch event in its hour; ignored outside the window. Every CloudWatch
    /// event comes before the first line found (see [`Ledger::seal`]).
    pub fn expect(&mut self, expected: Expected) {
        let (time, key, quarantine) = match expected {
            Expected::Delivered { time, key } => (time, key, false),
            Expected::Quarantined { time, key } => (time, key, true),
            Expected::Dropped | Expected::Timeless => return,
        };
        if let Some(index) = self.window.index_of(time) {
            let hour = &mut self.hours[index];
            let side = if quarantine {
                &mut hour.quarantine
            } else {
                &mut hour.events
            };
            debug_assert!(!side.sealed, "CloudWatch events come before lines");
            side.expected.push(key);
        }
    }

    /// Ends the CloudWatch side: sorts each hour's keys and trims their vectors to size, so
    /// the lines found are matched by binary search and memory is 17 bytes per event
    /// (a key and a found flag). Lines found before this seal their hour themselves.
    pub fn seal(&mut self) {
        for hour in &mut self.hours {
            hour.events.seal();
            hour.quarantine.seal();
        }
    }

    /// Counts an object line in its hour; ignored outside the window, in an hour settled by
    /// metadata, or without a time.
    pub fn found(&mut self, found: Found) {
        let (time, key, quarantine) = match found {
            Found::Event { time, key } => (time, key, false),
            Found::Quarantined { time, key } => (time, key, true),
            Found::Salvaged => return,
            Found::Unreadable => {
                self.unreadable_lines += 1;
                return;
            }
        };
        let Some(index) = time.and_then(|t| self.window.index_of(t)) else {
            return;
        };
        let hour = &mut self.hours[index];
        if hour.by_metadata.is_some() {
            return;
        }
        if quarantine {
            hour.quarantine.found(key);
        } else {
            hour.events.found(key);
        }
    }

    /// How many events CloudWatch holds for hour `index` that the forwarder should have
    /// delivered, and quarantined.
    pub fn expected_counts(&self, index: usize) -> (u64, u64) {
        let hour = &self.hours[index];
        (
            hour.events.expected.len() as u64,
            hour.quarantine.expected.len() as u64,
        )
    }

    /// Settles hour `index` by the objects' metadata when it may: the hour lies wholly in the
    /// window and the `x-amz-meta-events` counts of its event objects (`events`) and of its
    /// quarantine objects (`quarantined`) equal what CloudWatch holds. Returns whether it did;
    /// the hour's objects need not be downloaded then.
    pub fn settle_by_metadata(&mut self, index: usize, events: u64, quarantined: u64) -> bool {
        let agrees =
            self.window.is_whole(index) && self.expected_counts(index) == (events, quarantined);
        if agrees {
            let hour = &mut self.hours[index];
            hour.by_metadata = Some((events, quarantined));
            // Nothing else will be compared: the keys are not needed any more.
            hour.events = Side::default();
            hour.quarantine = Side::default();
        }
        agrees
    }

    /// Whether hour `index` was settled by metadata.
    pub fn is_settled(&self, index: usize) -> bool {
        self.hours[index].by_metadata.is_some()
    }

    /// The comparison, hour by hour, and the count of unreadable lines.
    pub fn finish(self) -> (Vec<Row>, u64) {
        let window = self.window;
        let rows = self
            .hours
            .into_iter()
            .enumerate()
            .map(|(index, hour)| hour.row(format_time(window.hour(index))))
            .collect();
        (rows, self.unreadable_lines)
    }
}

impl Hour {
    fn row(self, hour: String) -> Row {
        if let Some((events, quarantined)) = self.by_metadata {
            return Row {
                hour,
                in_cloudwatch: events + quarantined,
                delivered: events,
                quarantined,
                missing: 0,
                duplicated: 0,
                unexpected: 0,
                checked: Checked::Metadata,
            };
        }
        let in_cloudwatch = (self.events.expected.len() + self.quarantine.expected.len()) as u64;
        let (delivered, quarantined) = (self.events.lines, self.quarantine.lines);
        let events = self.events.difference();
        let quarantine = self.quarantine.difference();
        Row {
            hour,
            in_cloudwatch,
            delivered,
            quarantined,
            missing: events.0 + quarantine.0,
            duplicated: events.1 + quarantine.1,
            unexpected: events.2 + quarantine.2,
            checked: Checked::Objects,
        }
    }
}

/// One hour of the report.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Row {
    /// The hour's beginning, `2024-05-21T10:00:00Z`.
    pub hour: String,
    /// Events of the hour in the cluster's audit streams that the forwarder keeps or
    /// quarantines (the stage and URI filter applied): what the bucket should account for.
    pub in_cloudwatch: u64,
    /// Event lines of the hour found in the bucket (copies included).
    pub delivered: u64,
    /// Quarantine lines of the hour found in the bucket (copies included).
    pub quarantined: u64,
    /// Events in CloudWatch found neither delivered nor quarantined.
    pub missing: u64,
    /// Extra copies of events found more than once.
    pub duplicated: u64,
    /// Distinct lines found that CloudWatch does not hold for the hour (other settings, events
    /// outside what was read, lines naming no event).
    pub unexpected: u64,
    /// How the hour was checked.
    pub checked: Checked,
}

/// Every count of the report, summed over hours.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct Totals {
    /// Sum of [`Row::in_cloudwatch`].
    pub in_cloudwatch: u64,
    /// Sum of [`Row::delivered`].
    pub delivered: u64,
    /// Sum of [`Row::quarantined`].
    pub quarantined: u64,
    /// Sum of [`Row::missing`].
    pub missing: u64,
    /// Sum of [`Row::duplicated`].
    pub duplicated: u64,
    /// Sum of [`Row::unexpected`].
    pub unexpected: u64,
}

impl Totals {
    /// The sums of `rows`.
    pub fn of(rows: &[Row]) -> Totals {
        rows.iter().fold(Totals::default(), |t, r| Totals {
            in_cloudwatch: t.in_cloudwatch + r.in_cloudwatch,
            delivered: t.delivered + r.delivered,
            quarantined: t.quarantined + r.quarantined,
            missing: t.missing + r.missing,
            duplicated: t.duplicated + r.duplicated,
            unexpected: t.unexpected + r.unexpected,
        })
    }
}

/// What was read to reach the verdict.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct Reads {
    /// CloudWatch events read (every stream of the audit prefix, the window's margins
    /// included).
    pub cloudwatch_events: u64,
    /// `FilterLogEvents` pages read.
    pub cloudwatch_pages: u64,
    /// Objects listed in the folders that may hold the window's events.
    pub objects_listed: u64,
    /// Objects whose metadata was read (`HeadObject`).
    pub objects_headed: u64,
    /// Objects downloaded and read line by line.
    pub objects_downloaded: u64,
    /// Objects that could not be downloaded or decoded (logged); their events show as missing.
    pub objects_unreadable: u64,
    /// Lines that are not JSON objects of a known shape.
    pub lines_unreadable: u64,
}

/// The whole answer of `eks-audit reconcile`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Report {
    /// The cluster.
    pub cluster: String,
    /// Its log group.
    pub log_group: String,
    /// The bucket.
    pub bucket: String,
    /// The key prefix.
    pub prefix: String,
    /// The window's beginning (the start of `--since`'s hour).
    pub since: String,
    /// The window's end, exclusive (`--until`).
    pub until: String,
    /// One row per UTC hour.
    pub hours: Vec<Row>,
    /// The sums.
    pub total: Totals,
    /// What was read.
    pub reads: Reads,
}

impl Report {
    /// Whether any event is missing: the exit code's question.
    pub fn is_missing_events(&self) -> bool {
        self.total.missing > 0
    }

    /// The report as an aligned text table, one line per hour, a total, and what was read.
    pub fn write_table(&self, out: &mut impl Write) -> std::io::Result<()> {
        writeln!(
            out,
            "{:<22}{:>15}{:>12}{:>13}{:>9}{:>12}{:>12}  checked",
            "hour (UTC)",
            "in CloudWatch",
            "delivered",
            "quarantined",
            "missing",
            "duplicated",
            "unexpected"
        )?;
        for row in &self.hours {
            let checked = match row.checked {
                Checked::Objects => "objects",
                Checked::Metadata => "metadata",
            };
            writeln!(
                out,
                "{:<22}{:>15}{:>12}{:>13}{:>9}{:>12}{:>12}  {checked}",
                row.hour,
                row.in_cloudwatch,
                row.delivered,
                row.quarantined,
                row.missing,
                row.duplicated,
                row.unexpected
            )?;
        }
        let t = &self.total;
        writeln!(
            out,
            "{:<22}{:>15}{:>12}{:>13}{:>9}{:>12}{:>12}",
            "total",
            t.in_cloudwatch,
            t.delivered,
            t.quarantined,
            t.missing,
            t.duplicated,
            t.unexpected
        )?;
        let r = &self.reads;
        writeln!(
            out,
            "read: {} CloudWatch events in {} pages from {}; {} objects listed, {} headed, {} downloaded, {} unreadable; {} unreadable lines",
            r.cloudwatch_events,
            r.cloudwatch_pages,
            self.log_group,
            r.objects_listed,
            r.objects_headed,
            r.objects_downloaded,
            r.objects_unreadable,
            r.lines_unreadable
        )
    }
}

#[cfg(test)]
mod tests {
    use time::macros::datetime;

    use super::*;

    #[test]
    fn missing_duplicated_and_unexpected_are_counted_per_copy() {
        // CloudWatch holds 3 twice (the same event logged twice).
        let mut side = Side {
            expected: vec![3, 1, 4, 3, 2],
            ..Side::default()
        };
        for key in [4, 2, 2, 2, 3, 9, 9] {
            side.found(Some(key));
        }
        side.found(None);
        assert_eq!(side.lines, 8);
        // 1 never came, 3 came once of twice; two extra copies of 2, one of 9; 9 and the
        // line naming nothing are unexpected.
        assert_eq!(side.difference(), (2, 3, 2));
        assert_eq!(Side::default().difference(), (0, 0, 0));
    }

    fn window() -> Window {
        Window::new(
            datetime!(2024-05-21 09:00 UTC),
            datetime!(2024-05-21 10:30 UTC),
        )
        .unwrap()
    }

    #[test]
    fn rows_compare_each_hour_and_metadata_settles_only_whole_hours() {
        let mut ledger = Ledger::new(window());
        let at = |t| Some(t);
        for (time, key) in [
            (datetime!(2024-05-21 09:10 UTC), 1),
            (datetime!(2024-05-21 09:20 UTC), 2),
            (datetime!(2024-05-21 10:10 UTC), 3),
            // After --until: not counted.
            (datetime!(2024-05-21 10:40 UTC), 4),
        ] {
            ledger.expect(Expected::Delivered { time, key });
        }
        ledger.expect(Expected::Quarantined {
            time: datetime!(2024-05-21 10:00 UTC),
            key: 5,
        });
        assert_eq!(ledger.expected_counts(0), (2, 0));
        assert_eq!(ledger.expected_counts(1), (1, 1));
        assert!(!ledger.settle_by_metadata(0, 3, 0), "counts differ");
        assert!(!ledger.settle_by_metadata(1, 1, 1), "10:00 is cut at 10:30");
        for found in [
            Found::Event {
                time: at(datetime!(2024-05-21 09:10 UTC)),
                key: Some(1),
            },
            Found::Event {
                time: at(datetime!(2024-05-21 10:10 UTC)),
                key: Some(3),
            },
            Found::Event {
                time: at(datetime!(2024-05-21 10:10 UTC)),
                key: Some(3),
            },
            Found::Event {
                time: at(datetime!(2024-05-21 10:45 UTC)),
                key: Some(4),
            },
            Found::Event {
                time: None,
                key: Some(7),
            },
            Found::Quarantined {
                time: at(datetime!(2024-05-21 10:00 UTC)),
                key: Some(5),
            },
            Found::Unreadable,
        ] {
            ledger.found(found);
        }
        let (rows, unreadable) = ledger.finish();
        assert_eq!(unreadable, 1);
        let row = |hour: &str, c, d, q, m, dup| Row {
            hour: hour.to_owned(),
            in_cloudwatch: c,
            delivered: d,
            quarantined: q,
            missing: m,
            duplicated: dup,
            unexpected: 0,
            checked: Checked::Objects,
        };
        assert_eq!(
            rows,
            [
                row("2024-05-21T09:00:00Z", 2, 1, 0, 1, 0),
                row("2024-05-21T10:00:00Z", 2, 2, 1, 0, 1),
            ]
        );

        let mut ledger = Ledger::new(window());
        ledger.expect(Expected::Delivered {
            time: datetime!(2024-05-21 09:10 UTC),
            key: 1,
        });
        assert!(ledger.settle_by_metadata(0, 1, 0));
        // A settled hour ignores the lines of objects read for other hours.
        ledger.found(Found::Event {
            time: at(datetime!(2024-05-21 09:10 UTC)),
            key: Some(8),
        });
        let (rows, _) = ledger.finish();
        assert_eq!(
            rows[0],
            Row {
                checked: Checked::Metadata,
                ..row("2024-05-21T09:00:00Z", 1, 1, 0, 0, 0)
            }
        );
    }
}
