//! A JSON object written field by field into an output buffer: columns keep their documented
//! order, and the original event is embedded as raw text instead of being re-serialized.

use serde::Serialize;

pub struct ObjectWriter<'o> {
    out: &'o mut Vec<u8>,
    empty: bool,
}

impl<'o> ObjectWriter<'o> {
    pub fn start(out: &'o mut Vec<u8>) -> ObjectWriter<'o> {
        out.push(b'{');
        ObjectWriter { out, empty: true }
    }

    /// `,"key":`. Keys are the schema's own names, which hold nothing JSON escapes: written
    /// as they are, without the check every value gets.
    fn key(&mut self, key: &'static str) {
        debug_assert!(needs_no_escaping(key), "{key}");
        self.out.reserve(key.len() + 4);
        separate(self.out, &mut self.empty);
        self.out.push(b'"');
        self.out.extend_from_slice(key.as_bytes());
        self.out.extend_from_slice(b"\":");
    }

    /// `"key": "value"`, or `null`; the string written as serde_json writes it, without its
    /// per-call setup when nothing needs escaping (most columns).
    pub fn str_field(&mut self, key: &'static str, value: Option<&str>) -> &mut Self {
        self.key(key);
        match value {
            Some(value) => put_str(self.out, value),
            None => self.out.extend_from_slice(b"null"),
        }
        self
    }

    /// `"key": ["item", ...]`, each item as [`ObjectWriter::str_field`] writes its value.
    pub fn str_list_field<S: AsRef<str>>(&mut self, key: &'static str, items: &[S]) -> &mut Self {
        self.key(key);
        self.out.push(b'[');
        for (i, item) in items.iter().enumerate() {
            if i > 0 {
                self.out.push(b',');
            }
            put_str(self.out, item.as_ref());
        }
        self.out.push(b']');
        self
    }

    /// `"key": "a/b/c"`, the parts joined by `/` into one string, or `null` for `None`.
    pub fn path_field<'p>(
        &mut self,
        key: &'static str,
        parts: Option<impl Iterator<Item = &'p str> + Clone>,
    ) -> &mut Self {
        self.key(key);
        let Some(parts) = parts else {
            self.out.extend_from_slice(b"null");
            return self;
        };
        if parts.clone().all(needs_no_escaping) {
            self.out.push(b'"');
            for (i, part) in parts.enumerate() {
                if i > 0 {
                    self.out.push(b'/');
                }
                self.out.extend_from_slice(part.as_bytes());
            }
            self.out.push(b'"');
        } else {
            put_str(self.out, &parts.collect::<Vec<_>>().join("/"));
        }
        self
    }

    /// `"key": 123`, or `null`.
    pub fn int_field(&mut self, key: &'static str, value: Option<i64>) -> &mut Self {
        self.key(key);
        match value {
            Some(value) => self
                .out
                .extend_from_slice(itoa::Buffer::new().format(value).as_bytes()),
            None => self.out.extend_from_slice(b"null"),
        }
        self
    }

    /// `"key": value`; `None` is written as `null`.
    pub fn field<T: Serialize + ?Sized>(&mut self, key: &'static str, value: &T) -> &mut Self {
        self.key(key);
        put(self.out, value);
        self
    }

    /// [`ObjectWriter::field`] under a key from the event (an annotation's name, say), escaped
    /// where JSON needs it.
    pub fn field_any_key<T: Serialize + ?Sized>(&mut self, key: &str, value: &T) -> &mut Self {
        separate(self.out, &mut self.empty);
        put_str(self.out, key);
        self.out.push(b':');
        put(self.out, value);
        self
    }

    /// `"key": raw`, where `raw` is valid JSON. Line breaks between tokens are removed so the
    /// value fits on one NDJSON line; the JSON value stays the same.
    pub fn raw_field(&mut self, key: &'static str, raw: &str) -> &mut Self {
        self.key(key);
        write_single_line(raw, self.out);
        self
    }

    /// `"key": value` when there is a value; nothing at all for `None`. For schemas such as
    /// OCSF's, which reject `null` for typed attributes.
    pub fn opt_field<T: Serialize + ?Sized>(
        &mut self,
        key: &'static str,
        value: Option<&T>,
    ) -> &mut Self {
        if let Some(value) = value {
            self.field(key, value);
        }
        self
    }

    /// Starts a nested object under `key`; finish it with [`ObjectWriter::end`].
    pub fn object(&mut self, key: &'static str) -> ObjectWriter<'_> {
        self.key(key);
        ObjectWriter::start(self.out)
    }

    /// Starts a list under `key`; finish it with [`ArrayWriter::end`].
    pub fn array(&mut self, key: &'static str) -> ArrayWriter<'_> {
        self.key(key);
        self.out.push(b'[');
        ArrayWriter {
            out: self.out,
            empty: true,
        }
    }

    pub fn end(&mut self) {
        self.out.push(b'}');
    }
}

/// A JSON list of objects written item by item, for lists whose items are built like fields.
pub struct ArrayWriter<'o> {
    out: &'o mut Vec<u8>,
    empty: bool,
}

impl ArrayWriter<'_> {
    /// Starts the next item; finish it with [`ObjectWriter::end`].
    pub fn object(&mut self) -> ObjectWriter<'_> {
        separate(self.out, &mut self.empty);
        ObjectWriter::start(self.out)
    }

    pub fn end(&mut self) {
        self.out.push(b']');
    }
}

/// The comma before a member or an item, unless it is the first.
fn separate(out: &mut Vec<u8>, empty: &mut bool) {
    if !*empty {
        out.push(b',');
    }
    *empty = false;
}

/// Serializes a value that cannot fail to serialize: strings, numbers, options and lists of
/// them, into a `Vec`, whose writes cannot fail either.
fn put<T: Serialize + ?Sized>(out: &mut Vec<u8>, value: &T) {
    serde_json::to_writer(out, value).expect("strings and numbers always serialize into a Vec");
}

/// Whether JSON writes `text` as it is between quotes: it holds no quote, backslash or control
/// character, the only bytes serde_json escapes. Branch-free over 64-byte chunks, which the
/// compiler vectorizes: callers pass megabytes of base64 through it. What is left, most of a
/// column's short value, goes eight bytes at a time: byte by byte it was 2.5 M instructions a
/// typical payload.
pub(crate) fn needs_no_escaping(text: &str) -> bool {
    let mut chunks = text.as_bytes().chunks_exact(64);
    let chunks_plain = chunks.all(|chunk| {
        chunk
            .iter()
            .fold(true, |ok, &b| ok & (b >= 0x20) & (b != b'"') & (b != b'\\'))
    });
    let mut words = chunks.remainder().chunks_exact(8);
    chunks_plain
        && words.all(|word| !word_needs_escaping(word.try_into().expect("eight bytes")))
        && words
            .remainder()
            .iter()
            .all(|&b| b >= 0x20 && b != b'"' && b != b'\\')
}

/// Whether any of eight bytes is below 0x20, a quote or a backslash. "Has a byte less than n"
/// and "has a zero byte" from Bit Twiddling Hacks: exact as to whether any byte matches.
fn word_needs_escaping(word: [u8; 8]) -> bool {
    const ONES: u64 = u64::from_le_bytes([1; 8]);
    const HIGHS: u64 = ONES << 7;
    let word = u64::from_le_bytes(word);
    let below = |n: u8| word.wrapping_sub(ONES * u64::from(n)) & !word & HIGHS;
    let has_zero = |x: u64| x.wrapping_sub(ONES) & !x & HIGHS;
    let quote = has_zero(word ^ (ONES * u64::from(b'"')));
    let backslash = has_zero(word ^ (ONES * u64::from(b'\\')));
    below(0x20) | quote | backslash != 0
}

/// A JSON string: quoted as it is when [`needs_no_escaping`], else by serde_json. Same bytes
/// either way.
fn put_str(out: &mut Vec<u8>, text: &str) {
    if !needs_no_escaping(text) {
        return put(out, text);
    }
    out.reserve(text.len() + 2);
    out.push(b'"');
    out.extend_from_slice(text.as_bytes());
    out.push(b'"');
}

/// Copies valid JSON text, dropping the whitespace between tokens when it holds a line break.
/// Inside strings a line break is always escaped, so only inter-token whitespace is dropped.
fn write_single_line(raw: &str, out: &mut Vec<u8>) {
    let raw = raw.trim();
    // memchr's SIMD search: a byte-by-byte check here cost 10% of the whole handler.
    if memchr::memchr2(b'\n', b'\r', raw.as_bytes()).is_none() {
        out.extend_from_slice(raw.as_bytes());
        return;
    }
    let mut in_string = false;
    let mut escaped = false;
    for &b in raw.as_bytes() {
        if in_string {
            out.push(b);
            match b {
                _ if escaped => escaped = false,
                b'\\' => escaped = true,
                b'"' => in_string = false,
                _ => {}
            }
        } else if !b.is_ascii_whitespace() {
            in_string = b == b'"';
            out.push(b);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pretty_printed_raw_json_becomes_one_line_with_the_same_value() {
        let raw = "{\n  \"a\": \"x y\\\"\\n\",\n  \"b\": [1, 2]\n}\n";
        let mut out = Vec::new();
        ObjectWriter::start(&mut out).raw_field("Raw", raw).end();
        let line = String::from_utf8(out).unwrap();
        assert!(!line.contains('\n'));
        let value: serde_json::Value = serde_json::from_str(&line).unwrap();
        assert_eq!(
            value["Raw"],
            serde_json::from_str::<serde_json::Value>(raw).unwrap()
        );
    }

    #[test]
    fn opt_field_omits_none_and_arrays_hold_objects() {
        let mut out = Vec::new();
        let mut object = ObjectWriter::start(&mut out);
        object
            .opt_field("A", None::<&str>)
            .opt_field("B", Some("x"));
        let mut list = object.array("L");
        list.object().field("n", &1).end();
        list.object().end();
        list.end();
        object.array("E").end();
        object.end();
        assert_eq!(out, br#"{"B":"x","L":[{"n":1},{}],"E":[]}"#);
    }

    #[test]
    fn strings_are_written_as_serde_json_writes_them() {
        for text in [
            "",
            "plain text / with a slash",
            "caf\u{e9} \u{1f680} \u{7f}",
            "quote \" backslash \\ newline \n tab \t nul \u{0} esc \u{1b} \u{1f}",
        ] {
            let mut out = Vec::new();
            put_str(&mut out, text);
            assert_eq!(out, serde_json::to_vec(text).unwrap(), "{text:?}");
        }
        let mut out = Vec::new();
        let mut object = ObjectWriter::start(&mut out);
        object.str_field("A", None).str_field("B", Some("x\"y"));
        object.end();
        assert_eq!(out, br#"{"A":null,"B":"x\"y"}"#);
    }

    #[test]
    fn every_ascii_character_is_escaped_as_serde_json_does_in_a_chunk_or_after_it() {
        // needs_no_escaping folds 64 bytes at a time, then eight, then one: every position of
        // strings whose tails end at each of those steps.
        for c in (0..0x80u8).chain([0xc3]).map(char::from) {
            for (len, at) in [130, 77, 64, 13, 8, 1]
                .into_iter()
                .flat_map(|len| (0..len).map(move |at| (len, at)))
            {
                let mut text: Vec<char> = "x".repeat(len).chars().collect();
                text[at] = c;
                let text: String = text.into_iter().collect();
                let mut out = Vec::new();
                put_str(&mut out, &text);
                assert_eq!(out, serde_json::to_vec(&text).unwrap(), "{c:?} at {at}");
            }
        }
    }

    #[test]
    fn fields_keep_their_order_and_none_is_null() {
        let mut out = Vec::new();
        let mut object = ObjectWriter::start(&mut out);
        object
            .field("B", "x")
            .field("A", &None::<&str>)
            .field("C", &[1, 2]);
        object.end();
        assert_eq!(out, br#"{"B":"x","A":null,"C":[1,2]}"#);
    }

    #[test]
    fn a_key_from_the_event_is_escaped() {
        let mut out = Vec::new();
        let mut object = ObjectWriter::start(&mut out);
        object
            .field("A", &1)
            .field_any_key("annotations.a\"b\\c", "v")
            .field_any_key("plain", &2);
        object.end();
        assert_eq!(out, br#"{"A":1,"annotations.a\"b\\c":"v","plain":2}"#);
    }

    #[test]
    fn integers_are_written_as_serde_json_writes_them() {
        for value in [
            None,
            Some(0),
            Some(-1),
            Some(403),
            Some(i64::MIN),
            Some(i64::MAX),
        ] {
            let mut out = Vec::new();
            ObjectWriter::start(&mut out).int_field("N", value).end();
            let expected = format!(r#"{{"N":{}}}"#, serde_json::to_string(&value).unwrap());
            assert_eq!(String::from_utf8(out).unwrap(), expected);
        }
    }

    #[test]
    fn lists_and_paths_are_written_as_serde_json_writes_them() {
        let items = ["a", "b\"c", "caf\u{e9}\n"];
        for items in [&items[..0], &items[..1], &items[..]] {
            let mut out = Vec::new();
            let mut object = ObjectWriter::start(&mut out);
            object
                .str_list_field("L", items)
                .path_field("P", Some(items.iter().copied()))
                .path_field("N", None::<std::slice::Iter<&str>>.map(|i| i.copied()));
            object.end();
            let expected = format!(
                r#"{{"L":{},"P":{},"N":null}}"#,
                serde_json::to_string(items).unwrap(),
                serde_json::to_string(&items.join("/")).unwrap()
            );
            assert_eq!(String::from_utf8(out).unwrap(), expected);
        }
    }
}
