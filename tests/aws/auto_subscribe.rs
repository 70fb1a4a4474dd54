//! The auto-subscriber through the handler's event detection, against moto's CloudWatch Logs:
//! the sample EventBridge events of `events/eventbridge/` (CloudTrail `CreateLogGroup`, the
//! daily schedule) run the code of `eks-audit subscribe`. Each test works in a region of its
//! own, since a sweep sees every EKS log group of its region. moto does not emulate a filter
//! towards a CloudWatch Logs destination: that request is recorded through [`crate::proxy`].

use aws_config::{Region, SdkConfig};
use eks_audit_core::eks::log_group_of;
use eks_audit_core::filter::DEFAULT_SUBSCRIPTION_PATTERN;
use eks_audit_forwarder::config::Settings;
use eks_audit_forwarder::handler::{Handler, HandlerError, Response};
use eks_audit_forwarder::sink::ObjectStore;
use eks_audit_forwarder::sink::local::LocalDir;
use eks_audit_forwarder::subscribe::Subscriber;
use eks_audit_forwarder::subscribe::auto::{AutoError, AutoSubscriber, AutoSummary};
use eks_audit_forwarder::subscribe::plan::{DEFAULT_FILTER_NAME, FilterSpec};

use crate::events::sample;
use crate::moto::{self, unique};
use crate::proxy::{Fault, Proxy};

const ROLE: &str = "arn:aws:iam::123456789012:role/cwl-to-firehose";

async fn config_in(endpoint: &str, region: &str) -> SdkConfig {
    moto::config_for(endpoint)
        .await
        .into_builder()
        .region(Region::new(region.to_owned()))
        .build()
}

async fn logs_in(region: &str) -> aws_sdk_cloudwatchlogs::Client {
    aws_sdk_cloudwatchlogs::Client::new(&config_in(moto::endpoint(), region).await)
}

/// A handler whose auto-subscriber, in `region` through `endpoint`, puts our filter towards
/// `destination`.
async fn handler(
    endpoint: &str,
    region: &str,
    destination: &str,
    role: Option<&str>,
) -> (Handler, tempfile::TempDir) {
    let dir = tempfile::tempdir().unwrap();
    let filter = FilterSpec {
        name: DEFAULT_FILTER_NAME.to_owned(),
        destination_arn: destination.to_owned(),
        role_arn: role.map(str::to_owned),
        pattern: DEFAULT_SUBSCRIPTION_PATTERN.to_owned(),
    };
    let subscriber = Subscriber::new(&config_in(endpoint, region).await);
    subscriber.check_destination(&filter).unwrap();
    let handler = Handler::new(
        Settings::default(),
        ObjectStore::Local(LocalDir::new(dir.path())),
        Some(region.to_owned()),
    )
    .with_auto_subscriber(AutoSubscriber::new(subscriber, filter));
    (handler, dir)
}

async fn run(handler: &Handler, event: &str) -> AutoSummary {
    match handler.handle(event).await {
        Ok(Response::Subscribe(summary)) => summary,
        other => panic!("expected an auto-subscribe summary, got {other:?}"),
    }
}

/// (cluster, state) of every row.
fn states(summary: &AutoSummary) -> Vec<(String, String)> {
    summary
        .clusters
        .iter()
        .map(|row| (row.cluster.clone(), row.state.clone()))
        .collect()
}

/// The filters of a cluster's group: (name, destination, pattern).
async fn filters(
    logs: &aws_sdk_cloudwatchlogs::Client,
    cluster: &str,
) -> Vec<(String, String, String)> {
    let output = logs
        .describe_subscription_filters()
        .log_group_name(log_group_of(cluster))
        .send()
        .await
        .unwrap();
    let mut found: Vec<_> = output
        .subscription_filters()
        .iter()
        .map(|f| {
            let text = |s: Option<&str>| s.unwrap_or_default().to_owned();
            (
                text(f.filter_name()),
                text(f.destination_arn()),
                text(f.filter_pattern()),
            )
        })
        .collect();
    found.sort();
    found
}

async fn create_group(logs: &aws_sdk_cloudwatchlogs::Client, cluster: &str) {
    logs.create_log_group()
        .log_group_name(log_group_of(cluster))
        .send()
        .await
        .unwrap();
}

async fn put_filter(
    logs: &aws_sdk_cloudwatchlogs::Client,
    cluster: &str,
    name: &str,
    destination: &str,
    pattern: &str,
) {
    logs.put_subscription_filter()
        .log_group_name(log_group_of(cluster))
        .filter_name(name)
        .filter_pattern(pattern)
        .destination_arn(destination)
        .role_arn(ROLE)
        .send()
        .await
        .unwrap();
}

#[tokio::test]
async fn create_log_group_event_subscribes_the_new_cluster_once() {
    // The sample names prod-east; this region holds no other EKS group.
    let region = "eu-north-1";
    let logs = logs_in(region).await;
    create_group(&logs, "prod-east").await;
    let stream = crate::resources::new_stream_in(region).await.arn;
    let (handler, _dir) = handler(moto::endpoint(), region, &stream, Some(ROLE)).await;
    let event = sample("eventbridge/cloudtrail-create-log-group.json");

    let first = run(&handler, &event).await;
    assert_eq!(first.trigger, "created");
    assert_eq!(states(&first), [("prod-east".into(), "created".into())]);
    let ours = (
        DEFAULT_FILTER_NAME.to_owned(),
        stream.clone(),
        DEFAULT_SUBSCRIPTION_PATTERN.to_owned(),
    );
    assert_eq!(
        filters(&logs, "prod-east").await,
        std::slice::from_ref(&ours)
    );

    // EventBridge delivers at least once: the same event again changes nothing.
    let again = run(&handler, &event).await;
    assert_eq!(states(&again), [("prod-east".into(), "unchanged".into())]);
    assert_eq!(filters(&logs, "prod-east").await, [ours]);
}

#[tokio::test]
async fn a_log_group_not_visible_yet_fails_the_invocation_so_lambda_retries_it() {
    let region = "eu-south-1";
    let stream = crate::resources::new_stream_in(region).await.arn;
    let (handler, _dir) = handler(moto::endpoint(), region, &stream, Some(ROLE)).await;
    let cluster = unique("eks");
    let event = sample("eventbridge/cloudtrail-create-log-group.json")
        .replace("/aws/eks/prod-east/cluster", &log_group_of(&cluster));
    match handler.handle(&event).await {
        Err(HandlerError::AutoSubscribe(AutoError::Retry(reason))) => {
            assert!(reason.contains(&cluster), "{reason}")
        }
        other => panic!("expected a retry, got {other:?}"),
    }
}

#[tokio::test]
async fn create_log_group_of_another_kind_of_group_is_ignored() {
    let region = "eu-south-2";
    let stream = crate::resources::new_stream_in(region).await.arn;
    let (handler, _dir) = handler(moto::endpoint(), region, &stream, Some(ROLE)).await;
    let event = sample("eventbridge/cloudtrail-create-log-group.json")
        .replace("/aws/eks/prod-east/cluster", "/aws/lambda/other");
    let summary = run(&handler, &event).await;
    assert_eq!(summary.trigger, "ignored");
    assert!(summary.clusters.is_empty());
}

#[tokio::test]
async fn the_scheduled_sweep_repairs_drift_and_reports_every_cluster() {
    let region = "ap-northeast-3";
    let logs = logs_in(region).await;
    let stream = crate::resources::new_stream_in(region).await.arn;
    let other = crate::resources::new_stream_in(region).await.arn;
    let (fresh, drifted, full) = ("sweep-a", "sweep-b", "sweep-c");
    for cluster in [fresh, drifted, full] {
        create_group(&logs, cluster).await;
    }
    // Drift: our filter with another pattern (someone edited it by hand).
    put_filter(&logs, drifted, DEFAULT_FILTER_NAME, &stream, "").await;
    // Both slots held by other tools: left alone, reported.
    put_filter(&logs, full, "splunk", &other, "").await;
    put_filter(&logs, full, "datadog", &other, "").await;
    let (handler, _dir) = handler(moto::endpoint(), region, &stream, Some(ROLE)).await;
    let event = sample("eventbridge/scheduled-sweep.json");

    let first = run(&handler, &event).await;
    assert_eq!(first.trigger, "sweep");
    let row = |c: &str, s: &str| (c.to_owned(), s.to_owned());
    assert_eq!(
        states(&first),
        [
            row(fresh, "created"),
            row(drifted, "updated"),
            row(full, "no free slot")
        ]
    );
    let ours = (
        DEFAULT_FILTER_NAME.to_owned(),
        stream.clone(),
        DEFAULT_SUBSCRIPTION_PATTERN.to_owned(),
    );
    assert_eq!(filters(&logs, fresh).await, std::slice::from_ref(&ours));
    assert_eq!(filters(&logs, drifted).await, [ours]);
    assert_eq!(filters(&logs, full).await.len(), 2);

    let second = run(&handler, &event).await;
    assert_eq!(
        states(&second),
        [
            row(fresh, "unchanged"),
            row(drifted, "unchanged"),
            row(full, "no free slot")
        ]
    );
}

#[tokio::test]
async fn a_sweep_of_a_region_without_clusters_does_nothing() {
    let region = "ca-west-1";
    let stream = crate::resources::new_stream_in(region).await.arn;
    let (handler, _dir) = handler(moto::endpoint(), region, &stream, Some(ROLE)).await;
    let summary = run(&handler, &sample("eventbridge/scheduled-sweep.json")).await;
    assert_eq!(summary.trigger, "sweep");
    assert!(summary.clusters.is_empty());
}

/// A member account subscribing towards the central account's CloudWatch Logs destination:
/// moto refuses such a filter, so the proxy records the request and answers as AWS does.
#[tokio::test]
async fn a_filter_towards_the_central_destination_is_recorded_through_the_proxy() {
    let region = "me-central-1";
    let logs = logs_in(region).await;
    create_group(&logs, "prod-east").await;
    let proxy = Proxy::start(moto::endpoint(), Fault::RecordLogsDestinationFilters).await;
    let destination = format!("arn:aws:logs:{region}:999999999999:destination:eks-audit-central");
    let (handler, _dir) = handler(&proxy.endpoint, region, &destination, None).await;

    let summary = run(
        &handler,
        &sample("eventbridge/cloudtrail-create-log-group.json"),
    )
    .await;
    assert_eq!(states(&summary), [("prod-east".into(), "created".into())]);
    let calls = proxy.filter_calls();
    assert_eq!(calls.len(), 1, "one PutSubscriptionFilter: {calls:?}");
    let body = &calls[0].body;
    assert_eq!(body["logGroupName"], "/aws/eks/prod-east/cluster");
    assert_eq!(body["filterName"], DEFAULT_FILTER_NAME);
    assert_eq!(body["destinationArn"], destination.as_str());
    assert_eq!(body["filterPattern"], DEFAULT_SUBSCRIPTION_PATTERN);
    assert!(
        body.get("roleArn").is_none(),
        "a cross-account destination takes no role: {body}"
    );
}

#[tokio::test]
async fn an_eventbridge_event_without_an_auto_subscriber_fails_with_the_reason() {
    let handler = Handler::new(
        Settings::default(),
        ObjectStore::Local(LocalDir::new(tempfile::tempdir().unwrap().path())),
        None,
    );
    let error = handler
        .handle(&sample("eventbridge/scheduled-sweep.json"))
        .await
        .unwrap_err();
    assert!(matches!(error, HandlerError::NoAutoSubscriber), "{error}");
    assert!(
        error
            .to_string()
            .contains("EKS_AUDIT_SUBSCRIBE_DESTINATION_ARN")
    );
}
