//! `eks-audit subscribe` against moto's CloudWatch Logs: the filter is put once and only once,
//! other filters are kept, full log groups and missing ones are reported, and `--check` tells
//! flowing clusters from silent ones. Every test names its own clusters; the `--all` tests run
//! in regions of their own, since they see every log group of their region.

use std::process::{Command, Output};
use std::time::{SystemTime, UNIX_EPOCH};

use aws_sdk_cloudwatchlogs::types::InputLogEvent;
use eks_audit_core::eks::log_group_of;
use eks_audit_core::filter::DEFAULT_SUBSCRIPTION_PATTERN;

use crate::moto::{self, ACCOUNT, REGION, unique};

const ROLE: &str = "arn:aws:iam::123456789012:role/cwl-to-firehose";
const FILTER: &str = "eks-audit-forwarder";

async fn logs_in(region: &str) -> aws_sdk_cloudwatchlogs::Client {
    let config = aws_sdk_cloudwatchlogs::config::Builder::from(&moto::config().await)
        .region(aws_sdk_cloudwatchlogs::config::Region::new(
            region.to_owned(),
        ))
        .build();
    aws_sdk_cloudwatchlogs::Client::from_conf(config)
}

async fn logs() -> aws_sdk_cloudwatchlogs::Client {
    logs_in(REGION).await
}

/// A Firehose delivery stream in `region` writing to a bucket of its own; its ARN. moto checks
/// that a subscription's Firehose destination exists.
async fn delivery_stream_in(region: &str) -> String {
    crate::resources::new_stream_in(region).await.arn
}

async fn delivery_stream() -> String {
    delivery_stream_in(REGION).await
}

/// A cluster whose control-plane log group exists.
async fn cluster(logs: &aws_sdk_cloudwatchlogs::Client) -> String {
    let cluster = unique("eks");
    logs.create_log_group()
        .log_group_name(log_group_of(&cluster))
        .send()
        .await
        .expect("create log group");
    cluster
}

async fn put_filter(
    logs: &aws_sdk_cloudwatchlogs::Client,
    cluster: &str,
    name: &str,
    destination: &str,
) {
    logs.put_subscription_filter()
        .log_group_name(log_group_of(cluster))
        .filter_name(name)
        .filter_pattern("")
        .destination_arn(destination)
        .role_arn(ROLE)
        .send()
        .await
        .expect("put a filter");
}

/// The filters on a cluster's log group: (name, destination, pattern, role), by name.
async fn filters(
    logs: &aws_sdk_cloudwatchlogs::Client,
    cluster: &str,
) -> Vec<(String, String, String, String)> {
    let output = logs
        .describe_subscription_filters()
        .log_group_name(log_group_of(cluster))
        .send()
        .await
        .expect("describe filters");
    let mut filters: Vec<_> = output
        .subscription_filters()
        .iter()
        .map(|f| {
            let text = |s: Option<&str>| s.unwrap_or_default().to_owned();
            (
                text(f.filter_name()),
                text(f.destination_arn()),
                text(f.filter_pattern()),
                text(f.role_arn()),
            )
        })
        .collect();
    filters.sort();
    filters
}

fn ours(destination: &str) -> (String, String, String, String) {
    (
        FILTER.to_owned(),
        destination.to_owned(),
        DEFAULT_SUBSCRIPTION_PATTERN.to_owned(),
        ROLE.to_owned(),
    )
}

struct Run {
    code: Option<i32>,
    lines: Vec<String>,
    stderr: String,
}

fn run_in(region: &str, args: &[&str]) -> Run {
    let mut command = Command::new(env!("CARGO_BIN_EXE_eks-audit"));
    command
        .arg("subscribe")
        .args(args)
        .env_remove("AWS_PROFILE")
        .env("RUST_LOG", "warn");
    for (name, value) in moto::env() {
        command.env(name, value);
    }
    let Output {
        status,
        stdout,
        stderr,
    } = command
        .env("AWS_REGION", region)
        .output()
        .expect("eks-audit runs");
    Run {
        code: status.code(),
        lines: String::from_utf8(stdout)
            .unwrap()
            .lines()
            .map(str::to_owned)
            .collect(),
        stderr: String::from_utf8(stderr).unwrap(),
    }
}

fn run(args: &[&str]) -> Run {
    run_in(REGION, args)
}

#[tokio::test]
async fn named_clusters_get_the_filter_once_and_a_rerun_changes_nothing() {
    let logs = logs().await;
    let (a, b, stream) = (
        cluster(&logs).await,
        cluster(&logs).await,
        delivery_stream().await,
    );
    let args = [
        a.as_str(),
        &b,
        "--destination-arn",
        &stream,
        "--role-arn",
        ROLE,
    ];

    let first = run(&args);
    assert_eq!(first.code, Some(0), "{}", first.stderr);
    assert_eq!(
        first.lines,
        [
            format!("{a}: created filter {FILTER} -> {stream}"),
            format!("{b}: created filter {FILTER} -> {stream}")
        ]
    );
    for cluster in [&a, &b] {
        assert_eq!(
            filters(&logs, cluster).await,
            [ours(&stream)],
            "the contract §3 pattern, the role, our name"
        );
    }

    let again = run(&args);
    assert_eq!(again.code, Some(0), "{}", again.stderr);
    assert_eq!(
        again.lines,
        [
            format!("{a}: unchanged (filter {FILTER} -> {stream})"),
            format!("{b}: unchanged (filter {FILTER} -> {stream})")
        ]
    );
    assert_eq!(filters(&logs, &a).await, [ours(&stream)]);
}

#[tokio::test]
async fn our_filter_with_another_destination_is_updated_in_place_and_dry_run_changes_nothing() {
    let logs = logs().await;
    let (a, old, new) = (
        cluster(&logs).await,
        delivery_stream().await,
        delivery_stream().await,
    );
    assert_eq!(
        run(&[&a, "--destination-arn", &old, "--role-arn", ROLE]).code,
        Some(0)
    );

    let dry = run(&[
        &a,
        "--destination-arn",
        &new,
        "--role-arn",
        ROLE,
        "--dry-run",
    ]);
    assert_eq!(dry.code, Some(0), "{}", dry.stderr);
    assert_eq!(
        dry.lines,
        [format!(
            "{a}: would update filter {FILTER} -> {new} (destination changed)"
        )]
    );
    assert_eq!(
        filters(&logs, &a).await,
        [ours(&old)],
        "a dry run changes nothing"
    );

    let update = run(&[&a, "--destination-arn", &new, "--role-arn", ROLE]);
    assert_eq!(update.code, Some(0), "{}", update.stderr);
    assert_eq!(
        update.lines,
        [format!(
            "{a}: updated filter {FILTER} -> {new} (destination changed)"
        )]
    );
    assert_eq!(
        filters(&logs, &a).await,
        [ours(&new)],
        "replaced, not added"
    );
}

#[tokio::test]
async fn a_foreign_filter_is_kept_and_reported_and_ours_takes_the_free_slot() {
    let logs = logs().await;
    let (a, ours_to, splunk) = (
        cluster(&logs).await,
        delivery_stream().await,
        delivery_stream().await,
    );
    put_filter(&logs, &a, "splunk", &splunk).await;

    let output = run(&[&a, "--destination-arn", &ours_to, "--role-arn", ROLE]);
    assert_eq!(output.code, Some(0), "{}", output.stderr);
    assert_eq!(
        output.lines,
        [format!(
            "{a}: created filter {FILTER} -> {ours_to}; other filter kept: splunk -> {splunk}"
        )]
    );
    let found = filters(&logs, &a).await;
    assert_eq!(found.len(), 2);
    assert_eq!(found[0], ours(&ours_to));
    assert_eq!(
        (found[1].0.as_str(), found[1].1.as_str()),
        ("splunk", splunk.as_str()),
        "untouched"
    );
}

#[tokio::test]
async fn two_foreign_filters_leave_no_free_slot_and_exit_1_while_other_clusters_are_subscribed() {
    let logs = logs().await;
    let (full, free, stream) = (
        cluster(&logs).await,
        cluster(&logs).await,
        delivery_stream().await,
    );
    let (one, two) = (delivery_stream().await, delivery_stream().await);
    put_filter(&logs, &full, "splunk", &one).await;
    put_filter(&logs, &full, "datadog", &two).await;
    let before = filters(&logs, &full).await;

    let output = run(&[
        &full,
        &free,
        "--destination-arn",
        &stream,
        "--role-arn",
        ROLE,
    ]);
    assert_eq!(output.code, Some(1), "{}", output.stderr);
    assert_eq!(output.lines.len(), 2);
    assert!(
        output.lines[0].starts_with(&format!(
            "{full}: no free slot: filters splunk -> {one}, datadog -> {two}"
        )),
        "{}",
        output.lines[0]
    );
    assert_eq!(
        output.lines[1],
        format!("{free}: created filter {FILTER} -> {stream}")
    );
    assert_eq!(filters(&logs, &full).await, before, "nothing clobbered");
    assert_eq!(filters(&logs, &free).await, [ours(&stream)]);
}

#[tokio::test]
async fn a_filter_already_delivering_to_the_destination_is_not_doubled() {
    let logs = logs().await;
    let (a, stream) = (cluster(&logs).await, delivery_stream().await);
    put_filter(&logs, &a, "eks-audit-FirehoseSubscription-1X2Y", &stream).await;

    let output = run(&[&a, "--destination-arn", &stream, "--role-arn", ROLE]);
    assert_eq!(output.code, Some(0), "{}", output.stderr);
    assert_eq!(
        output.lines,
        [format!(
            "{a}: already delivered to {stream} by filter eks-audit-FirehoseSubscription-1X2Y; {FILTER} not added (events would arrive twice)"
        )]
    );
    assert_eq!(filters(&logs, &a).await.len(), 1);
}

#[tokio::test]
async fn a_missing_log_group_is_reported_with_the_command_that_enables_audit_logging() {
    let logs = logs().await;
    let (present, stream) = (cluster(&logs).await, delivery_stream().await);
    let missing = unique("never-logged");

    let output = run(&[
        &missing,
        &present,
        "--destination-arn",
        &stream,
        "--role-arn",
        ROLE,
    ]);
    assert_eq!(output.code, Some(1), "{}", output.stderr);
    assert_eq!(
        output.lines[0],
        format!(
            r#"{missing}: log group /aws/eks/{missing}/cluster not found (enable audit logging: aws eks update-cluster-config --region {REGION} --name {missing} --logging '{{"clusterLogging":[{{"types":["audit"],"enabled":true}}]}}')"#
        )
    );
    assert_eq!(
        output.lines[1],
        format!("{present}: created filter {FILTER} -> {stream}"),
        "the others go on"
    );
}

#[tokio::test]
async fn all_finds_exactly_the_eks_control_plane_log_groups_of_the_region() {
    // A region no other test uses: --all sees every log group in it.
    let region = "ap-southeast-2";
    let logs = logs_in(region).await;
    let (x, y) = (cluster(&logs).await, cluster(&logs).await);
    for other in [
        format!("/aws/eks/{x}/other"),
        format!("/aws/eks/{x}/nested/cluster"),
        format!("/aws/lambda/{x}"),
    ] {
        logs.create_log_group()
            .log_group_name(other)
            .send()
            .await
            .unwrap();
    }
    let stream = delivery_stream_in(region).await;

    let output = run_in(
        region,
        &["--all", "--destination-arn", &stream, "--role-arn", ROLE],
    );
    assert_eq!(output.code, Some(0), "{}", output.stderr);
    let mut expected = [
        format!("{x}: created filter {FILTER} -> {stream}"),
        format!("{y}: created filter {FILTER} -> {stream}"),
    ];
    expected.sort();
    assert_eq!(output.lines, expected);
    assert_eq!(filters(&logs, &x).await, [ours(&stream)]);
    let nested = logs
        .describe_subscription_filters()
        .log_group_name(format!("/aws/eks/{x}/nested/cluster"))
        .send()
        .await
        .unwrap();
    assert!(
        nested.subscription_filters().is_empty(),
        "only /aws/eks/<cluster>/cluster groups"
    );
}

#[tokio::test]
async fn all_in_a_region_without_eks_log_groups_fails_with_the_reason() {
    let region = "sa-east-1";
    let output = run_in(
        region,
        &[
            "--all",
            "--destination-arn",
            &format!("arn:aws:lambda:{region}:{ACCOUNT}:function:fwd"),
        ],
    );
    assert_eq!(output.code, Some(1));
    assert!(output.lines.is_empty());
    assert!(
        output.stderr.contains(&format!(
            "no log group matches /aws/eks/<cluster>/cluster in region {region}"
        )),
        "{}",
        output.stderr
    );
}

#[tokio::test]
async fn a_firehose_destination_without_a_role_is_bad_usage_and_nothing_is_put() {
    let logs = logs().await;
    let (a, stream) = (cluster(&logs).await, delivery_stream().await);
    let output = run(&[&a, "--destination-arn", &stream]);
    assert_eq!(output.code, Some(2));
    assert!(
        output.stderr.contains("needs --role-arn"),
        "{}",
        output.stderr
    );
    assert!(filters(&logs, &a).await.is_empty());
    assert_eq!(
        run(&["--destination-arn", &stream, "--role-arn", ROLE]).code,
        Some(2),
        "clusters or --all is required"
    );
}

async fn put_audit_event(logs: &aws_sdk_cloudwatchlogs::Client, cluster: &str, stream: &str) {
    let group = log_group_of(cluster);
    logs.create_log_stream()
        .log_group_name(&group)
        .log_stream_name(stream)
        .send()
        .await
        .unwrap();
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_millis() as i64;
    let event = InputLogEvent::builder()
        .timestamp(now)
        .message(r#"{"kind":"Event","apiVersion":"audit.k8s.io/v1","stage":"ResponseComplete","requestURI":"/api/v1/pods","verb":"list"}"#)
        .build()
        .unwrap();
    logs.put_log_events()
        .log_group_name(&group)
        .log_stream_name(stream)
        .log_events(event)
        .send()
        .await
        .expect("put log events");
}

#[tokio::test]
async fn check_tells_flowing_clusters_from_silent_and_missing_ones() {
    let logs = logs().await;
    let (flowing, silent, stream) = (
        cluster(&logs).await,
        cluster(&logs).await,
        delivery_stream().await,
    );
    let missing = unique("never-logged");
    assert_eq!(
        run(&[
            &flowing,
            &silent,
            "--destination-arn",
            &stream,
            "--role-arn",
            ROLE
        ])
        .code,
        Some(0)
    );
    put_audit_event(&logs, &flowing, "kube-apiserver-audit-0123456789abcdef").await;
    // Another control-plane stream of the same group carries no audit events.
    put_audit_event(&logs, &silent, "kube-apiserver-0123456789abcdef").await;

    let output = run(&[
        "--check",
        &flowing,
        &silent,
        &missing,
        "--destination-arn",
        &stream,
    ]);
    assert_eq!(output.code, Some(1), "{}", output.stderr);
    let [flowing_line, silent_line, missing_line] = &output.lines[..] else {
        panic!("one line per cluster: {:?}", output.lines)
    };
    assert!(
        flowing_line.starts_with(&format!("{flowing}: flowing: last audit event ")),
        "{flowing_line}"
    );
    assert!(
        flowing_line.ends_with(&format!(
            " ago in kube-apiserver-audit-0123456789abcdef; filter {FILTER} -> {stream}"
        )),
        "{flowing_line}"
    );
    assert_eq!(
        *silent_line,
        format!(
            "{silent}: NOT flowing: no kube-apiserver-audit-* log stream (audit logging off?); filter {FILTER} -> {stream}"
        )
    );
    assert!(
        missing_line.starts_with(&format!(
            "{missing}: NOT flowing: log group /aws/eks/{missing}/cluster not found"
        )),
        "{missing_line}"
    );

    let alone = run(&["--check", &flowing]);
    assert_eq!(
        alone.code,
        Some(0),
        "without a destination our filter's name is enough: {:?}",
        alone.lines
    );

    let strict = run(&["--check", &flowing, "--max-age", "0s"]);
    assert_eq!(strict.code, Some(1));
    assert!(
        strict.lines[0].contains("NOT flowing: last audit event"),
        "{:?}",
        strict.lines
    );
}

#[tokio::test]
async fn check_without_our_filter_is_not_flowing() {
    let logs = logs().await;
    let a = cluster(&logs).await;
    put_audit_event(&logs, &a, "kube-apiserver-audit-0123456789abcdef").await;
    let output = run(&["--check", &a]);
    assert_eq!(output.code, Some(1));
    assert!(
        output.lines[0].starts_with(&format!(
            "{a}: NOT flowing: subscription filter {FILTER} missing; "
        )),
        "{:?}",
        output.lines
    );
}
