//! `eks-audit collect` against moto: the library's collector, and the command itself.

use std::process::{Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use eks_audit_forwarder::collect::{Collector, Options, Progress};

use crate::events::sample;
use crate::notifications::{depth, drain};
use crate::proxy::{Delay, Options as ProxyOptions, Proxy};
use crate::resources::new_bucket;
use crate::resources::{Queue, new_queue, notify};
use crate::s3_objects::{direct, keys, lines, s3_handler};
use crate::{moto, peak};

fn options(queue: &Queue, visibility_timeout: Option<i32>) -> Options {
    Options {
        queue_url: queue.url.clone(),
        max_messages: 10,
        wait_seconds: 0,
        visibility_timeout,
        max_object_bytes: 64 << 20,
        concurrency: 4,
        once: true,
        dedup: false,
    }
}

async fn collector_with(options: Options) -> Collector {
    let s3 = eks_audit_forwarder::sink::s3::client(&moto::config().await);
    Collector::new(moto::sqs().await, s3, options)
}

async fn collector(queue: &Queue, visibility_timeout: Option<i32>) -> Collector {
    collector_with(options(queue, visibility_timeout)).await
}

/// Drains the queue once with `options`; returns what was written and the counters.
async fn collect_with(options: Options) -> (String, Progress) {
    let mut out = Vec::new();
    let progress = collector_with(options)
        .await
        .run(&mut out, std::future::pending(), |_| {})
        .await
        .expect("collect runs");
    (String::from_utf8(out).unwrap(), progress)
}

/// Drains the queue once; returns what was written and the counters.
async fn collect_once(queue: &Queue, visibility_timeout: Option<i32>) -> (String, Progress) {
    let mut out = Vec::new();
    let progress = collector(queue, visibility_timeout)
        .await
        .run(&mut out, std::future::pending(), |_| {})
        .await
        .expect("collect runs");
    (String::from_utf8(out).unwrap(), progress)
}

fn sorted_lines(text: &str) -> Vec<&str> {
    let mut lines: Vec<&str> = text.lines().collect();
    lines.sort_unstable();
    lines
}

/// A bucket whose notifications go to a fresh queue (after `max_receive_count` receives,
/// to a dead-letter queue, when given).
async fn notified_bucket(dead_letter_after: Option<u32>) -> (String, Queue, Option<Queue>) {
    let (s3, sqs) = (moto::s3().await, moto::sqs().await);
    let bucket = new_bucket(&s3).await;
    let dlq = match dead_letter_after {
        Some(_) => Some(new_queue(&sqs, None).await),
        None => None,
    };
    let queue = new_queue(&sqs, dlq.as_ref().zip(dead_letter_after)).await;
    notify(&s3, &bucket, &queue).await;
    (bucket, queue, dlq)
}

/// An object that is not what the forwarder writes: a gzip stream cut in half.
async fn put_corrupted(s3: &aws_sdk_s3::Client, bucket: &str) -> String {
    let key = "eks-audit/cluster=prod-east/dt=2024-05-21/hour=13/kube-apiserver-audit-x-1.json.gz"
        .to_owned();
    let gzip = crate::common::gzip(b"{\"Verb\":\"get\"}\n{\"Verb\":\"list\"}\n");
    let cut = gzip[..gzip.len() / 2].to_vec();
    s3.put_object()
        .bucket(bucket)
        .key(&key)
        .body(cut.into())
        .send()
        .await
        .unwrap();
    key
}

#[tokio::test]
async fn collected_events_are_the_handlers_kept_events_and_the_queue_is_emptied() {
    let (s3, sqs) = (moto::s3().await, moto::sqs().await);
    let (bucket, queue, _) = notified_bucket(None).await;
    let summary = direct(
        &s3_handler(&bucket, None).await,
        &sample("awslogs-eks-audit.json"),
    )
    .await;

    let (out, progress) = collect_once(&queue, None).await;

    let mut written = String::new();
    for key in keys(&s3, &bucket).await {
        for line in lines(&s3, &bucket, &key).await {
            written.push_str(&format!("{line}\n"));
        }
    }
    let parsed: Vec<serde_json::Value> = out
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    let normalized: String = parsed.iter().map(|l| format!("{l}\n")).collect();
    assert_eq!(
        sorted_lines(&normalized),
        sorted_lines(&written),
        "every kept event once, nothing else"
    );
    assert_eq!(parsed.len() as u64, summary.tally.kept);
    assert!(out.ends_with('\n'));
    let expected = Progress {
        messages: 1 + summary.objects.len() as u64,
        objects: summary.objects.len() as u64,
        events: summary.tally.kept,
        bytes: out.len() as u64,
        skipped: 1,
        duplicates: 0,
        left: 0,
    };
    assert_eq!(
        progress, expected,
        "the test event skipped, every object collected"
    );
    assert_eq!(depth(&sqs, &queue).await, 0, "every message deleted");
}

#[tokio::test]
async fn the_test_event_is_deleted_and_writes_nothing() {
    let sqs = moto::sqs().await;
    let (_, queue, _) = notified_bucket(None).await;
    let (out, progress) = collect_once(&queue, None).await;
    assert_eq!(out, "");
    assert_eq!(
        (
            progress.messages,
            progress.skipped,
            progress.objects,
            progress.left
        ),
        (1, 1, 0, 0)
    );
    assert_eq!(depth(&sqs, &queue).await, 0);
}

#[tokio::test]
async fn a_corrupted_object_is_left_in_the_queue_and_lands_in_the_dead_letter_queue() {
    let (s3, sqs) = (moto::s3().await, moto::sqs().await);
    let (bucket, queue, dlq) = notified_bucket(Some(2)).await;
    let dlq = dlq.unwrap();
    let summary = direct(
        &s3_handler(&bucket, None).await,
        &sample("awslogs-eks-audit.json"),
    )
    .await;
    let bad_key = put_corrupted(&s3, &bucket).await;

    // Visibility timeout 0: the failed message is back at once, as after a crash.
    let (out, first) = collect_once(&queue, Some(0)).await;
    assert_eq!(
        out.lines().count() as u64,
        summary.tally.kept,
        "the good objects are collected"
    );
    assert!(
        !out.lines().any(|l| l.starts_with(r#"{"Verb""#)),
        "nothing of the corrupted object is written"
    );
    assert_eq!(
        first.left, 1,
        "the bad message failed; its second receive ended the pass"
    );
    assert_eq!(
        depth(&sqs, &queue).await,
        1,
        "the bad message stays in the queue"
    );
    assert_eq!(depth(&sqs, &dlq).await, 0);

    // Past maxReceiveCount the redrive policy moves it: the next run finds the queue empty.
    let (out, second) = collect_once(&queue, Some(0)).await;
    assert_eq!((out.as_str(), second.left, second.messages), ("", 0, 0));
    assert_eq!(depth(&sqs, &queue).await, 0);
    let dead = drain(&sqs, &dlq).await;
    assert_eq!(dead.len(), 1);
    let encoded_name = bad_key.rsplit('/').next().unwrap();
    assert!(
        dead[0].contains(encoded_name),
        "the dead letter names the object: {}",
        dead[0]
    );
}

#[tokio::test]
async fn a_missing_object_is_left_for_the_redrive_policy() {
    let (s3, sqs) = (moto::s3().await, moto::sqs().await);
    let (bucket, queue, _) = notified_bucket(None).await;
    let summary = direct(
        &s3_handler(&bucket, None).await,
        &sample("awslogs-eks-audit.json"),
    )
    .await;
    let gone = keys(&s3, &bucket).await.remove(0);
    s3.delete_object()
        .bucket(&bucket)
        .key(&gone)
        .send()
        .await
        .unwrap();

    // The queue's visibility timeout (30 s) hides the failed message: one pass, then empty.
    let (out, progress) = collect_once(&queue, None).await;
    assert_eq!(progress.left, 1);
    assert_eq!(progress.objects, summary.objects.len() as u64 - 1);
    assert!(out.lines().count() > 0, "the other object is collected");
    assert_eq!(
        depth(&sqs, &queue).await,
        1,
        "the message of the missing object is kept, in flight"
    );
}

const MIB: usize = 1 << 20;

/// A forwarder object of exactly `lines` NDJSON lines of 1 KiB each, under its own key.
async fn put_object(s3: &aws_sdk_s3::Client, bucket: &str, name: &str, lines: usize) -> String {
    let key = format!("eks-audit/cluster=prod-east/dt=2024-05-21/hour=13/{name}.json.gz");
    let line = format!(
        "{{\"Verb\":\"get\",\"Pad\":\"{}\"}}\n",
        "x".repeat(1024 - 24)
    );
    assert_eq!(line.len(), 1024);
    s3.put_object()
        .bucket(bucket)
        .key(&key)
        .body(crate::common::gzip(line.repeat(lines).as_bytes()).into())
        .send()
        .await
        .unwrap();
    key
}

/// Sends one S3 notification message whose records name `keys`, in order.
async fn send_notification(sqs: &aws_sdk_sqs::Client, queue: &Queue, bucket: &str, keys: &[&str]) {
    let records: Vec<serde_json::Value> = keys
        .iter()
        .map(|key| {
            serde_json::json!({"eventName": "ObjectCreated:Put",
                "s3": {"bucket": {"name": bucket}, "object": {"key": key, "size": 1, "eTag": "e"}}})
        })
        .collect();
    sqs.send_message()
        .queue_url(&queue.url)
        .message_body(serde_json::json!({ "Records": records }).to_string())
        .send()
        .await
        .unwrap();
}

#[tokio::test(flavor = "current_thread")]
async fn a_message_naming_one_object_forty_times_writes_it_once_in_one_objects_memory() {
    // The probe's case: 40 records of one message name the same 8 MiB object. Collected once
    // per record, it came out 40 times and held 40 decompressed copies (406 MB at peak).
    // Expected: its 8,192 lines once; the 39 repeats skipped; and at peak the output (8 MiB)
    // plus one decompressed object (8 MiB, up to twice that while its buffer grows) plus the
    // SDK's buffers and the small gzip body: under 4 x 8 MiB. Forty copies would be 320 MiB.
    const LINES: usize = 8 * 1024;
    let (s3, sqs) = (moto::s3().await, moto::sqs().await);
    let bucket = new_bucket(&s3).await;
    let queue = new_queue(&sqs, None).await;
    let key = put_object(&s3, &bucket, "big", LINES).await;
    send_notification(&sqs, &queue, &bucket, &[key.as_str(); 40]).await;

    let collector = collector(&queue, None).await;
    let mut out = Vec::new();
    let base = peak::held();
    peak::reset();
    let progress = collector
        .run(&mut out, std::future::pending(), |_| {})
        .await
        .expect("collect runs");
    let peak = peak::since(base);

    assert_eq!(out.len(), LINES * 1024);
    assert_eq!(String::from_utf8(out).unwrap().lines().count(), LINES);
    assert_eq!(
        (
            progress.messages,
            progress.objects,
            progress.events,
            progress.skipped,
            progress.left
        ),
        (1, 1, LINES as u64, 39, 0)
    );
    eprintln!("collect: peak heap {peak} bytes for one 8 MiB object named 40 times");
    assert!(peak < 4 * 8 * MIB, "{peak} bytes at peak");
    assert_eq!(depth(&sqs, &queue).await, 0, "the message is deleted");
}

#[tokio::test]
async fn a_message_with_a_bad_object_among_good_ones_writes_none_of_them() {
    // Objects are now handled one at a time; a message stays all or nothing: the good objects
    // before and after the corrupted one are checked, nothing is written, and the message is
    // left for the redrive policy.
    let (s3, sqs) = (moto::s3().await, moto::sqs().await);
    let bucket = new_bucket(&s3).await;
    let queue = new_queue(&sqs, None).await;
    let first = put_object(&s3, &bucket, "first", 3).await;
    let bad = put_corrupted(&s3, &bucket).await;
    let last = put_object(&s3, &bucket, "last", 2).await;
    send_notification(&sqs, &queue, &bucket, &[&first, &bad, &last, &first]).await;
    let (out, progress) = collect_once(&queue, None).await;
    assert_eq!(out, "", "nothing of the message is written");
    assert_eq!(
        (progress.left, progress.messages, progress.objects),
        (1, 0, 0)
    );
    assert_eq!(depth(&sqs, &queue).await, 1, "the message stays, in flight");

    // Without the bad object the same message delivers each object once, in order.
    send_notification(&sqs, &queue, &bucket, &[&first, &last, &first]).await;
    let (out, progress) = collect_once(&queue, Some(0)).await;
    assert_eq!(out.lines().count(), 3 + 2);
    assert_eq!(
        (progress.messages, progress.objects, progress.skipped),
        (1, 2, 1)
    );
}

fn eks_audit(args: &[&str]) -> Command {
    let mut command = Command::new(env!("CARGO_BIN_EXE_eks-audit"));
    command
        .args(args)
        .env_remove("AWS_PROFILE")
        .env("RUST_LOG", "info");
    for (name, value) in moto::env() {
        command.env(name, value);
    }
    command
}

#[tokio::test]
async fn the_collect_command_drains_the_queue_into_a_file_and_exits_1_when_a_message_is_left() {
    let s3 = moto::s3().await;
    let (bucket, queue, _) = notified_bucket(None).await;
    let summary = direct(
        &s3_handler(&bucket, None).await,
        &sample("awslogs-eks-audit.json"),
    )
    .await;
    let bad_key = put_corrupted(&s3, &bucket).await;
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("events.ndjson");

    let output = eks_audit(&[
        "collect",
        "--queue-url",
        &queue.url,
        "--once",
        "--wait-seconds",
        "0",
    ])
    .args(["--output", file.to_str().unwrap()])
    .output()
    .unwrap();

    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(output.status.code(), Some(1), "{stderr}");
    assert!(output.stdout.is_empty(), "events go to the file");
    assert!(stderr.contains("left in the queue"), "{stderr}");
    assert!(
        stderr.contains(&bad_key),
        "the log names the object: {stderr}"
    );
    let written = std::fs::read_to_string(&file).unwrap();
    assert_eq!(written.lines().count() as u64, summary.tally.kept);
}

#[tokio::test]
async fn ctrl_c_stops_a_running_collector_cleanly() {
    let (_, queue, _) = notified_bucket(None).await;
    let mut child = eks_audit(&["collect", "--queue-url", &queue.url, "--wait-seconds", "1"])
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    tokio::time::sleep(Duration::from_millis(1500)).await;
    assert!(
        child.try_wait().unwrap().is_none(),
        "without --once it keeps polling"
    );
    let interrupted = Command::new("kill")
        .args(["-INT", &child.id().to_string()])
        .status()
        .unwrap();
    assert!(interrupted.success());
    let deadline = Instant::now() + Duration::from_secs(10);
    let status = loop {
        if let Some(status) = child.try_wait().unwrap() {
            break status;
        }
        assert!(Instant::now() < deadline, "collect did not stop on SIGINT");
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    let mut stderr = String::new();
    std::io::Read::read_to_string(child.stderr.as_mut().unwrap(), &mut stderr).unwrap();
    assert_eq!(status.code(), Some(0), "{stderr}");
    assert!(stderr.contains("interrupted"), "{stderr}");
}

/// The ETag S3 gives `key` (unquoted, as notifications write it).
async fn etag(s3: &aws_sdk_s3::Client, bucket: &str, key: &str) -> String {
    let head = s3
        .head_object()
        .bucket(bucket)
        .key(key)
        .send()
        .await
        .unwrap();
    head.e_tag().unwrap().trim_matches('"').to_owned()
}

async fn send_body(sqs: &aws_sdk_sqs::Client, queue: &Queue, body: String) {
    sqs.send_message()
        .queue_url(&queue.url)
        .message_body(body)
        .send()
        .await
        .unwrap();
}

/// An S3 notification as S3 writes it: the key URL-encoded, the ETag unquoted.
fn s3_notification(bucket: &str, key: &str, etag: &str) -> serde_json::Value {
    let encoded = key.replace('=', "%3D");
    serde_json::json!({"Records": [{"eventVersion": "2.1", "eventSource": "aws:s3",
        "eventName": "ObjectCreated:Put", "s3": {"s3SchemaVersion": "1.0", "bucket": {"name": bucket},
        "object": {"key": encoded, "size": 1, "eTag": etag, "sequencer": "0055AED6DCD90281E5"}}}]})
}

/// An EventBridge `detail-type` event for `key` (not URL-encoded), as EventBridge sends it
/// to an SQS target.
fn eventbridge_event(detail_type: &str, bucket: &str, key: &str, etag: &str) -> String {
    serde_json::json!({"version": "0", "id": "17793124-05d4-b198-2fde-7ededc63b103",
        "detail-type": detail_type, "source": "aws.s3", "account": "123456789012",
        "time": "2024-05-21T13:00:00Z", "region": "us-east-1", "resources": [format!("arn:aws:s3:::{bucket}")],
        "detail": {"version": "0", "bucket": {"name": bucket},
            "object": {"key": key, "size": 1, "etag": etag, "sequencer": "00617F08299329D189"},
            "request-id": "N4N7GDK58NMKJ12R", "requester": "123456789012", "reason": "PutObject"}})
    .to_string()
}

#[tokio::test]
async fn every_notification_shape_is_collected_and_other_eventbridge_events_are_deleted() {
    let (s3, sqs) = (moto::s3().await, moto::sqs().await);
    let bucket = new_bucket(&s3).await;
    let queue = new_queue(&sqs, None).await;
    let mut keys = Vec::new();
    for (name, lines) in [("eventbridge", 1), ("sns-wrapped", 2), ("sns-raw", 3)] {
        keys.push(put_object(&s3, &bucket, name, lines).await);
    }
    let etags = [
        etag(&s3, &bucket, &keys[0]).await,
        etag(&s3, &bucket, &keys[1]).await,
        etag(&s3, &bucket, &keys[2]).await,
    ];
    // S3 → EventBridge → SQS: the key as it is (`=` not encoded).
    assert!(keys[0].contains('='));
    let created = eventbridge_event("Object Created", &bucket, &keys[0], &etags[0]);
    send_body(&sqs, &queue, created).await;
    let deleted = eventbridge_event("Object Deleted", &bucket, &keys[0], &etags[0]);
    send_body(&sqs, &queue, deleted).await;
    // S3 → SNS → SQS, raw message delivery off: the notification is the envelope's Message.
    let envelope = serde_json::json!({"Type": "Notification", "MessageId": "m",
        "TopicArn": "arn:aws:sns:us-east-1:123456789012:audit", "Subject": "Amazon S3 Notification",
        "Message": s3_notification(&bucket, &keys[1], &etags[1]).to_string(),
        "Timestamp": "2024-05-21T13:00:00.000Z", "SignatureVersion": "1"});
    send_body(&sqs, &queue, envelope.to_string()).await;
    // Raw message delivery on: the body is S3's notification itself.
    let raw = s3_notification(&bucket, &keys[2], &etags[2]).to_string();
    send_body(&sqs, &queue, raw).await;

    let (out, progress) = collect_once(&queue, None).await;
    assert_eq!(out.lines().count(), 1 + 2 + 3, "each object's lines once");
    assert_eq!(
        (
            progress.messages,
            progress.objects,
            progress.skipped,
            progress.left
        ),
        (4, 3, 1, 0),
        "the Object Deleted event skipped"
    );
    assert_eq!(depth(&sqs, &queue).await, 0, "every message deleted");
}

#[tokio::test]
async fn a_notification_repeated_for_the_same_key_and_etag_is_written_once() {
    let (s3, sqs) = (moto::s3().await, moto::sqs().await);
    let bucket = new_bucket(&s3).await;
    let queue = new_queue(&sqs, None).await;
    let key = put_object(&s3, &bucket, "repeated", 4).await;
    let tag = etag(&s3, &bucket, &key).await;
    // S3 may deliver a notification twice; and the same object through two routes.
    let notification = s3_notification(&bucket, &key, &tag).to_string();
    send_body(&sqs, &queue, notification.clone()).await;
    send_body(&sqs, &queue, notification).await;
    send_body(
        &sqs,
        &queue,
        eventbridge_event("Object Created", &bucket, &key, &tag),
    )
    .await;
    let (out, progress) = collect_once(&queue, None).await;
    assert_eq!(out.lines().count(), 4, "the object's events once");
    assert_eq!(
        (progress.messages, progress.objects, progress.skipped),
        (3, 1, 2)
    );
    assert_eq!(depth(&sqs, &queue).await, 0, "the repeats are deleted");

    // The same key rewritten (another ETag) is a new object: collected again.
    let rewritten = put_object(&s3, &bucket, "repeated", 5).await;
    let new_tag = etag(&s3, &bucket, &rewritten).await;
    assert_ne!(new_tag, tag);
    let collector = collector(&queue, None).await;
    send_body(
        &sqs,
        &queue,
        s3_notification(&bucket, &key, &tag).to_string(),
    )
    .await;
    let mut out = Vec::new();
    let first = collector
        .run(&mut out, std::future::pending(), |_| {})
        .await
        .unwrap();
    // The old ETag names what is now the new object: the GET reads it, and it is written.
    assert_eq!((first.objects, out.len()), (1, 5 * 1024));
}

/// Events of the flat format, one per audit id, as NDJSON.
fn flat_events(ids: &[&str]) -> String {
    ids.iter()
        .map(|id| {
            format!(
                "{}\n",
                serde_json::json!({"Verb": "get", "Stage": "ResponseComplete", "AuditId": id})
            )
        })
        .collect()
}

async fn put_lines(s3: &aws_sdk_s3::Client, bucket: &str, name: &str, ndjson: &str) -> String {
    let key = format!("eks-audit/cluster=prod-east/dt=2024-05-21/hour=13/{name}.json.gz");
    s3.put_object()
        .bucket(bucket)
        .key(&key)
        .body(crate::common::gzip(ndjson.as_bytes()).into())
        .send()
        .await
        .unwrap();
    key
}

#[tokio::test]
async fn dedup_drops_an_audit_id_repeated_across_two_objects() {
    let (s3, sqs) = (moto::s3().await, moto::sqs().await);
    let bucket = new_bucket(&s3).await;
    let queue = new_queue(&sqs, None).await;
    // Re-ingestion wrote `b` and `c` again, in another object; `d` has another stage.
    let first = put_lines(&s3, &bucket, "first", &flat_events(&["a", "b", "c"])).await;
    let again = format!(
        "{}{}\n",
        flat_events(&["b", "c", "e"]),
        serde_json::json!({"Verb": "get", "Stage": "ResponseStarted", "AuditId": "a"})
    );
    let second = put_lines(&s3, &bucket, "second", &again).await;
    for dedup in [false, true] {
        send_notification(&sqs, &queue, &bucket, &[&first]).await;
        send_notification(&sqs, &queue, &bucket, &[&second]).await;
        let (out, progress) = collect_with(Options {
            dedup,
            ..options(&queue, None)
        })
        .await;
        let ids: Vec<String> = out
            .lines()
            .map(|l| {
                let v: serde_json::Value = serde_json::from_str(l).unwrap();
                format!(
                    "{}/{}",
                    v["AuditId"].as_str().unwrap(),
                    v["Stage"].as_str().unwrap()
                )
            })
            .collect();
        if dedup {
            assert_eq!(
                ids,
                [
                    "a/ResponseComplete",
                    "b/ResponseComplete",
                    "c/ResponseComplete",
                    "e/ResponseComplete",
                    "a/ResponseStarted"
                ]
            );
            assert_eq!((progress.events, progress.duplicates), (5, 2));
            assert_eq!(progress.bytes, out.len() as u64);
        } else {
            assert_eq!((ids.len(), progress.duplicates), (7, 0));
        }
        assert_eq!(progress.objects, 2);
    }
}

/// An output that blocks for `delay` on its first write: a slow disk, or a pipe to a consumer
/// that does not keep up.
struct SlowOutput {
    delay: Duration,
    written: Vec<u8>,
}

impl std::io::Write for SlowOutput {
    fn write(&mut self, bytes: &[u8]) -> std::io::Result<usize> {
        if self.written.is_empty() {
            std::thread::sleep(self.delay);
        }
        self.written.extend_from_slice(bytes);
        Ok(bytes.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_slow_message_is_kept_hidden_by_heartbeats_and_not_delivered_twice() {
    let (s3, sqs) = (moto::s3().await, moto::sqs().await);
    let bucket = new_bucket(&s3).await;
    let queue = new_queue(&sqs, None).await;
    let key = put_object(&s3, &bucket, "slow", 3).await;
    send_notification(&sqs, &queue, &bucket, &[&key]).await;

    // Visibility 2 s; the output takes 6 s: without heartbeats the message would be visible
    // again after 2 s, to this test's receive as to any other consumer.
    let collector = collector(&queue, Some(2)).await;
    let running = tokio::spawn(async move {
        let mut out = SlowOutput {
            delay: Duration::from_secs(6),
            written: Vec::new(),
        };
        let progress = collector
            .run(&mut out, std::future::pending(), |_| {})
            .await
            .expect("collect runs");
        (progress, out.written)
    });
    tokio::time::sleep(Duration::from_millis(500)).await;
    let mut redelivered = 0;
    for _ in 0..8 {
        tokio::time::sleep(Duration::from_millis(500)).await;
        let received = sqs
            .receive_message()
            .queue_url(&queue.url)
            .visibility_timeout(0)
            .send()
            .await
            .unwrap();
        redelivered += received.messages().len();
    }
    let (progress, written) = running.await.unwrap();
    assert_eq!(
        redelivered, 0,
        "the message stayed hidden while it was handled"
    );
    assert_eq!(written.len(), 3 * 1024);
    assert_eq!((progress.messages, progress.objects), (1, 1));
    assert_eq!(depth(&sqs, &queue).await, 0, "the message is deleted");
}

/// Objects `name-00`, `name-01`, ... of two lines each, `{"Object":i,"Line":j}`; their keys.
async fn numbered_objects(
    s3: &aws_sdk_s3::Client,
    bucket: &str,
    name: &str,
    count: usize,
) -> Vec<String> {
    let mut keys = Vec::new();
    for i in 0..count {
        let ndjson: String = (0..2)
            .map(|j| {
                format!(
                    "{}\n",
                    serde_json::json!({"Verb": "get", "Object": i, "Line": j})
                )
            })
            .collect();
        keys.push(put_lines(s3, bucket, &format!("{name}-{i:02}"), &ndjson).await);
    }
    keys
}

/// The objects of `out` in the order written, one entry per object (its two lines in order).
fn objects_written(out: &str) -> Vec<u64> {
    let lines: Vec<serde_json::Value> = out
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    lines
        .chunks(2)
        .map(|pair| {
            let object = pair[0]["Object"].as_u64().unwrap();
            assert_eq!(pair.len(), 2, "{out}");
            assert_eq!(
                (pair[0]["Line"].as_u64(), pair[1]["Line"].as_u64()),
                (Some(0), Some(1))
            );
            assert_eq!(
                pair[1]["Object"].as_u64(),
                Some(object),
                "an object's lines together"
            );
            object
        })
        .collect()
}

/// A collector reading `queue` directly and the objects through `proxy`.
async fn collector_through(proxy: &Proxy, queue: &Queue, concurrency: usize) -> Collector {
    let s3 = eks_audit_forwarder::sink::s3::client(&moto::config_for(&proxy.endpoint).await);
    let options = Options {
        concurrency,
        ..options(queue, None)
    };
    Collector::new(moto::sqs().await, s3, options)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn downloads_overlap_up_to_the_concurrency_and_each_message_comes_out_in_order() {
    let (s3, sqs) = (moto::s3().await, moto::sqs().await);
    let bucket = new_bucket(&s3).await;
    let queue = new_queue(&sqs, None).await;
    let keys = numbered_objects(&s3, &bucket, "n", 12).await;
    let key = |i: usize| keys[i].as_str();
    // Three messages of 4, 6 and 2 objects.
    let messages: [Vec<u64>; 3] = [(0..4).collect(), (4..10).collect(), vec![10, 11]];
    // The later an object is named, the sooner it answers: completion order is the reverse of
    // the order the objects must be written in.
    let delay: Delay = Arc::new(|operation: &str, path: &str| {
        let index: u64 = path
            .rsplit_once("n-")
            .and_then(|(_, rest)| rest.get(..2))
            .and_then(|i| i.parse().ok())
            .unwrap_or(0);
        match operation {
            "GetObject" => Duration::from_millis(60 + 15 * (12 - index)),
            _ => Duration::ZERO,
        }
    });
    for (concurrency, gets) in [(1, 8 + 12 + 4), (2, 8 + 12 + 2), (4, 4 + 12 + 2)] {
        for message in &messages {
            let named: Vec<&str> = message.iter().map(|&i| key(i as usize)).collect();
            send_notification(&sqs, &queue, &bucket, &named).await;
        }
        let proxy = Proxy::start_with(
            moto::endpoint(),
            ProxyOptions {
                delay: Some(delay.clone()),
                ..ProxyOptions::default()
            },
        )
        .await;
        let collector = collector_through(&proxy, &queue, concurrency).await;
        let started = Instant::now();
        let mut out = Vec::new();
        let progress = collector
            .run(&mut out, std::future::pending(), |_| {})
            .await
            .expect("collect runs");
        let took = started.elapsed();

        let written = objects_written(&String::from_utf8(out).unwrap());
        // Messages may come in any order from a standard queue; each one's objects come out
        // together, in the order it names them.
        let mut blocks: Vec<&[u64]> = Vec::new();
        let mut rest = written.as_slice();
        while let Some(message) = messages.iter().find(|m| rest.starts_with(m)) {
            blocks.push(message);
            rest = &rest[message.len()..];
        }
        assert!(
            rest.is_empty() && blocks.len() == 3,
            "concurrency {concurrency}: objects written {written:?}"
        );
        assert_eq!(
            (progress.messages, progress.objects, progress.left),
            (3, 12, 0)
        );
        let stats = proxy.stats();
        let get = &stats["GetObject"];
        eprintln!(
            "collect --concurrency {concurrency}: {} GetObject calls, at most {} at once, {took:?}",
            get.calls, get.most_in_flight
        );
        assert_eq!(
            get.most_in_flight, concurrency as u64,
            "never more downloads at once than the bound, and that many when there is work"
        );
        // A message of more objects than the bound has each checked, then written: two
        // downloads each.
        assert_eq!(get.calls, gets, "concurrency {concurrency}");
        assert_eq!(depth(&sqs, &queue).await, 0, "every message deleted");
    }
}

#[tokio::test]
async fn a_bad_object_leaves_its_message_whole_while_the_others_of_the_receive_are_collected() {
    let (s3, sqs) = (moto::s3().await, moto::sqs().await);
    let bucket = new_bucket(&s3).await;
    let queue = new_queue(&sqs, None).await;
    let keys = numbered_objects(&s3, &bucket, "b", 6).await;
    let bad = put_corrupted(&s3, &bucket).await;
    // More objects than the bound (checked first), and as many (held, then written).
    send_notification(&sqs, &queue, &bucket, &[&keys[0], &keys[1], &bad, &keys[2]]).await;
    send_notification(&sqs, &queue, &bucket, &[&keys[3], &bad]).await;
    send_notification(&sqs, &queue, &bucket, &[&keys[4], &keys[5]]).await;

    let (out, progress) = collect_with(Options {
        concurrency: 2,
        ..options(&queue, None)
    })
    .await;

    assert_eq!(
        objects_written(&out),
        [4, 5],
        "only the good message is written"
    );
    assert_eq!(
        (progress.messages, progress.objects, progress.left),
        (1, 2, 2)
    );
    assert_eq!(
        depth(&sqs, &queue).await,
        2,
        "the two bad messages stay, in flight"
    );
}

/// An output that counts what it is given and keeps nothing, so that a memory measurement
/// sees only the collector.
#[derive(Default)]
struct Counted(usize);

impl std::io::Write for Counted {
    fn write(&mut self, bytes: &[u8]) -> std::io::Result<usize> {
        self.0 += bytes.len();
        Ok(bytes.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

#[tokio::test(flavor = "current_thread")]
async fn memory_is_bounded_by_the_concurrency_times_one_object() {
    // Eight 4 MiB objects, one per message, all in one receive, downloaded two at a time: two
    // objects held at once at most, under 3 x 8 MiB even if each buffer doubled past 4 MiB.
    // Measured: 6.2 MB with a bound of 2; 41 MB with 8, all of them held.
    const LINES: usize = 4 * 1024;
    let (s3, sqs) = (moto::s3().await, moto::sqs().await);
    let bucket = new_bucket(&s3).await;
    let queue = new_queue(&sqs, None).await;
    for i in 0..8 {
        let key = put_object(&s3, &bucket, &format!("m-{i}"), LINES).await;
        send_notification(&sqs, &queue, &bucket, &[&key]).await;
    }
    let collector = collector_with(Options {
        concurrency: 2,
        ..options(&queue, None)
    })
    .await;
    let mut out = Counted::default();
    let base = peak::held();
    peak::reset();
    let progress = collector
        .run(&mut out, std::future::pending(), |_| {})
        .await
        .expect("collect runs");
    let peak = peak::since(base);

    assert_eq!((progress.objects, out.0), (8, 8 * LINES * 1024));
    eprintln!("collect --concurrency 2: peak heap {peak} bytes for eight 4 MiB objects");
    assert!(peak < 3 * 8 * MIB, "{peak} bytes at peak");
}
