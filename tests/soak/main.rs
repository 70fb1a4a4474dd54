//! The soak test: thousands of Firehose and direct (`awslogs`) invocations of realistic audit
//! events through the handler against moto, with a fault proxy injecting throttling, HTTP 500s,
//! timeouts and partial `PutRecordBatch` failures into every S3, Firehose and SQS call; then
//! `eks-audit collect` (run throughout, through the same faults) and `eks-audit reconcile`. It
//! fails if a single event is lost: missing from the bucket by `reconcile`, or from what
//! `collect` wrote. Duplicates are allowed (retries make them) and counted.
//!
//! Size and faults come from the environment, so `scripts/soak.sh` runs the same test big:
//! `EKS_AUDIT_SOAK_INVOCATIONS` (default 1,000: the short form `cargo test` runs),
//! `EKS_AUDIT_SOAK_FAULT_RATE` (default 0.1, of every call through the proxy),
//! `EKS_AUDIT_SOAK_SEED` (default 1), `EKS_AUDIT_SOAK_WORKERS` (Lambda execution environments,
//! default 16); `EKS_AUDIT_SOAK_LOG` (a `RUST_LOG` filter) prints the handler's logs;
//! `EKS_AUDIT_SOAK_BIN` names the `eks-audit` binary to run instead of cargo's. The figures are
//! printed on stderr (`--nocapture`).
//!
//! Its own test binary, so its own moto server: its load does not slow the other emulator
//! tests' timings.

#[path = "../common/mod.rs"]
mod common;
#[allow(dead_code)]
#[path = "../aws/events.rs"]
mod events;
#[allow(dead_code)]
#[path = "../aws/moto.rs"]
mod moto;
#[path = "../aws/proxy.rs"]
mod proxy;
#[path = "../aws/resources.rs"]
mod resources;

mod cloudwatch;
mod corpus;
mod downstream;
mod lambda;
mod report;

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use aws_config::timeout::TimeoutConfig;
use eks_audit_forwarder::config::Settings;
use eks_audit_forwarder::handler::Handler;
use eks_audit_forwarder::sink::ObjectStore;
use eks_audit_forwarder::sink::firehose::{Reingester, RetryPolicy};
use eks_audit_forwarder::sink::s3::S3Store;
use serde_json::{Value, json};
use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;

use crate::corpus::{Generator, Logged};
use crate::events::Random;
use crate::lambda::{Backlog, Environments, Firehose, Invocation, Mode};
use crate::moto::{REGION, unique};
use crate::proxy::{Chaos, Kind, Proxy};
use crate::resources::{new_bucket, new_queue, new_stream_in, notify};

/// How big and how hostile.
#[derive(Debug, Clone, Copy)]
pub struct Plan {
    /// First invocations: half direct, half Firehose (re-ingestion adds more).
    pub invocations: usize,
    /// Of every call through the proxy, 0 to 1.
    pub fault_rate: f64,
    /// Seeds the events, their batching and the faults.
    pub seed: u64,
    /// Lambda execution environments, each with its own handler.
    pub workers: usize,
}

impl Plan {
    fn from_env() -> Plan {
        fn var<T: std::str::FromStr>(name: &str, default: T) -> T {
            match std::env::var(name) {
                Ok(text) => text
                    .parse()
                    .unwrap_or_else(|_| panic!("{name}={text:?} is not valid")),
                Err(_) => default,
            }
        }
        let plan = Plan {
            invocations: var("EKS_AUDIT_SOAK_INVOCATIONS", 1_000),
            fault_rate: var("EKS_AUDIT_SOAK_FAULT_RATE", 0.1),
            seed: var("EKS_AUDIT_SOAK_SEED", 1),
            workers: var("EKS_AUDIT_SOAK_WORKERS", 16),
        };
        assert!(plan.invocations >= 2 && plan.workers >= 1, "{plan:?}");
        assert!((0.0..=1.0).contains(&plan.fault_rate), "{plan:?}");
        plan
    }
}

/// Events per subscription message, at most; records per ordinary Firehose invocation, at
/// most, and per large one, which overflows the response and re-ingests.
const EVENTS_PER_MESSAGE: usize = 6;
const RECORDS_PER_INVOCATION: usize = 6;
const RECORDS_PER_LARGE_INVOCATION: (usize, usize) = (8, 16);
/// One Firehose invocation in this many is large.
const LARGE_ONE_IN: usize = 5;
/// Audit streams per cluster (each cluster also has one stream that is not audit).
const AUDIT_STREAMS: usize = 3;
/// `eks-audit collect` processes polling the queue at once.
const COLLECTORS: usize = 8;
/// Notifications the queue may hold before the forwarder waits for the collectors.
const BACKLOG: usize = 400;
/// Longer than the handlers' attempt timeout ([`ATTEMPT_TIMEOUT`]).
const STALL: Duration = Duration::from_millis(1_300);
const ATTEMPT_TIMEOUT: Duration = Duration::from_secs(1);
/// A retry of a failed call fails again one time in two: faults come in bursts, and some
/// outlast the SDK's three attempts, failing the invocation for its caller to retry.
const BURST: f64 = 0.5;

fn floor_hour(time: OffsetDateTime) -> OffsetDateTime {
    time.replace_minute(0)
        .and_then(|t| t.replace_second(0))
        .and_then(|t| t.replace_nanosecond(0))
        .expect("valid times")
}

/// The subscription messages of one cluster, as (stream, number of events), in delivery order;
/// `stream` indexes the cluster's streams, the last of which is not an audit stream.
fn shapes(random: &mut Random, messages: usize) -> Vec<(usize, usize)> {
    (0..messages)
        .map(|i| {
            // One message in twenty from the stream that is not audit.
            let stream = if random.below(20) == 0 {
                AUDIT_STREAMS
            } else {
                i % AUDIT_STREAMS
            };
            (stream, 1 + random.below(EVENTS_PER_MESSAGE))
        })
        .collect()
}

/// Generates the events of every stream of `cluster` for `shapes`, in `[since, until)`, and
/// puts them into CloudWatch; returns the log group and each message of `shapes`.
async fn log(
    logs: &aws_sdk_cloudwatchlogs::Client,
    cluster: &str,
    shapes: &[(usize, usize)],
    window: (OffsetDateTime, OffsetDateTime),
    generator: &mut Generator,
    random: &mut Random,
) -> (cloudwatch::Group, Vec<Value>) {
    let mut names: Vec<String> = (0..AUDIT_STREAMS)
        .map(|_| format!("kube-apiserver-audit-{}", random.hex(32)))
        .collect();
    names.push(format!("kube-apiserver-{}", random.hex(32)));
    let span_ms = ((window.1 - window.0).whole_milliseconds() - 10_000).max(1) as usize;
    let streams: Vec<(String, Vec<Logged>)> = names
        .iter()
        .enumerate()
        .map(|(index, name)| {
            let count: usize = shapes
                .iter()
                .filter(|(s, _)| *s == index)
                .map(|(_, n)| n)
                .sum();
            let mut offsets: Vec<usize> = (0..count).map(|_| random.below(span_ms)).collect();
            offsets.sort_unstable();
            let mut events: Vec<Logged> = offsets
                .into_iter()
                .map(|ms| generator.event(window.0 + time::Duration::milliseconds(ms as i64)))
                .collect();
            events.sort_by_key(|e| e.timestamp);
            (name.clone(), events)
        })
        .collect();
    let group = cloudwatch::put(logs, cluster, streams).await;
    let mut next = vec![0; group.streams.len()];
    let messages = shapes
        .iter()
        .map(|&(stream, count)| {
            let start = next[stream];
            next[stream] += count;
            group.message(stream, start..start + count)
        })
        .collect();
    (group, messages)
}

/// A handler as one Lambda execution environment has it, its clients going through `endpoint`
/// with an attempt timeout.
async fn handler(endpoint: &str, bucket: &str) -> Arc<Handler> {
    let aws = moto::config_for(endpoint)
        .await
        .into_builder()
        .timeout_config(
            TimeoutConfig::builder()
                .operation_attempt_timeout(ATTEMPT_TIMEOUT)
                .build(),
        )
        .build();
    let store = ObjectStore::S3(S3Store::new(
        eks_audit_forwarder::sink::s3::client(&aws),
        bucket.to_owned(),
        None,
    ));
    let settings = Settings {
        bucket: Some(bucket.to_owned()),
        ..Settings::default()
    };
    let reingester = Reingester::new(
        eks_audit_forwarder::sink::firehose::client(&aws),
        RetryPolicy::default(),
    )
    .with_limits(lambda::limits());
    Arc::new(Handler::new(settings, store, Some(REGION.to_owned())).with_reingester(reingester))
}

/// The bucket, its notifications to a queue (dead-letter queue after 10 receives), and the
/// delivery stream re-ingested records go to, with its own bucket. Returns (bucket, queue URL,
/// DLQ URL, stream ARN, stream bucket).
async fn infrastructure() -> (String, String, String, String, String) {
    let (s3, sqs) = (moto::s3().await, moto::sqs().await);
    let bucket = new_bucket(&s3).await;
    let dlq = new_queue(&sqs, None).await;
    let queue = new_queue(&sqs, Some((&dlq, 10))).await;
    notify(&s3, &bucket, &queue).await;
    let stream = new_stream_in(REGION).await;
    (bucket, queue.url, dlq.url, stream.arn, stream.bucket)
}

/// Records per Firehose invocation: 1 to 6, 8 to 16 for one in five (those overflow the
/// response and re-ingest, and so do some others).
fn invocation_sizes(random: &mut Random, invocations: usize) -> Vec<usize> {
    let (low, high) = RECORDS_PER_LARGE_INVOCATION;
    (0..invocations)
        .map(|_| {
            if random.below(LARGE_ONE_IN) == 0 {
                low + random.below(high - low + 1)
            } else {
                1 + random.below(RECORDS_PER_INVOCATION)
            }
        })
        .collect()
}

/// Firehose records of the cluster's messages, `sizes` an invocation, and now and then a
/// control message.
fn firehose_records(
    random: &mut Random,
    messages: Vec<Value>,
    sizes: &[usize],
) -> Vec<Vec<String>> {
    let control = json!({"messageType": "CONTROL_MESSAGE", "owner": "CloudwatchLogs", "logGroup": "",
        "logStream": "", "subscriptionFilters": [], "logEvents": [{"id": "", "timestamp": 0,
        "message": "CWL CONTROL MESSAGE: Checking health of destination Firehose."}]});
    let mut messages = messages.into_iter();
    let mut batches = Vec::new();
    for &count in sizes {
        let mut records: Vec<String> = messages
            .by_ref()
            .take(count)
            .map(|m| crate::common::gzip_record(&m))
            .collect();
        if random.below(50) == 0 {
            records.insert(0, crate::common::gzip_record(&control));
        }
        batches.push(records);
    }
    assert!(messages.next().is_none(), "every message is sent");
    batches
}

/// One cluster of the soak: its name and log group.
struct Cluster {
    name: String,
    group: cloudwatch::Group,
}

/// Logs the events of both clusters (direct, Firehose) into CloudWatch and builds the first
/// invocations from them: `plan.invocations`, half of each mode, interleaved.
async fn invocations(
    plan: &Plan,
    random: &mut Random,
    firehose: &Firehose,
    window: (OffsetDateTime, OffsetDateTime),
) -> ([Cluster; 2], Vec<Invocation>) {
    let logs = aws_sdk_cloudwatchlogs::Client::new(&moto::config().await);
    let templates = Arc::new(corpus::templates());
    let direct_count = plan.invocations / 2;
    let direct_name = unique("soak-direct");
    let mut generator = Generator::new(plan.seed, templates.clone(), usize::MAX);
    let shaped = shapes(random, direct_count);
    let (direct_group, direct_messages) =
        log(&logs, &direct_name, &shaped, window, &mut generator, random).await;

    // A message for each record of the Firehose invocations.
    let sizes = invocation_sizes(random, plan.invocations - direct_count);
    let firehose_name = unique("soak-firehose");
    let mut generator = Generator::new(plan.seed ^ 1, templates, lambda::FIREHOSE_EVENT_BYTES);
    let shaped = shapes(random, sizes.iter().sum());
    let (firehose_group, firehose_messages) = log(
        &logs,
        &firehose_name,
        &shaped,
        window,
        &mut generator,
        random,
    )
    .await;

    let direct = direct_messages.iter().map(|message| Invocation {
        mode: Mode::Direct,
        event: crate::common::awslogs_event(message),
    });
    let mut through_firehose = firehose_records(random, firehose_messages, &sizes)
        .into_iter()
        .map(|records| Invocation {
            mode: Mode::Firehose,
            event: firehose.event(&records),
        });
    let mut mixed = Vec::with_capacity(plan.invocations);
    for invocation in direct {
        mixed.push(invocation);
        mixed.extend(through_firehose.next());
    }
    mixed.extend(through_firehose);
    let clusters = [
        Cluster {
            name: direct_name,
            group: direct_group,
        },
        Cluster {
            name: firehose_name,
            group: firehose_group,
        },
    ];
    (clusters, mixed)
}

/// Runs the invocations, then the records re-ingested, round after round, until nothing comes
/// back from the delivery stream; then Firehose delivers what it buffers. Returns the
/// invocations still parked.
async fn forward(
    environments: &Environments,
    invocations: Vec<Invocation>,
    random: &mut Random,
) -> Vec<Invocation> {
    let mut parked = environments.run(invocations).await;
    loop {
        let records = environments.firehose.reingested().await;
        if records.is_empty() {
            break;
        }
        {
            let mut counts = environments.counts.lock().unwrap();
            counts.rounds += 1;
            counts.records_from_stream += records.len() as u64;
        }
        let again = lambda::firehose_invocations(
            &environments.firehose,
            &records,
            random,
            RECORDS_PER_INVOCATION,
        );
        parked.extend(environments.run(again).await);
    }
    environments.firehose.flush(&environments.counts).await;
    parked
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_soak_under_faults_loses_no_event() {
    let plan = Plan::from_env();
    if let Ok(filter) = std::env::var("EKS_AUDIT_SOAK_LOG") {
        // The handler's and the SDK's logs, when a run needs explaining.
        drop(
            tracing_subscriber::fmt()
                .with_env_filter(filter)
                .with_writer(std::io::stderr)
                .try_init(),
        );
    }
    let started = Instant::now();
    let mut random = Random::new(plan.seed);
    let s3 = moto::s3().await;

    // Two hours that ended an hour ago: every event is in the past, its objects all written.
    let since = floor_hour(OffsetDateTime::now_utc()) - time::Duration::hours(3);
    let until = since + time::Duration::hours(2);

    let (bucket, queue_url, dlq_url, stream_arn, stream_bucket) = infrastructure().await;
    let firehose = Arc::new(Firehose::new(
        s3.clone(),
        &bucket,
        &stream_bucket,
        &stream_arn,
    ));
    // One cluster for each mode, so that each is reconciled on its own.
    let ([direct, through_firehose], invocations) =
        invocations(&plan, &mut random, &firehose, (since, until)).await;
    let logged_at = started.elapsed();

    let proxy = Proxy::start_with(
        moto::endpoint(),
        proxy::Options {
            chaos: Some(Chaos {
                seed: plan.seed,
                rate: plan.fault_rate,
                burst: BURST,
                stall: STALL,
            }),
            ..proxy::Options::default()
        },
    )
    .await;
    let mut handlers = Vec::new();
    for _ in 0..plan.workers {
        handlers.push(handler(&proxy.endpoint, &bucket).await);
    }
    let environments = Environments {
        handlers,
        firehose: firehose.clone(),
        counts: Arc::new(Mutex::new(lambda::Counts::default())),
        backlog: Arc::new(Backlog::new(BACKLOG)),
    };

    // Collectors run while the forwarder writes, as they would, through the same faults: a
    // few of them, as a queue's consumers are scaled out.
    let writing = Arc::new(AtomicBool::new(true));
    let deadline = Instant::now() + Duration::from_secs(3_600);
    let collectors: Vec<_> = (0..COLLECTORS)
        .map(|_| {
            let (queue_url, endpoint, writing) =
                (queue_url.clone(), proxy.endpoint.clone(), writing.clone());
            tokio::spawn(async move {
                downstream::collect(&queue_url, &endpoint, writing, deadline).await
            })
        })
        .collect();

    // The queue's backlog, measured straight from moto, paces the forwarder.
    let measuring = tokio::spawn({
        let (backlog, queue_url, writing) = (
            environments.backlog.clone(),
            queue_url.clone(),
            writing.clone(),
        );
        async move {
            let sqs = moto::sqs().await;
            while writing.load(Ordering::SeqCst) {
                backlog.set(downstream::depth(&sqs, &queue_url).await);
                tokio::time::sleep(Duration::from_millis(500)).await;
            }
        }
    });
    let forwarding = Instant::now();
    let parked = forward(&environments, invocations, &mut random).await;
    let forwarded_in = forwarding.elapsed();
    writing.store(false, Ordering::SeqCst);
    measuring.await.expect("the backlog's measure");
    let mut collect_runs = downstream::CollectRuns::default();
    let mut collected = downstream::Events::new();
    for collector in collectors {
        let (runs, events) = collector.await.expect("a collector loop");
        collect_runs.add(runs);
        for (event, count) in events {
            *collected.entry(event).or_insert(0) += count;
        }
    }
    let collected_in = forwarding.elapsed();

    let (since_text, until_text) = (
        since.format(&Rfc3339).unwrap(),
        until.format(&Rfc3339).unwrap(),
    );
    let (direct_reconciled, firehose_reconciled, (in_bucket, objects)) = tokio::join!(
        downstream::reconcile(&direct.name, &bucket, &since_text, &until_text),
        downstream::reconcile(&through_firehose.name, &bucket, &since_text, &until_text),
        downstream::bucket_events(&s3, &bucket),
    );
    let dead_letters = downstream::depth(&moto::sqs().await, &dlq_url).await;

    let report = report::Report {
        plan,
        still_parked: parked.len(),
        counts: environments.counts.lock().unwrap().clone(),
        paced: environments.backlog.waited() / plan.workers as u32,
        groups: [
            (direct.group.audit_events() as u64, direct_reconciled),
            (
                through_firehose.group.audit_events() as u64,
                firehose_reconciled,
            ),
        ],
        collect: report::Collected::new(&in_bucket, &collected, objects, collect_runs),
        dead_letters,
        faults: proxy.faults(),
        calls: proxy.stats(),
        times: report::Times {
            logged: logged_at,
            forwarded: forwarded_in,
            collected: collected_in,
            total: started.elapsed(),
        },
    };
    eprintln!("{report}");
    report.check();
    // Every kind of fault was injected, and failed invocations were retried.
    for kind in Kind::ALL {
        assert!(
            report.faults.get(&kind).copied().unwrap_or(0) > 0,
            "no {} was injected: the soak did not exercise it",
            kind.name()
        );
    }
}
