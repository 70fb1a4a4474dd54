//! Realistic audit events for the soak: real events of the third-party corpus and of the sample
//! events (`events/`), and the generated cluster traffic of the emulator tests, each given a
//! fresh `auditID` and a time in the soak's window. Among them, as EKS logs them now and then:
//! API server error lines that are not JSON, and events cut by CloudWatch Logs
//! (`[Truncated...]`). The filter's own stages and noise URIs come with the real events.

use std::path::Path;

use serde_json::Value;
use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;

use crate::common::{corpus, repo_file};
use crate::events::{Random, Traffic};

/// One audit stream's event as it is put into CloudWatch Logs.
#[derive(Debug, Clone)]
pub struct Logged {
    /// Milliseconds since the epoch.
    pub timestamp: i64,
    pub message: String,
}

/// Every audit event of the corpus and the sample events, compact, as templates.
pub fn templates() -> Vec<Value> {
    let mut templates = Vec::new();
    let mut files = Vec::new();
    collect_files(&corpus().join("audit-events"), &mut files);
    files.sort();
    for file in files {
        let Ok(text) = std::fs::read_to_string(&file) else {
            continue;
        };
        // A file is one JSON document or one per line; read values until the first that is
        // not JSON (YAML policies, Go source lines).
        for value in serde_json::Deserializer::from_str(&text).into_iter::<Value>() {
            let Ok(value) = value else { break };
            add_events(value, &mut templates);
        }
    }
    let sample = std::fs::read_to_string(repo_file("events/awslogs-eks-audit.json"))
        .expect("the sample awslogs event");
    for event in crate::events::awslogs_message(&sample)["logEvents"]
        .as_array()
        .into_iter()
        .flatten()
    {
        if let Some(Ok(value)) = event["message"].as_str().map(serde_json::from_str) {
            add_events(value, &mut templates);
        }
    }
    assert!(templates.len() > 100, "the corpus is there");
    templates
}

fn collect_files(dir: &Path, files: &mut Vec<std::path::PathBuf>) {
    for entry in std::fs::read_dir(dir).into_iter().flatten().flatten() {
        let path = entry.path();
        if path.is_dir() {
            collect_files(&path, files);
        } else {
            files.push(path);
        }
    }
}

/// Audit events of `value`: itself, or the items of an `EventList`.
fn add_events(value: Value, templates: &mut Vec<Value>) {
    match value["kind"].as_str() {
        Some("EventList") => {
            for item in value["items"].as_array().into_iter().flatten() {
                add_events(item.clone(), templates);
            }
        }
        Some("Event") if value.get("auditID").is_some() => templates.push(value),
        _ => {}
    }
}

/// Generates audit events.
pub struct Generator {
    random: Random,
    traffic: Traffic,
    /// The corpus events used, by index into `templates`.
    usable: Vec<usize>,
    templates: std::sync::Arc<Vec<Value>>,
    counter: u64,
}

/// RFC 3339 with microseconds, as kube-apiserver writes times.
fn rfc3339(time: OffsetDateTime) -> String {
    let micros = time
        .replace_nanosecond(time.nanosecond() / 1000 * 1000)
        .unwrap_or(time);
    let text = micros.format(&Rfc3339).expect("a time in range");
    // `...:05.1234Z` → `...:05.123400Z`: six digits, as the API server writes.
    match text.split_once('.') {
        Some((head, fraction)) => {
            let digits = fraction.trim_end_matches('Z');
            format!("{head}.{digits:0<6}Z")
        }
        None => format!("{}.000000Z", text.trim_end_matches('Z')),
    }
}

impl Generator {
    /// A generator using the corpus events of at most `max_bytes`.
    pub fn new(seed: u64, templates: std::sync::Arc<Vec<Value>>, max_bytes: usize) -> Generator {
        let usable = (0..templates.len())
            .filter(|&i| templates[i].to_string().len() <= max_bytes)
            .collect();
        Generator {
            random: Random::new(seed),
            traffic: Traffic::new(seed),
            usable,
            templates,
            counter: 0,
        }
    }

    /// A fresh audit id, shaped as the API server's (a UUID).
    fn audit_id(&mut self) -> String {
        let r = &mut self.random;
        format!(
            "{}-{}-4{}-8{}-{}",
            r.hex(8),
            r.hex(4),
            r.hex(3),
            r.hex(3),
            r.hex(12)
        )
    }

    /// One event received at `received`, as logged: a real corpus event (half the time), a
    /// generated one, and now and then an error line or a cut event.
    pub fn event(&mut self, received: OffsetDateTime) -> Logged {
        self.counter += 1;
        // Written when the request completes, ingested 80-480 ms later.
        let took = time::Duration::milliseconds(self.random.below(900) as i64);
        let logged =
            received + took + time::Duration::milliseconds(80 + self.random.below(400) as i64);
        let timestamp = (logged.unix_timestamp_nanos() / 1_000_000) as i64;
        let roll = self.random.below(1000);
        if roll < 5 {
            let message = format!(
                "E{} {:>5} writers.go:122] apiserver was unable to write a JSON response: http2: stream closed (request {})",
                received
                    .format(time::macros::format_description!(
                        "[month][day] [hour]:[minute]:[second]"
                    ))
                    .unwrap_or_default(),
                self.random.below(99),
                self.counter,
            );
            return Logged { timestamp, message };
        }
        let mut event = if roll < 500 {
            let template = &self.templates[self.usable[self.random.below(self.usable.len())]];
            let mut event = template.clone();
            // Most requests are logged once complete; keep some of the other stages, which
            // the default filter drops.
            if event["stage"] != "ResponseComplete" && self.random.below(4) > 0 {
                event["stage"] = Value::from("ResponseComplete");
            }
            event
        } else {
            let generated = self.traffic.events(1).remove(0);
            serde_json::from_str(generated.value["message"].as_str().unwrap_or("{}"))
                .unwrap_or_default()
        };
        event["auditID"] = Value::from(self.audit_id());
        event["requestReceivedTimestamp"] = Value::from(rfc3339(received));
        event["stageTimestamp"] = Value::from(rfc3339(received + took));
        if event.get("timestamp").is_some() {
            event["timestamp"] = Value::from(rfc3339(received));
        }
        let mut message = event.to_string();
        if roll < 10 {
            // Cut by CloudWatch Logs, anywhere from inside the first fields to the bodies.
            let mut cut = 20 + self.random.below(message.len().saturating_sub(20).max(1));
            while !message.is_char_boundary(cut) {
                cut -= 1;
            }
            message.truncate(cut);
            message.push_str("[Truncated...]");
        }
        Logged { timestamp, message }
    }
}
