//! `eks-audit collect` against moto: the library's collector, and the command itself.

use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use eks_audit_forwarder::collect::{Collector, Options, Progress};

use crate::events::sample;
use crate::notifications::{Queue, depth, drain, new_queue, notify};
use crate::s3_objects::{direct, keys, lines, new_bucket, s3_handler};
use crate::{moto, peak};

async fn collector(queue: &Queue, visibility_timeout: Option<i32>) -> Collector {
    let options = Options {
        queue_url: queue.url.clone(),
        max_messages: 10,
        wait_seconds: 0,
        visibility_timeout,
        max_object_bytes: 64 << 20,
        once: true,
    };
    let s3 = eks_audit_forwarder::sink::s3::client(&moto::config().await);
    Collector::new(moto::sqs().await, s3, options)
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
