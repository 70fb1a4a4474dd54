//! `eks-audit subscribe` over a fleet, against moto: member accounts reached through STS
//! assumed roles (moto keeps each account's resources apart) and AWS Organizations (emulated).
//! moto accepts every AssumeRole and refuses filters towards a CloudWatch Logs destination, so
//! the proxy refuses the role of one account (the partial failure) and records, answering as
//! AWS does, the filters towards the central destination.

use std::time::{SystemTime, UNIX_EPOCH};

use aws_config::{Region, SdkConfig};
use aws_sdk_cloudwatchlogs::config::SharedCredentialsProvider;
use aws_sdk_cloudwatchlogs::types::InputLogEvent;
use aws_sdk_firehose::types::{DeliveryStreamType, ExtendedS3DestinationConfiguration};
use eks_audit_core::eks::log_group_of;

use crate::moto;
use crate::proxy::{Fault, Proxy};

const ROLE_NAME: &str = "eks-audit-subscriber";
const DESTINATION: &str = "arn:aws:logs:{region}:999999999999:destination:eks-audit-central";

/// The configuration of `account` in `region`, as the fleet CLI builds it: a role assumed.
async fn as_account(account: &str, region: &str) -> SdkConfig {
    let base = moto::config().await;
    let provider = aws_config::sts::AssumeRoleProvider::builder(format!(
        "arn:aws:iam::{account}:role/{ROLE_NAME}"
    ))
    .session_name("test-setup")
    .configure(&base)
    .build()
    .await;
    base.into_builder()
        .region(Region::new(region.to_owned()))
        .credentials_provider(SharedCredentialsProvider::new(provider))
        .build()
}

async fn logs_as(account: &str, region: &str) -> aws_sdk_cloudwatchlogs::Client {
    aws_sdk_cloudwatchlogs::Client::new(&as_account(account, region).await)
}

async fn cluster_in(logs: &aws_sdk_cloudwatchlogs::Client, cluster: &str) {
    logs.create_log_group()
        .log_group_name(log_group_of(cluster))
        .send()
        .await
        .unwrap();
}

/// A delivery stream of `account` in `region`, for filters moto does emulate; its ARN.
async fn stream_of(account: &str, region: &str) -> String {
    let firehose = aws_sdk_firehose::Client::new(&as_account(account, region).await);
    let destination = ExtendedS3DestinationConfiguration::builder()
        .role_arn(format!("arn:aws:iam::{account}:role/firehose"))
        .bucket_arn("arn:aws:s3:::member-audit")
        .build()
        .unwrap();
    firehose
        .create_delivery_stream()
        .delivery_stream_name("old-forwarder")
        .delivery_stream_type(DeliveryStreamType::DirectPut)
        .extended_s3_destination_configuration(destination)
        .send()
        .await
        .unwrap()
        .delivery_stream_arn()
        .unwrap()
        .to_owned()
}

async fn our_filter_to(logs: &aws_sdk_cloudwatchlogs::Client, cluster: &str, arn: &str) {
    logs.put_subscription_filter()
        .log_group_name(log_group_of(cluster))
        .filter_name("eks-audit-forwarder")
        .filter_pattern("")
        .destination_arn(arn)
        .role_arn("arn:aws:iam::123456789012:role/cwl")
        .send()
        .await
        .unwrap();
}

async fn audit_event_now(logs: &aws_sdk_cloudwatchlogs::Client, cluster: &str) {
    let group = log_group_of(cluster);
    let stream = "kube-apiserver-audit-0123456789abcdef";
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
    logs.put_log_events()
        .log_group_name(&group)
        .log_stream_name(stream)
        .log_events(
            InputLogEvent::builder()
                .timestamp(now)
                .message(r#"{"kind":"Event","stage":"ResponseComplete","verb":"list"}"#)
                .build()
                .unwrap(),
        )
        .send()
        .await
        .unwrap();
}

struct Run {
    code: Option<i32>,
    /// The table's rows, split on runs of spaces (the state keeps its own spaces joined).
    rows: Vec<Vec<String>>,
    stdout: String,
    stderr: String,
}

/// `eks-audit subscribe ARGS` through `endpoint`, without blocking the proxy's runtime.
async fn subscribe(endpoint: &str, args: &[&str]) -> Run {
    let mut command = tokio::process::Command::new(env!("CARGO_BIN_EXE_eks-audit"));
    command
        .arg("subscribe")
        .args(args)
        .env_remove("AWS_PROFILE")
        .env("RUST_LOG", "warn");
    for (name, value) in moto::env() {
        command.env(name, value);
    }
    let output = command
        .env("AWS_ENDPOINT_URL", endpoint)
        .output()
        .await
        .unwrap();
    let stdout = String::from_utf8(output.stdout).unwrap();
    let rows = stdout
        .lines()
        .skip(1)
        .map(|line| {
            let cells: Vec<&str> = line.split_whitespace().collect();
            let mut row: Vec<String> = cells.iter().take(3).map(|c| (*c).to_owned()).collect();
            row.push(cells[3..].join(" "));
            row
        })
        .collect();
    Run {
        code: output.status.code(),
        rows,
        stdout,
        stderr: String::from_utf8(output.stderr).unwrap(),
    }
}

fn row(account: &str, region: &str, cluster: &str, state: &str) -> Vec<String> {
    [account, region, cluster, state]
        .map(str::to_owned)
        .to_vec()
}

#[tokio::test]
async fn fleet_subscribe_repairs_drift_and_reports_a_denied_account_in_its_own_rows() {
    let (a, b, denied) = ("210000000001", "210000000002", "210000000003");
    let (r1, r2) = ("eu-west-3", "us-west-1");
    let logs_a = logs_as(a, r1).await;
    cluster_in(&logs_a, "alpha").await;
    cluster_in(&logs_a, "beta").await;
    // Drift: alpha's filter of our name still points at an old stream of the member.
    our_filter_to(&logs_a, "alpha", &stream_of(a, r1).await).await;
    cluster_in(&logs_as(b, r2).await, "gamma").await;
    let proxy = Proxy::start(moto::endpoint(), Fault::DenyAssumeRoleInto(denied)).await;
    let accounts = format!("{a},{b},{denied}");
    let args = [
        "--accounts",
        &accounts,
        "--role-name",
        ROLE_NAME,
        "--regions",
        "eu-west-3,us-west-1",
        "--destination-arn",
        DESTINATION,
    ];

    let dry = subscribe(&proxy.endpoint, &[&args[..], &["--dry-run"]].concat()).await;
    assert_eq!(dry.code, Some(1), "{}{}", dry.stdout, dry.stderr);
    assert_eq!(dry.rows[0], row(a, r1, "alpha", "would be updated"));
    assert_eq!(dry.rows[1], row(a, r1, "beta", "would be created"));
    assert!(proxy.filter_calls().is_empty(), "a dry run puts nothing");

    let run = subscribe(&proxy.endpoint, &args).await;
    assert_eq!(
        run.code,
        Some(1),
        "one account failed: {}{}",
        run.stdout,
        run.stderr
    );
    let (failed, rows): (Vec<_>, Vec<_>) = run.rows.iter().partition(|r| r[0] == denied);
    assert_eq!(
        rows,
        [
            &row(a, r1, "alpha", "updated"),
            &row(a, r1, "beta", "created"),
            &row(a, r2, "-", "no clusters"),
            &row(b, r1, "-", "no clusters"),
            &row(b, r2, "gamma", "created"),
        ]
    );
    // The denied account has one row per region, saying why, and stopped nothing.
    assert_eq!(failed.len(), 2, "{}", run.stdout);
    for (row, region) in failed.iter().zip([r1, r2]) {
        assert_eq!((row[1].as_str(), row[2].as_str()), (region, "-"));
        assert!(
            row[3].starts_with("failed:") && row[3].contains("AccessDenied"),
            "{row:?}"
        );
    }
    // What reached CloudWatch Logs, per account and region: moto cannot hold these filters.
    let mut puts: Vec<(String, String)> = proxy
        .filter_calls()
        .iter()
        .map(|call| {
            let text = |k: &str| call.body[k].as_str().unwrap_or_default().to_owned();
            (text("logGroupName"), text("destinationArn"))
        })
        .collect();
    puts.sort();
    let central = |region: &str| DESTINATION.replace("{region}", region);
    assert_eq!(
        puts,
        [
            ("/aws/eks/alpha/cluster".to_owned(), central(r1)),
            ("/aws/eks/beta/cluster".to_owned(), central(r1)),
            ("/aws/eks/gamma/cluster".to_owned(), central(r2)),
        ]
    );
}

#[tokio::test]
async fn fleet_check_over_an_organizational_unit_and_the_ous_under_it() {
    let org = aws_sdk_organizations::Client::new(&moto::config().await);
    // One organization per moto server, whose management account is moto's own.
    drop(
        org.create_organization()
            .feature_set(aws_sdk_organizations::types::OrganizationFeatureSet::All)
            .send()
            .await,
    );
    let root = org.list_roots().send().await.unwrap().roots()[0]
        .id()
        .unwrap()
        .to_owned();
    let new_ou = |parent: String, name: String| {
        let org = org.clone();
        async move {
            org.create_organizational_unit()
                .parent_id(parent)
                .name(name)
                .send()
                .await
                .unwrap()
                .organizational_unit()
                .unwrap()
                .id()
                .unwrap()
                .to_owned()
        }
    };
    let ou = new_ou(root.clone(), moto::unique("prod")).await;
    let nested = new_ou(ou.clone(), moto::unique("team")).await;
    let mut accounts = Vec::new();
    for parent in [&ou, &nested] {
        let name = moto::unique("member");
        let status = org
            .create_account()
            .account_name(&name)
            .email(format!("{name}@example.com"))
            .send()
            .await
            .unwrap();
        let id = status
            .create_account_status()
            .unwrap()
            .account_id()
            .unwrap()
            .to_owned();
        org.move_account()
            .account_id(&id)
            .source_parent_id(&root)
            .destination_parent_id(parent.as_str())
            .send()
            .await
            .unwrap();
        accounts.push(id);
    }
    // An account left at the root is outside the OU: never looked at.
    let (flowing, silent) = (&accounts[0], &accounts[1]);
    let region = "eu-west-3";
    let logs = logs_as(flowing, region).await;
    cluster_in(&logs, "orders").await;
    // The event before the filter: moto would deliver it to the stream's (absent) bucket.
    audit_event_now(&logs, "orders").await;
    let stream = stream_of(flowing, region).await;
    our_filter_to(&logs, "orders", &stream).await;
    cluster_in(&logs_as(silent, region).await, "payments").await;

    let run = subscribe(
        moto::endpoint(),
        &[
            "--check",
            "--org",
            "--ou",
            &ou,
            "--role-name",
            ROLE_NAME,
            "--regions",
            region,
        ],
    )
    .await;
    assert_eq!(run.code, Some(1), "{}{}", run.stdout, run.stderr);
    let mut expected = vec![
        row(flowing, region, "orders", "flowing"),
        // No audit stream yet, and no filter: both problems are named.
        row(
            silent,
            region,
            "payments",
            "no audit events, not subscribed",
        ),
    ];
    expected.sort();
    assert_eq!(run.rows, expected, "{}", run.stdout);
}
