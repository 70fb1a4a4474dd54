//! contract §6.4: in a fleet, events, object keys and partition keys name the source account
//! (the message's `owner`) and the source region, never the central account that receives
//! them; the single-account layout stays as it was.

mod common;

use common::*;
use eks_audit_core::envelope::models::FirehoseResult;
use eks_audit_core::{Format, KeyLayout};
use eks_audit_forwarder::config::Settings;
use eks_audit_forwarder::handler::Response;
use serde_json::Value;

/// The central account, where the delivery stream and the function live.
const CENTRAL: &str = "999999999999";
/// Two member accounts, each with a cluster called `prod`.
const MEMBER_A: &str = "111111111111";
const MEMBER_B: &str = "222222222222";
/// The central stream of the region the members' log groups are in.
const STREAM_ARN: &str = "arn:aws:firehose:eu-central-1:999999999999:deliverystream/central";

fn kept_event() -> String {
    corpus_event(
        "audit-events/eks-security-immersion-day/log-insights-result-1.json",
        0,
    )
}

/// A message of `owner`'s `prod` cluster, with the same stream and event ids in every account.
fn member_message(owner: &str, messages: &[&str]) -> Value {
    let mut message = data_message("/aws/eks/prod/cluster", STREAM, messages);
    message["owner"] = owner.into();
    message
}

fn fleet(format: Format) -> Settings {
    let mut settings = Settings::default();
    settings.process.format = format;
    settings.process.key_layout = KeyLayout::Fleet;
    settings
}

/// The account and region a normalized line names, flat or OCSF.
fn provenance(line: &Value) -> (String, String) {
    let text = |v: &Value| v.as_str().unwrap_or_default().to_owned();
    match line.get("AwsAccountId") {
        Some(account) => (text(account), text(&line["Region"])),
        None => (
            text(&line["cloud"]["account"]["uid"]),
            text(&line["cloud"]["region"]),
        ),
    }
}

#[tokio::test]
async fn firehose_records_of_two_members_carry_their_own_account_and_the_source_region() {
    let records = [
        gzip_record(&member_message(MEMBER_A, &[&kept_event()])),
        gzip_record(&member_message(MEMBER_B, &[&kept_event()])),
    ];
    for format in Format::ALL {
        // The function's own region (us-west-2 in the test handler) is not the stream's.
        let response = handler(fleet(format))
            .firehose(&firehose_event_for(STREAM_ARN, &records))
            .await;
        for (record, member) in response.records.iter().zip([MEMBER_A, MEMBER_B]) {
            assert_eq!(record.result, FirehoseResult::Ok, "{format:?}");
            let lines = ok_lines(&record.data);
            assert_eq!(lines.len(), 1);
            assert_eq!(
                provenance(&lines[0]),
                (member.to_owned(), "eu-central-1".to_owned()),
                "{format:?}: the owner, and the region of the stream the destination feeds"
            );
            assert!(
                !ok_text(&record.data).contains(CENTRAL),
                "{format:?}: the central account appears nowhere"
            );
            let keys = &record.metadata.as_ref().unwrap().partition_keys;
            let keys: Vec<(&str, &str)> =
                keys.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
            assert_eq!(
                keys,
                [
                    ("account", member),
                    ("cluster", "prod"),
                    ("region", "eu-central-1")
                ]
            );
        }
    }
}

#[tokio::test]
async fn direct_mode_fleet_keys_keep_same_named_clusters_of_two_accounts_apart() {
    let test = handler(fleet(Format::Flat));
    for member in [MEMBER_A, MEMBER_B] {
        let event = awslogs_event(&member_message(member, &[&kept_event(), "not json"]));
        match test.handler.handle(&event).await.unwrap() {
            Response::Direct(summary) => assert_eq!(summary.objects.len(), 1),
            other => panic!("expected a direct summary, got {other:?}"),
        }
    }
    let objects = test.objects();
    let keys: Vec<&str> = objects.iter().map(|(key, _)| key.as_str()).collect();
    // The corpus event was received at 2023-07-31T01:58:11Z; "not json" is quarantined by its
    // CloudWatch timestamp, 10:00Z. The function's region stands for the source's.
    let object = |kind: &str, account: &str, day_hour: &str, id: &str| {
        format!(
            "eks-audit/{kind}cluster=prod/account={account}/region=us-west-2/dt={day_hour}/{STREAM}-{id}.json.gz"
        )
    };
    let mut expected = vec![
        object("", MEMBER_A, "2023-07-31/hour=01", "id-0"),
        object("", MEMBER_B, "2023-07-31/hour=01", "id-0"),
        object("quarantine/", MEMBER_A, "2024-05-21/hour=10", "id-1"),
        object("quarantine/", MEMBER_B, "2024-05-21/hour=10", "id-1"),
    ];
    expected.sort();
    assert_eq!(keys, expected);
    for (key, body) in &objects {
        let line: Value = serde_json::from_str(body.lines().next().unwrap()).unwrap();
        let owner = line
            .get("AwsAccountId")
            .or(line.get("owner"))
            .and_then(Value::as_str)
            .unwrap();
        assert!(
            key.contains(&format!("/account={owner}/")),
            "{key} holds {owner}'s event"
        );
    }
}

#[tokio::test]
async fn the_single_account_layout_does_not_change() {
    // Without the fleet layout both members' objects would share one key: the layout is for
    // one account, and is kept as it was for those who run one.
    let test = handler(Settings::default());
    let event = awslogs_event(&member_message(MEMBER_A, &[&kept_event()]));
    let Response::Direct(summary) = test.handler.handle(&event).await.unwrap() else {
        panic!("direct summary expected")
    };
    assert_eq!(summary.objects.len(), 1);
    assert!(
        summary.objects[0].ends_with(&format!(
            "eks-audit/cluster=prod/dt=2023-07-31/hour=01/{STREAM}-id-0.json.gz"
        )),
        "{:?}",
        summary.objects
    );
}
