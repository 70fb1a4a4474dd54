//! The clusters' log groups in moto's CloudWatch Logs: audit events put into their
//! `kube-apiserver-audit-*` streams (and a few into a `kube-apiserver-*` stream, which the
//! forwarder drops), read back for the ids CloudWatch gave them, and cut into subscription
//! messages as CloudWatch Logs delivers them: per stream, a few events at a time.

use std::collections::{HashMap, VecDeque};

use aws_sdk_cloudwatchlogs::types::InputLogEvent;
use serde_json::{Value, json};

use crate::corpus::Logged;
use crate::moto::ACCOUNT;

/// A cluster's log group and the events of each of its streams, with their CloudWatch ids.
pub struct Group {
    pub name: String,
    /// Each stream's name and its events (timestamp, message, id), in time order.
    pub streams: Vec<(String, Vec<(Logged, String)>)>,
}

/// CloudWatch's own limits for one `PutLogEvents` call, with room to spare.
const BATCH_EVENTS: usize = 5_000;
const BATCH_BYTES: usize = 900_000;

/// Creates `/aws/eks/<cluster>/cluster`, puts each stream's events in time order and reads them
/// back for their ids.
pub async fn put(
    logs: &aws_sdk_cloudwatchlogs::Client,
    cluster: &str,
    streams: Vec<(String, Vec<Logged>)>,
) -> Group {
    let name = eks_audit_core::eks::log_group_of(cluster);
    logs.create_log_group()
        .log_group_name(&name)
        .send()
        .await
        .expect("create the log group");
    for (stream, events) in &streams {
        logs.create_log_stream()
            .log_group_name(&name)
            .log_stream_name(stream)
            .send()
            .await
            .expect("create a log stream");
        let mut start = 0;
        while start < events.len() {
            let (mut end, mut bytes) = (start, 0);
            while end < events.len()
                && end - start < BATCH_EVENTS
                && bytes + events[end].message.len() + 26 < BATCH_BYTES
            {
                bytes += events[end].message.len() + 26;
                end += 1;
            }
            let batch = events[start..end].iter().map(|e| {
                InputLogEvent::builder()
                    .timestamp(e.timestamp)
                    .message(&e.message)
                    .build()
                    .expect("timestamp and message are set")
            });
            logs.put_log_events()
                .log_group_name(&name)
                .log_stream_name(stream)
                .set_log_events(Some(batch.collect()))
                .send()
                .await
                .expect("put log events");
            start = end;
        }
    }
    // The ids, by stream, timestamp and message (equal events get theirs in order), read
    // stream by stream: moto filters a whole group's events for every page.
    let mut ids: HashMap<(String, i64, String), VecDeque<String>> = HashMap::new();
    for (stream, _) in &streams {
        let mut token = None;
        loop {
            let page = logs
                .filter_log_events()
                .log_group_name(&name)
                .log_stream_names(stream)
                .set_next_token(token)
                .send()
                .await
                .expect("read the events back");
            for event in page.events() {
                ids.entry((
                    event.log_stream_name().unwrap_or_default().to_owned(),
                    event.timestamp().unwrap_or_default(),
                    event.message().unwrap_or_default().to_owned(),
                ))
                .or_default()
                .push_back(event.event_id().unwrap_or_default().to_owned());
            }
            token = page.next_token().map(str::to_owned);
            if token.is_none() {
                break;
            }
        }
    }
    let streams = streams
        .into_iter()
        .map(|(stream, events)| {
            let events = events
                .into_iter()
                .map(|event| {
                    let key = (stream.clone(), event.timestamp, event.message.clone());
                    let id = ids
                        .get_mut(&key)
                        .and_then(VecDeque::pop_front)
                        .unwrap_or_else(|| panic!("{stream}: an event put was read back"));
                    (event, id)
                })
                .collect();
            (stream, events)
        })
        .collect();
    Group { name, streams }
}

impl Group {
    /// Audit-stream events put, in all.
    pub fn audit_events(&self) -> usize {
        self.streams
            .iter()
            .filter(|(stream, _)| stream.starts_with("kube-apiserver-audit-"))
            .map(|(_, events)| events.len())
            .sum()
    }

    /// The subscription message of the events `range` of stream `stream`.
    pub fn message(&self, stream: usize, range: std::ops::Range<usize>) -> Value {
        let (name, events) = &self.streams[stream];
        let log_events: Vec<Value> = events[range]
            .iter()
            .map(|(event, id)| json!({"id": id, "timestamp": event.timestamp, "message": event.message}))
            .collect();
        json!({"messageType": "DATA_MESSAGE", "owner": ACCOUNT, "logGroup": self.name,
               "logStream": name, "subscriptionFilters": ["eks-audit"], "logEvents": log_events})
    }
}
