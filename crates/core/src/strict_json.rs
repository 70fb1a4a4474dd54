//! A cheap byte scan of an audit event's text for what strict JSON readers reject, before the
//! event is parsed and forwarded.
//!
//! serde_json skips the fields the forwarder does not read (request and response bodies, most of
//! an event) without decoding them: it does not count their nesting, pair their `\u` surrogate
//! escapes or check that their numbers fit a float. Those bytes then leave verbatim in
//! `RawEvent`, where a reader that decodes everything fails on them: serde_json stops at 128
//! levels, Go and Java refuse numbers past `f64::MAX`, strict UTF-8 decoders refuse lone
//! surrogates. The Kubernetes API server never writes any of the three, so an event holding one
//! is broken or hostile: it is quarantined, verbatim, instead of poisoning the output.
//!
//! The scan only tracks strings, brackets and number tokens. Syntax errors are left to the
//! parser that runs next, so on text that is not JSON the scan's answer does not matter.

use std::fmt;

/// What a strict reader would refuse in the text.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Rejection {
    TooDeep { limit: usize },
    UnpairedSurrogate { code_unit: u16 },
    NumberOutOfRange { number: String },
}

impl fmt::Display for Rejection {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Rejection::TooDeep { limit } => {
                write!(
                    f,
                    "JSON nested more than {limit} levels deep (EKS_AUDIT_MAX_DEPTH)"
                )
            }
            Rejection::UnpairedSurrogate { code_unit } => {
                write!(
                    f,
                    "string holds an unpaired UTF-16 surrogate escape \\u{code_unit:04x}"
                )
            }
            Rejection::NumberOutOfRange { number } => {
                write!(f, "number {number} is beyond the range of a 64-bit float")
            }
        }
    }
}

/// Checks `text` for nesting deeper than `max_depth` objects and arrays, unpaired surrogate
/// escapes and numbers that overflow an `f64`.
pub fn check(text: &str, max_depth: usize) -> Result<(), Rejection> {
    let bytes = text.as_bytes();
    let mut depth = 0usize;
    let mut at = 0;
    while let Some(&byte) = bytes.get(at) {
        at = match byte {
            b'"' => skip_string(bytes, at + 1)?,
            b'{' | b'[' => {
                depth += 1;
                if depth > max_depth {
                    return Err(Rejection::TooDeep { limit: max_depth });
                }
                at + 1
            }
            b'}' | b']' => {
                depth = depth.saturating_sub(1);
                at + 1
            }
            b'-' | b'0'..=b'9' => {
                let end = at
                    + bytes[at..]
                        .iter()
                        .take_while(|b| is_number_byte(**b))
                        .count();
                check_number(&text[at..end])?;
                end
            }
            _ => at + 1,
        };
    }
    Ok(())
}

fn is_number_byte(byte: u8) -> bool {
    byte.is_ascii_digit() || matches!(byte, b'-' | b'+' | b'.' | b'e' | b'E')
}

/// A float overflows only with an exponent or more than 308 digits; shorter plain numbers are
/// not parsed at all. Near `f64::MAX`, serde_json (which rounds less carefully than the
/// standard library) has the last word.
fn check_number(token: &str) -> Result<(), Rejection> {
    let may_overflow = token.len() > 308 || token.bytes().any(|b| b == b'e' || b == b'E');
    if !may_overflow {
        return Ok(());
    }
    match token.parse::<f64>() {
        Ok(value) if value.is_infinite() || serde_json::from_str::<f64>(token).is_err() => {
            let mut number: String = token.chars().take(40).collect();
            if number.len() < token.len() {
                number.push('…');
            }
            Err(Rejection::NumberOutOfRange { number })
        }
        _ => Ok(()),
    }
}

/// From just inside an opening quote to just past the closing one (or the end of the text),
/// checking that every surrogate escape is a high one followed by a low one.
///
/// Strings are most of an audit event's bytes: memchr's SIMD search jumps to the next quote or
/// backslash instead of looking at every byte (this check cost 18% of the Firehose handler's
/// instructions byte by byte).
fn skip_string(bytes: &[u8], mut at: usize) -> Result<usize, Rejection> {
    #[cfg(any(test, feature = "oracle"))]
    if crate::oracle::on() {
        return skip_string_reference(bytes, at);
    }
    loop {
        let Some(found) = bytes
            .get(at..)
            .and_then(|rest| memchr::memchr2(b'"', b'\\', rest))
        else {
            return Ok(bytes.len());
        };
        at += found;
        if bytes[at] == b'"' {
            return Ok(at + 1);
        }
        if bytes.get(at + 1) != Some(&b'u') {
            at += 2;
            continue;
        }
        let Some(unit) = hex4(bytes, at + 2) else {
            at += 2;
            continue;
        };
        at += 6;
        match unit {
            0xD800..=0xDBFF => {
                let low = (bytes.get(at) == Some(&b'\\') && bytes.get(at + 1) == Some(&b'u'))
                    .then(|| hex4(bytes, at + 2))
                    .flatten();
                match low {
                    Some(0xDC00..=0xDFFF) => at += 6,
                    _ => return Err(Rejection::UnpairedSurrogate { code_unit: unit }),
                }
            }
            0xDC00..=0xDFFF => return Err(Rejection::UnpairedSurrogate { code_unit: unit }),
            _ => {}
        }
    }
}

/// [`skip_string`] byte by byte, as it was: the oracle of the golden comparison.
#[cfg(any(test, feature = "oracle"))]
fn skip_string_reference(bytes: &[u8], mut at: usize) -> Result<usize, Rejection> {
    while let Some(&byte) = bytes.get(at) {
        match byte {
            b'"' => return Ok(at + 1),
            b'\\' if bytes.get(at + 1) == Some(&b'u') => {
                let Some(unit) = hex4(bytes, at + 2) else {
                    at += 2;
                    continue;
                };
                at += 6;
                match unit {
                    0xD800..=0xDBFF => {
                        let low = (bytes.get(at) == Some(&b'\\')
                            && bytes.get(at + 1) == Some(&b'u'))
                        .then(|| hex4(bytes, at + 2))
                        .flatten();
                        match low {
                            Some(0xDC00..=0xDFFF) => at += 6,
                            _ => return Err(Rejection::UnpairedSurrogate { code_unit: unit }),
                        }
                    }
                    0xDC00..=0xDFFF => {
                        return Err(Rejection::UnpairedSurrogate { code_unit: unit });
                    }
                    _ => {}
                }
            }
            b'\\' => at += 2,
            _ => at += 1,
        }
    }
    Ok(at)
}

/// Four hex digits at `at`, as a UTF-16 code unit.
pub(crate) fn hex4(bytes: &[u8], at: usize) -> Option<u16> {
    let digits = bytes.get(at..at + 4)?;
    digits.iter().try_fold(0u16, |unit, &b| {
        let digit = (b as char).to_digit(16)?;
        Some(unit << 4 | digit as u16)
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn depth_counts_objects_and_arrays_but_not_brackets_in_strings() {
        assert_eq!(check(r#"{"a":[{"b":[]}]}"#, 4), Ok(()));
        assert_eq!(
            check(r#"{"a":[{"b":[]}]}"#, 3),
            Err(Rejection::TooDeep { limit: 3 })
        );
        assert_eq!(check(r#"{"a":"[[[[[[[[\"[[[["}"#, 1), Ok(()));
        let deep = format!("{}{}", "[".repeat(101), "]".repeat(101));
        assert_eq!(check(&deep, 100), Err(Rejection::TooDeep { limit: 100 }));
    }

    #[test]
    fn surrogate_escapes_must_pair() {
        assert_eq!(
            check(r#"{"a":"\ud83d\ude00 and \u00e9"}"#, 8),
            Ok(()),
            "a pair is one emoji"
        );
        assert_eq!(
            check(r#"{"a":"\ud83d"}"#, 8),
            Err(Rejection::UnpairedSurrogate { code_unit: 0xd83d })
        );
        assert_eq!(
            check(r#"{"a":"\ude00"}"#, 8),
            Err(Rejection::UnpairedSurrogate { code_unit: 0xde00 })
        );
        assert_eq!(
            check(r#"{"a":"\ud83d\u0041"}"#, 8),
            Err(Rejection::UnpairedSurrogate { code_unit: 0xd83d })
        );
        assert_eq!(
            check(r#"{"\udfff":1}"#, 8),
            Err(Rejection::UnpairedSurrogate { code_unit: 0xdfff }),
            "keys too"
        );
        assert_eq!(
            check(r#"{"a":"\\ud83d"}"#, 8),
            Ok(()),
            "an escaped backslash, then plain text"
        );
    }

    #[test]
    fn numbers_must_fit_a_float() {
        assert_eq!(
            check(
                r#"{"a":[1e308,-1.5E-400,123456789012345678901234567890]}"#,
                8
            ),
            Ok(())
        );
        assert!(matches!(
            check(r#"{"a":1e400}"#, 8),
            Err(Rejection::NumberOutOfRange { .. })
        ));
        assert!(matches!(
            check(r#"{"a":-2E+309}"#, 8),
            Err(Rejection::NumberOutOfRange { .. })
        ));
        let long = format!(r#"{{"a":{}}}"#, "9".repeat(400));
        let Err(Rejection::NumberOutOfRange { number }) = check(&long, 8) else {
            panic!("400 digits overflow")
        };
        assert_eq!(
            number.chars().count(),
            41,
            "the reason quotes the number's start only"
        );
        assert_eq!(
            check(r#"{"a":"1e400"}"#, 8),
            Ok(()),
            "a string is not a number"
        );
    }

    #[test]
    fn numbers_near_the_largest_float_are_judged_as_serde_json_reads_them() {
        let near_max = [
            "1.7976931348623157e308",
            "1.7976931348623158e308",
            "1.7976931348623159e308",
            "17976931348623157e292",
            "179769313486231570814527423731704356798070567525844996598917476803157260780028538760589558632766878171540458953514382464234321326889464182768467546703537516986049910576551282076245490090389328944075868508455133942304583236903222948165808559332123348274797826204144723168738177180919299881250404026184124858368",
            "-1.7976931348623157e308",
        ];
        for number in near_max {
            let text = format!(r#"{{"a":{number}}}"#);
            let serde_reads = serde_json::from_str::<serde_json::Value>(&text).is_ok();
            assert_eq!(check(&text, 8).is_ok(), serde_reads, "{number}");
        }
    }
}
