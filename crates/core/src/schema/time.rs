//! The time of an audit event: when the API server received the request.

use time::format_description::well_known::Rfc3339;
use time::macros::format_description;
use time::{OffsetDateTime, UtcOffset};

use crate::audit::AuditEvent;

/// `requestReceivedTimestamp`, else `stageTimestamp`, else the legacy v1alpha1 `timestamp`,
/// else the CloudWatch event timestamp (contract §4); `None` when none of them is a valid time.
pub fn event_time(event: &AuditEvent<'_>, cloudwatch_ms: Option<i64>) -> Option<OffsetDateTime> {
    [
        &event.request_received_timestamp,
        &event.stage_timestamp,
        &event.timestamp,
    ]
    .into_iter()
    .filter_map(|t| t.as_deref())
    .find_map(|t| OffsetDateTime::parse(t, &Rfc3339).ok().and_then(in_utc))
    .or_else(|| cloudwatch_ms.and_then(from_epoch_millis))
}

/// The time in UTC, if it is one RFC 3339 can write there: `9999-12-31T23:00:00-02:00` is a
/// valid timestamp whose UTC year, 10000, is not (and `time` panics converting it).
fn in_utc(time: OffsetDateTime) -> Option<OffsetDateTime> {
    time.checked_to_offset(UtcOffset::UTC)
        .filter(|t| (0..=9999).contains(&t.year()))
}

/// A CloudWatch timestamp (epoch milliseconds) as a time; `None` when its UTC year is outside
/// 0–9999.
pub(crate) fn from_epoch_millis(ms: i64) -> Option<OffsetDateTime> {
    OffsetDateTime::from_unix_timestamp_nanos(i128::from(ms) * 1_000_000)
        .ok()
        .and_then(in_utc)
}

/// RFC 3339 in UTC with microseconds, the precision of Kubernetes audit timestamps:
/// `2024-05-21T10:00:00.123456Z`. Written digit by digit: the `time` crate's formatter took
/// ~1,500 instructions, once per event.
pub fn rfc3339_utc(time: OffsetDateTime) -> String {
    let time = time.to_offset(UtcOffset::UTC);
    let Some(year) = u32::try_from(time.year()).ok().filter(|&y| y <= 9999) else {
        return formatted(time);
    };
    let mut text = *b"0000-00-00T00:00:00.000000Z";
    let mut put = |at: usize, width: usize, mut value: u32| {
        for digit in text[at..at + width].iter_mut().rev() {
            *digit = b'0' + (value % 10) as u8;
            value /= 10;
        }
    };
    put(0, 4, year);
    put(5, 2, u32::from(u8::from(time.month())));
    put(8, 2, u32::from(time.day()));
    put(11, 2, u32::from(time.hour()));
    put(14, 2, u32::from(time.minute()));
    put(17, 2, u32::from(time.second()));
    put(20, 6, time.microsecond());
    std::str::from_utf8(&text)
        .expect("ASCII digits and separators")
        .to_owned()
}

/// [`rfc3339_utc`] by the `time` crate's formatter: the reference, and the answer for years
/// RFC 3339 cannot write, which callers never pass.
fn formatted(time: OffsetDateTime) -> String {
    let format =
        format_description!("[year]-[month]-[day]T[hour]:[minute]:[second].[subsecond digits:6]Z");
    time.to_offset(UtcOffset::UTC)
        .format(format)
        .expect("a UTC time between years 0 and 9999 always formats")
}

/// An audit timestamp (RFC 3339, any offset) in UTC; `None` when absent, not a valid time, or
/// one whose UTC year RFC 3339 cannot write ([`is_beyond_utc_years`]).
pub fn parse_utc(text: Option<&str>) -> Option<OffsetDateTime> {
    OffsetDateTime::parse(text?, &Rfc3339).ok().and_then(in_utc)
}

/// Whether `text` is a valid RFC 3339 time whose year in UTC is outside 0–9999:
/// `9999-12-31T23:00:00-02:00` is year 10000 in UTC, `0000-01-01T00:00:00+01:00` year -1.
pub fn is_beyond_utc_years(text: Option<&str>) -> bool {
    text.and_then(|t| OffsetDateTime::parse(t, &Rfc3339).ok())
        .is_some_and(|t| in_utc(t).is_none())
}

/// Whole milliseconds since the Unix epoch (rounded down), as OCSF timestamps are.
pub fn epoch_millis(time: OffsetDateTime) -> Option<i64> {
    i64::try_from(time.unix_timestamp_nanos().div_euclid(1_000_000)).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(json: &str) -> AuditEvent<'_> {
        AuditEvent::parse(json).unwrap()
    }

    #[test]
    fn request_received_wins_then_stage_then_cloudwatch() {
        let both = parse(
            r#"{"requestReceivedTimestamp":"2023-07-31T01:58:11.743936Z","stageTimestamp":"2023-07-31T01:58:11.751914Z"}"#,
        );
        assert_eq!(
            rfc3339_utc(event_time(&both, Some(0)).unwrap()),
            "2023-07-31T01:58:11.743936Z"
        );
        let stage_only = parse(r#"{"stageTimestamp":"2023-07-31T01:58:11.751914Z"}"#);
        assert_eq!(
            rfc3339_utc(event_time(&stage_only, None).unwrap()),
            "2023-07-31T01:58:11.751914Z"
        );
        let neither = parse(r#"{"requestReceivedTimestamp":"yesterday"}"#);
        // 1690768691743 ms is 2023-07-31T01:58:11.743Z.
        assert_eq!(
            rfc3339_utc(event_time(&neither, Some(1_690_768_691_743)).unwrap()),
            "2023-07-31T01:58:11.743000Z"
        );
        assert_eq!(event_time(&neither, None), None);
    }

    #[test]
    fn written_by_hand_as_the_time_crate_writes_it() {
        // Times spread over years 0 to 9999, nanoseconds included, from a fixed LCG.
        let (first, last) = (-62_167_219_200_i64, 253_402_300_799_i64);
        let mut state = 0x2545_f491_4f6c_dd1d_u64;
        for _ in 0..20_000 {
            state = state
                .wrapping_mul(6_364_136_223_846_793_005)
                .wrapping_add(1);
            let seconds = first + (state >> 8) as i64 % (last - first + 1);
            let nanos = (state % 1_000_000_000) as i128;
            let time = OffsetDateTime::from_unix_timestamp_nanos(
                i128::from(seconds) * 1_000_000_000 + nanos,
            )
            .unwrap();
            assert_eq!(rfc3339_utc(time), formatted(time), "{time}");
        }
        let offset = parse_utc(Some("2024-03-01T01:30:00.5+02:00")).unwrap();
        assert_eq!(rfc3339_utc(offset), "2024-02-29T23:30:00.500000Z");
    }

    #[test]
    fn epoch_millis_drops_the_microseconds() {
        // 2023-07-31T01:58:11Z is 1690768691 s after the epoch (see the test above); .743936 s
        // adds 743 whole milliseconds.
        let time = parse_utc(Some("2023-07-31T01:58:11.743936Z")).unwrap();
        assert_eq!(epoch_millis(time), Some(1_690_768_691_743));
        assert_eq!(parse_utc(Some("yesterday")), None);
        assert_eq!(parse_utc(None), None);
    }

    #[test]
    fn offsets_are_converted_to_utc() {
        let event = parse(r#"{"requestReceivedTimestamp":"2024-03-01T01:30:00+02:00"}"#);
        assert_eq!(
            rfc3339_utc(event_time(&event, None).unwrap()),
            "2024-02-29T23:30:00.000000Z"
        );
    }

    #[test]
    fn times_whose_utc_year_rfc_3339_cannot_write_fall_back() {
        // 10000-01-01T01:00:00Z and -0001-12-31T23:00:00Z in UTC: neither is an RFC 3339 time.
        let event = parse(
            r#"{"requestReceivedTimestamp":"9999-12-31T23:00:00-02:00","stageTimestamp":"0000-01-01T00:00:00+01:00"}"#,
        );
        assert_eq!(
            rfc3339_utc(event_time(&event, Some(0)).unwrap()),
            "1970-01-01T00:00:00.000000Z"
        );
        assert_eq!(
            from_epoch_millis(-62_167_219_200_001),
            None,
            "a millisecond before year 0"
        );
        assert_eq!(from_epoch_millis(i64::MAX), None);
    }

    #[test]
    fn parse_utc_refuses_what_it_cannot_write_instead_of_panicking() {
        for beyond in ["9999-12-31T23:00:00-02:00", "0000-01-01T00:00:00+01:00"] {
            assert_eq!(parse_utc(Some(beyond)), None, "{beyond}");
            assert!(is_beyond_utc_years(Some(beyond)), "{beyond}");
        }
        // The edges themselves are writable: year 0 and year 9999 in UTC.
        for edge in ["0000-01-01T00:00:00Z", "9999-12-31T23:59:59.999999Z"] {
            assert_eq!(rfc3339_utc(parse_utc(Some(edge)).unwrap()), {
                let mut expected = edge.replace('Z', "");
                if !expected.contains('.') {
                    expected.push_str(".000000");
                }
                expected + "Z"
            });
            assert!(!is_beyond_utc_years(Some(edge)));
        }
        assert!(!is_beyond_utc_years(Some("yesterday")), "not a time at all");
        assert!(!is_beyond_utc_years(None));
    }
}
