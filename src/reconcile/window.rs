//! The window `eks-audit reconcile` checks, its UTC hours, and where each side of the
//! comparison is read from: which CloudWatch timestamps, which S3 folders.

use std::time::Duration;

use time::format_description::well_known::Rfc3339;
use time::macros::format_description;
use time::{OffsetDateTime, UtcOffset};

use crate::subscribe::check::parse_duration;

/// An hour.
const HOUR: time::Duration = time::Duration::HOUR;

/// How much earlier than its audit time an event's CloudWatch timestamp may be: clock skew
/// between the API server and CloudWatch Logs. CloudWatch is read from this much before the
/// window.
pub const EARLY: time::Duration = time::Duration::minutes(5);

/// How much later than its audit time (`requestReceivedTimestamp`) an event's CloudWatch
/// timestamp may be: an event is logged when its request reaches the stage, and a watch that
/// began in the window ends up to an hour later (the API server's longest request timeout).
/// CloudWatch is read up to this much after the window.
pub const LATE: time::Duration = time::Duration::HOUR;

/// How much later than its CloudWatch timestamp an event may reach Firehose's bucket: the
/// subscription's delivery and Firehose's buffer (at most 900 s), with margin. Firehose folders
/// (by arrival hour, contract §6.3) are read up to [`LATE`] plus this after the window.
pub const FIREHOSE_DELAY: time::Duration = time::Duration::HOUR;

/// A point in time as `--since` and `--until` take it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum When {
    /// This long before now (`2h`, `90m`, `1d`; `now` is zero).
    Ago(Duration),
    /// This time (RFC 3339, any offset).
    At(OffsetDateTime),
}

impl When {
    /// The time this names, `now` being now.
    pub fn resolve(self, now: OffsetDateTime) -> OffsetDateTime {
        match self {
            When::Ago(ago) => now - ago,
            When::At(time) => time,
        }
    }
}

/// A duration back from now (`90s`, `15m`, `2h`, `1d`, `now`) or an RFC 3339 time
/// (`2024-05-21T10:00:00Z`).
pub fn parse_when(text: &str) -> Result<When, String> {
    let text = text.trim();
    if text.eq_ignore_ascii_case("now") {
        return Ok(When::Ago(Duration::ZERO));
    }
    if let Ok(ago) = parse_duration(text) {
        return Ok(When::Ago(ago));
    }
    OffsetDateTime::parse(text, &Rfc3339)
        .ok()
        .and_then(|t| t.checked_to_offset(UtcOffset::UTC))
        .map(When::At)
        .ok_or_else(|| {
            format!(
                "{text:?} is neither a duration back from now (90s, 15m, 2h, 1d, now) nor an RFC 3339 time (2024-05-21T10:00:00Z)"
            )
        })
}

/// The UTC hours `[start, end)`: `start` is the first hour's beginning, `end` any time after
/// it (the last hour may be cut short).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Window {
    start: OffsetDateTime,
    end: OffsetDateTime,
}

impl Window {
    /// From the beginning of `since`'s UTC hour to `until` (exclusive). Refused when that is
    /// empty or longer than [`Window::MAX_HOURS`].
    pub fn new(since: OffsetDateTime, until: OffsetDateTime) -> Result<Window, String> {
        let start = hour_of(since.to_offset(UtcOffset::UTC));
        let end = until.to_offset(UtcOffset::UTC);
        if end <= start {
            return Err(format!(
                "the window is empty: --until ({}) is not after the start of --since's hour ({})",
                format_time(end),
                format_time(start)
            ));
        }
        let window = Window { start, end };
        if window.hour_count() > Window::MAX_HOURS {
            return Err(format!(
                "the window spans {} hours; at most {} (31 days) at a time",
                window.hour_count(),
                Window::MAX_HOURS
            ));
        }
        Ok(window)
    }

    /// The most hours one run checks: 31 days.
    pub const MAX_HOURS: usize = 31 * 24;

    /// The beginning of the first hour.
    pub fn start(&self) -> OffsetDateTime {
        self.start
    }

    /// The end of the window, exclusive.
    pub fn end(&self) -> OffsetDateTime {
        self.end
    }

    /// How many UTC hours the window touches.
    pub fn hour_count(&self) -> usize {
        let nanos = (self.end - self.start).whole_nanoseconds().max(0) as u128;
        nanos.div_ceil(HOUR.whole_nanoseconds() as u128) as usize
    }

    /// The beginning of hour `index`.
    pub fn hour(&self, index: usize) -> OffsetDateTime {
        self.start + HOUR * index as u32
    }

    /// The index of the hour `time` falls in; `None` outside the window.
    pub fn index_of(&self, time: OffsetDateTime) -> Option<usize> {
        (self.start <= time && time < self.end).then(|| (time - self.start).whole_hours() as usize)
    }

    /// Whether hour `index` lies wholly in the window (the last one may be cut short).
    pub fn is_whole(&self, index: usize) -> bool {
        self.hour(index) + HOUR <= self.end
    }

    /// The CloudWatch timestamps to read, epoch milliseconds, both ends included: [`EARLY`]
    /// before the window to [`LATE`] after it.
    pub fn cloudwatch_range(&self) -> (i64, i64) {
        (
            millis(self.start - EARLY),
            millis(self.end + LATE).saturating_sub(1),
        )
    }

    /// The arrival hours of the Firehose folders to read: from the hour before the window to
    /// [`LATE`] plus [`FIREHOSE_DELAY`] after it.
    pub fn firehose_hours(&self) -> Vec<OffsetDateTime> {
        let first = self.start - HOUR;
        let last = hour_of(self.end + LATE + FIREHOSE_DELAY);
        let mut hours = Vec::new();
        let mut hour = first;
        while hour <= last {
            hours.push(hour);
            hour += HOUR;
        }
        hours
    }
}

/// The beginning of `time`'s hour.
pub fn hour_of(time: OffsetDateTime) -> OffsetDateTime {
    time.replace_minute(0)
        .and_then(|t| t.replace_second(0))
        .and_then(|t| t.replace_nanosecond(0))
        .unwrap_or(time)
}

/// Epoch milliseconds.
fn millis(time: OffsetDateTime) -> i64 {
    (time.unix_timestamp_nanos() / 1_000_000) as i64
}

/// A CloudWatch timestamp (epoch milliseconds) as a time; `None` outside the years 0–9999.
pub fn from_millis(ms: i64) -> Option<OffsetDateTime> {
    OffsetDateTime::from_unix_timestamp_nanos(i128::from(ms) * 1_000_000)
        .ok()
        .filter(|t| (0..=9999).contains(&t.year()))
}

/// `2024-05-21T10:00:00Z`.
pub fn format_time(time: OffsetDateTime) -> String {
    time.to_offset(UtcOffset::UTC)
        .format(format_description!(
            "[year]-[month]-[day]T[hour]:[minute]:[second]Z"
        ))
        .unwrap_or_else(|_| time.to_string())
}

/// `dt=2024-05-21/hour=10/`, the date and hour folders of every layout.
pub fn date_hour_folder(hour: OffsetDateTime) -> String {
    hour.format(format_description!("dt=[year]-[month]-[day]/hour=[hour]/"))
        .unwrap_or_default()
}

/// Where each kind of object of one cluster is in the bucket (contract §6).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Layout {
    /// `<prefix>/`, or empty for an empty prefix.
    base: String,
    cluster: String,
}

impl Layout {
    /// Objects of `cluster` under `prefix` (leading and trailing `/` ignored). `cluster` is a
    /// valid EKS cluster name, which keys hold as is.
    pub fn new(prefix: &str, cluster: &str) -> Layout {
        let prefix = prefix.trim_matches('/');
        let base = if prefix.is_empty() {
            String::new()
        } else {
            format!("{prefix}/")
        };
        Layout {
            base,
            cluster: cluster.to_owned(),
        }
    }

    /// Direct-mode event objects of the events of `hour` (contract §6.1).
    pub fn direct_folder(&self, hour: OffsetDateTime) -> String {
        format!(
            "{}cluster={}/{}",
            self.base,
            self.cluster,
            date_hour_folder(hour)
        )
    }

    /// Quarantine objects of the CloudWatch hour `hour` (contract §6.2).
    pub fn quarantine_folder(&self, hour: OffsetDateTime) -> String {
        format!(
            "{}quarantine/cluster={}/{}",
            self.base,
            self.cluster,
            date_hour_folder(hour)
        )
    }

    /// The prefix under which Firehose's `account=<account>/` folders are (contract §6.3), to
    /// list with the delimiter `/`.
    pub fn firehose_accounts(&self) -> String {
        format!("{}cluster={}/account=", self.base, self.cluster)
    }

    /// A Firehose folder of arrival hour `hour`, under one account folder as listed
    /// (`…/account=<account>/`).
    pub fn firehose_folder(account_folder: &str, hour: OffsetDateTime) -> String {
        format!("{account_folder}{}", date_hour_folder(hour))
    }
}

#[cfg(test)]
mod tests {
    use time::macros::datetime;

    use super::*;

    #[test]
    fn since_and_until_take_durations_and_times() {
        let now = datetime!(2024-05-21 10:37:12 UTC);
        let at = |text: &str| parse_when(text).map(|w| w.resolve(now));
        assert_eq!(at("2h"), Ok(datetime!(2024-05-21 08:37:12 UTC)));
        assert_eq!(at("now"), Ok(now));
        assert_eq!(at("1d"), Ok(datetime!(2024-05-20 10:37:12 UTC)));
        assert_eq!(
            at("2024-05-21T12:00:00+02:00"),
            Ok(datetime!(2024-05-21 10:00:00 UTC))
        );
        for bad in ["", "yesterday", "2024-05-21", "-1h"] {
            assert!(parse_when(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn the_window_starts_on_the_hour_and_may_end_within_one() {
        let window = Window::new(
            datetime!(2024-05-21 08:37:12 UTC),
            datetime!(2024-05-21 10:22:00 UTC),
        )
        .unwrap();
        assert_eq!(window.start(), datetime!(2024-05-21 08:00 UTC));
        assert_eq!(window.hour_count(), 3);
        assert_eq!(window.hour(2), datetime!(2024-05-21 10:00 UTC));
        assert!(window.is_whole(1) && !window.is_whole(2));
        assert_eq!(window.index_of(datetime!(2024-05-21 07:59:59 UTC)), None);
        assert_eq!(window.index_of(datetime!(2024-05-21 09:59:59 UTC)), Some(1));
        assert_eq!(window.index_of(datetime!(2024-05-21 10:21:59 UTC)), Some(2));
        assert_eq!(window.index_of(datetime!(2024-05-21 10:22:00 UTC)), None);
        // 07:55 to 11:22, the last millisecond included.
        assert_eq!(
            window.cloudwatch_range(),
            (1_716_278_100_000, 1_716_290_519_999)
        );
        // Arrival hours 07 (the hour before) to 12 (10:22 + 2 h).
        let hours = window.firehose_hours();
        assert_eq!(
            (hours[0], hours[hours.len() - 1], hours.len()),
            (
                datetime!(2024-05-21 07:00 UTC),
                datetime!(2024-05-21 12:00 UTC),
                6
            )
        );
    }

    #[test]
    fn empty_and_overlong_windows_are_refused() {
        let t = datetime!(2024-05-21 08:37:12 UTC);
        assert!(Window::new(t, datetime!(2024-05-21 08:00 UTC)).is_err());
        assert!(Window::new(t, t + time::Duration::days(32)).is_err());
        assert_eq!(
            Window::new(t, datetime!(2024-05-21 08:00:01 UTC))
                .unwrap()
                .hour_count(),
            1
        );
    }

    #[test]
    fn folders_follow_the_contract_layouts() {
        let hour = datetime!(2024-05-21 09:00 UTC);
        let layout = Layout::new("/eks-audit/", "prod");
        assert_eq!(
            layout.direct_folder(hour),
            "eks-audit/cluster=prod/dt=2024-05-21/hour=09/"
        );
        assert_eq!(
            layout.quarantine_folder(hour),
            "eks-audit/quarantine/cluster=prod/dt=2024-05-21/hour=09/"
        );
        assert_eq!(
            layout.firehose_accounts(),
            "eks-audit/cluster=prod/account="
        );
        assert_eq!(
            Layout::firehose_folder("eks-audit/cluster=prod/account=1/", hour),
            "eks-audit/cluster=prod/account=1/dt=2024-05-21/hour=09/"
        );
        assert_eq!(
            Layout::new("", "prod").direct_folder(hour),
            "cluster=prod/dt=2024-05-21/hour=09/"
        );
    }
}
