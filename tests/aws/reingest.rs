//! contract §2 re-ingestion against moto's Firehose: what does not fit the response goes back into
//! the delivery stream, and every event arrives exactly once, through the response or through
//! the stream. Failures come from the proxy, since moto always accepts.

use std::time::Duration;

use eks_audit_core::batch::reingest::FirehoseLimits;
use eks_audit_core::envelope::models::{FirehoseResponse, FirehoseResult};
use eks_audit_core::envelope::{decompress, parse_messages};
use eks_audit_forwarder::config::Settings;
use eks_audit_forwarder::handler::{HandlerError, Invocation, Response};
use eks_audit_forwarder::sink::firehose::{ReingestError, Reingester, RetryPolicy};
use serde_json::Value;

use crate::common::{TestHandler, control_message, firehose_event_for, gzip_record, ok_lines};
use crate::events::Traffic;
use crate::moto::{self, ACCOUNT, REGION, unique};
use crate::proxy::{Fault, Proxy};
use crate::resources::{Stream, new_stream_in};

async fn new_stream() -> Stream {
    new_stream_in(REGION).await
}

/// Fast retries for tests.
const QUICK: RetryPolicy = RetryPolicy {
    max_attempts: 4,
    base_delay: Duration::from_millis(2),
    max_delay: Duration::from_millis(20),
};

/// A Firehose-mode handler (no bucket) re-ingesting through `endpoint` with the library's own
/// client set-up.
async fn handler(endpoint: &str, policy: RetryPolicy, limits: FirehoseLimits) -> TestHandler {
    let client = eks_audit_forwarder::sink::firehose::client(&moto::config_for(endpoint).await);
    with_reingester(Reingester::new(client, policy).with_limits(limits))
}

fn with_reingester(reingester: Reingester) -> TestHandler {
    let TestHandler { handler, dir } = crate::common::handler(Settings::default());
    TestHandler {
        handler: handler.with_reingester(reingester),
        dir,
    }
}

fn firehose_response(invocation: &Invocation) -> &FirehoseResponse {
    match &invocation.response {
        Response::Firehose(response) => response,
        other => panic!("expected a Firehose response, got {other:?}"),
    }
}

/// What the stream delivered: per object (one per `PutRecordBatch` call), its subscription
/// messages as (log stream, event count); and the ids of the events the next pass keeps.
struct Delivered {
    calls: Vec<Vec<(String, usize)>>,
    bytes: Vec<usize>,
    event_ids: Vec<String>,
}

async fn delivered(stream: &Stream) -> Delivered {
    let s3 = moto::s3().await;
    let mut found = Delivered {
        calls: Vec::new(),
        bytes: Vec::new(),
        event_ids: Vec::new(),
    };
    for key in crate::s3_objects::keys(&s3, &stream.bucket).await {
        assert!(key.starts_with("delivered/"), "{key}");
        let object = s3
            .get_object()
            .bucket(&stream.bucket)
            .key(&key)
            .send()
            .await
            .unwrap();
        let body = object.body.collect().await.unwrap().into_bytes().to_vec();
        found.bytes.push(body.len());
        // Records are concatenated gzip members, as Firehose writes them to S3.
        let json = decompress(body.clone(), 1 << 30).expect("gzip payloads");
        let mut unescaped = Vec::new();
        let messages =
            parse_messages(&json, &mut unescaped, usize::MAX).expect("subscription messages");
        found.calls.push(
            messages
                .iter()
                .map(|m| (m.log_stream.to_string(), m.log_events.len()))
                .collect(),
        );
        // The next pass: the very transformation the handler runs.
        let next = eks_audit_core::transform::transform(
            body,
            &eks_audit_core::ProcessOptions::default(),
            Some(REGION),
        )
        .unwrap();
        assert!(next.problems.is_empty(), "{:?}", next.problems);
        let text = String::from_utf8(next.ndjson).unwrap();
        found.event_ids.extend(text.lines().map(|l| {
            serde_json::from_str::<Value>(l).unwrap()["EventId"]
                .as_str()
                .unwrap()
                .to_owned()
        }));
    }
    found
}

/// The event ids of the `Ok` records of a response.
fn ok_event_ids(response: &FirehoseResponse) -> Vec<String> {
    response
        .records
        .iter()
        .filter(|r| r.result == FirehoseResult::Ok)
        .flat_map(|r| ok_lines(&r.data))
        .map(|line| line["EventId"].as_str().unwrap().to_owned())
        .collect()
}

fn sorted(mut ids: Vec<String>) -> Vec<String> {
    ids.sort_unstable();
    ids
}

#[tokio::test]
async fn an_oversized_response_is_reingested_and_every_event_arrives_exactly_once() {
    let stream = new_stream().await;
    // A busy minute: 3,000 records of one Metadata-level event each, then one record of 1,000
    // events with request and response bodies whose output alone could never fit half a
    // response. All gzip, as Firehose sends CloudWatch Logs data with Decompression off.
    let mut busy = Traffic::metadata_only(1);
    let mut datas = vec![gzip_record(&control_message())];
    let mut expected = Vec::new();
    for _ in 0..3_000 {
        let events = busy.events(1);
        expected.extend(events.iter().filter(|e| e.kept).map(|e| e.id.clone()));
        datas.push(gzip_record(&busy.message(&events)));
    }
    let mut big = Traffic::new(2);
    let big_events = big.events(1_000);
    expected.extend(big_events.iter().filter(|e| e.kept).map(|e| e.id.clone()));
    datas.push(gzip_record(&big.message(&big_events)));
    let event = firehose_event_for(&stream.arn, &datas);
    assert!(
        event.len() < 6 << 20,
        "within Lambda's 6 MB request limit: {} bytes",
        event.len()
    );

    let test = handler(
        moto::endpoint(),
        RetryPolicy::default(),
        FirehoseLimits::default(),
    )
    .await;
    let started = std::time::Instant::now();
    let invocation = test
        .handler
        .invoke(&event)
        .await
        .expect("the invocation succeeds");
    let took = started.elapsed();
    let response = firehose_response(&invocation);

    let size = serde_json::to_vec(response).unwrap().len();
    assert!(size <= 6_000_000, "response of {size} bytes");
    assert_eq!(
        response.records.len(),
        datas.len(),
        "every record answered once"
    );
    assert!(
        response
            .records
            .iter()
            .all(|r| r.result != FirehoseResult::ProcessingFailed)
    );
    let reingested = invocation.tally.reingested_records;
    assert!(
        reingested > 500,
        "{reingested} records re-ingested: more than one call's worth"
    );
    assert_eq!(
        response.records.last().unwrap().result,
        FirehoseResult::Dropped,
        "the big record went back to the stream"
    );

    let stream_out = delivered(&stream).await;
    assert!(
        stream_out.calls.len() >= 2,
        "{} PutRecordBatch calls",
        stream_out.calls.len()
    );
    for (call, bytes) in stream_out.calls.iter().zip(&stream_out.bytes) {
        assert!(call.len() <= 500, "{} records in one call", call.len());
        assert!(*bytes <= 4 << 20, "{bytes} bytes in one call");
    }
    let big_pieces: Vec<usize> = stream_out
        .calls
        .iter()
        .flatten()
        .filter(|(s, _)| *s == big.stream)
        .map(|(_, n)| *n)
        .collect();
    assert!(
        big_pieces.len() >= 2,
        "the big record was split: {big_pieces:?}"
    );
    assert_eq!(
        big_pieces.iter().sum::<usize>(),
        big_events.len(),
        "its pieces hold each of its events once"
    );

    let mut arrived = ok_event_ids(response);
    assert!(!arrived.is_empty(), "what fits stays in the response");
    arrived.extend(stream_out.event_ids);
    assert_eq!(
        sorted(arrived),
        sorted(expected),
        "every kept event exactly once, response or stream"
    );
    eprintln!(
        "re-ingestion: {} records, {reingested} re-ingested in {} calls ({} bytes), response {size} bytes, {took:?}",
        datas.len(),
        stream_out.calls.len(),
        stream_out.bytes.iter().sum::<usize>()
    );
}

/// A small overflowing event: 12 records of two events, and a 20,000-byte response limit.
fn small_overflow(stream: &Stream, seed: u64) -> (String, Vec<String>, FirehoseLimits) {
    let mut traffic = Traffic::new(seed);
    let mut expected = Vec::new();
    let datas: Vec<String> = (0..12)
        .map(|_| {
            let events = traffic.events(2);
            expected.extend(events.iter().filter(|e| e.kept).map(|e| e.id.clone()));
            gzip_record(&traffic.message(&events))
        })
        .collect();
    (
        firehose_event_for(&stream.arn, &datas),
        expected,
        FirehoseLimits {
            max_response_bytes: 20_000,
            ..FirehoseLimits::default()
        },
    )
}

async fn assert_exactly_once(stream: &Stream, invocation: &Invocation, expected: Vec<String>) {
    let mut arrived = ok_event_ids(firehose_response(invocation));
    arrived.extend(delivered(stream).await.event_ids);
    assert_eq!(
        sorted(arrived),
        sorted(expected),
        "every kept event exactly once"
    );
}

#[tokio::test]
async fn records_that_fail_in_a_batch_are_retried_alone_until_accepted() {
    let stream = new_stream().await;
    let (event, expected, limits) = small_overflow(&stream, 3);
    let proxy = Proxy::start(moto::endpoint(), Fault::FailEveryOtherRecord { calls: 2 }).await;
    let test = handler(&proxy.endpoint, QUICK, limits).await;

    let invocation = test.handler.invoke(&event).await.expect("retries succeed");

    let calls: Vec<usize> = proxy.calls().iter().map(|c| c.records).collect();
    let first = invocation.tally.reingested_records as usize;
    assert!(first >= 4, "{first} records re-ingested");
    assert_eq!(
        calls,
        [first, first / 2, first / 2 / 2],
        "each retry sends only the failed records"
    );
    assert_exactly_once(&stream, &invocation, expected).await;
}

#[tokio::test]
async fn server_errors_are_retried_with_backoff() {
    let stream = new_stream().await;
    let (event, expected, limits) = small_overflow(&stream, 4);
    let proxy = Proxy::start(moto::endpoint(), Fault::ServerError { calls: 2 }).await;
    let test = handler(&proxy.endpoint, QUICK, limits).await;

    let invocation = test
        .handler
        .invoke(&event)
        .await
        .expect("the third call succeeds");

    assert_eq!(
        proxy.calls().len(),
        3,
        "two 500s, then success; the SDK's own retries are off"
    );
    assert_exactly_once(&stream, &invocation, expected).await;
}

#[tokio::test]
async fn when_retries_run_out_the_invocation_fails_so_firehose_retries_it() {
    let stream = new_stream().await;
    let (event, _, limits) = small_overflow(&stream, 5);
    let proxy = Proxy::start(moto::endpoint(), Fault::FailAllRecords).await;
    let test = handler(&proxy.endpoint, QUICK, limits).await;

    let error = test.handler.invoke(&event).await.unwrap_err();

    let HandlerError::Reingest(ReingestError::GaveUp {
        stream: name,
        failed,
        sent,
        attempts,
        last_error,
    }) = &error
    else {
        panic!("expected a give-up, got {error}")
    };
    assert_eq!(
        (name.as_str(), *attempts),
        (stream.name.as_str(), QUICK.max_attempts)
    );
    assert_eq!(failed, sent, "every record still failing");
    assert!(
        last_error.contains("ServiceUnavailableException"),
        "{last_error}"
    );
    assert_eq!(
        proxy.calls().len(),
        QUICK.max_attempts as usize,
        "bounded attempts"
    );
    let text = error.to_string();
    assert!(
        text.contains(&stream.name) && text.contains("after 4 attempt(s)"),
        "{text}"
    );
    assert!(delivered(&stream).await.calls.is_empty());
}

#[tokio::test]
async fn records_go_back_to_the_region_the_stream_arn_names() {
    // The client is configured for us-east-1; the stream lives in eu-west-1.
    let stream = new_stream_in("eu-west-1").await;
    let (event, expected, limits) = small_overflow(&stream, 8);
    let test = handler(moto::endpoint(), QUICK, limits).await;

    let invocation = test
        .handler
        .invoke(&event)
        .await
        .expect("re-ingested into eu-west-1");

    assert!(invocation.tally.reingested_records > 0);
    assert_exactly_once(&stream, &invocation, expected).await;
}

#[tokio::test]
async fn a_missing_delivery_stream_is_refused_without_retrying() {
    let name = unique("no-such-stream");
    let arn = format!("arn:aws:firehose:{REGION}:{ACCOUNT}:deliverystream/{name}");
    let stream = Stream {
        name,
        arn,
        bucket: String::new(),
    };
    let (event, _, limits) = small_overflow(&stream, 6);
    let proxy = Proxy::start(moto::endpoint(), Fault::FailEveryOtherRecord { calls: 0 }).await;
    let test = handler(&proxy.endpoint, QUICK, limits).await;

    let error = test.handler.invoke(&event).await.unwrap_err();

    assert!(
        matches!(
            &error,
            HandlerError::Reingest(ReingestError::Refused { .. })
        ),
        "{error}"
    );
    assert!(
        error.to_string().contains("ResourceNotFoundException"),
        "{error}"
    );
    assert_eq!(proxy.calls().len(), 1);
}

#[tokio::test]
async fn reingestion_without_a_firehose_client_fails_clearly() {
    let stream = Stream {
        name: "eks-audit".into(),
        arn: format!("arn:aws:firehose:{REGION}:{ACCOUNT}:deliverystream/eks-audit"),
        bucket: String::new(),
    };
    let (event, _, limits) = small_overflow(&stream, 7);
    let test = with_reingester(Reingester::none().with_limits(limits));

    let error = test.handler.invoke(&event).await.unwrap_err();

    assert!(
        matches!(
            &error,
            HandlerError::Reingest(ReingestError::NoClient { .. })
        ),
        "{error}"
    );
    assert!(
        error
            .to_string()
            .contains("no Firehose client is configured"),
        "{error}"
    );
    assert!(error.to_string().contains("eks-audit"), "{error}");
}
