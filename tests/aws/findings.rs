//! contract §12 against S3 and SQS (moto): findings objects beside the data, each finding on
//! the findings queue, and a queue that does not take them failing nothing.

use std::sync::Arc;

use eks_audit_core::detect::Detector;
use eks_audit_core::detect::rules::default_pack;
use eks_audit_forwarder::config::Settings;
use eks_audit_forwarder::handler::{Handler, Response};
use eks_audit_forwarder::sink::ObjectStore;
use eks_audit_forwarder::sink::findings::FindingsQueue;
use eks_audit_forwarder::sink::s3::S3Store;
use serde_json::{Value, json};

use crate::common::{GROUP, STREAM, awslogs_event, data_message};
use crate::moto::{self, unique};
use crate::resources::new_bucket;
use crate::s3_objects::keys;

fn exec_in_kube_system(audit_id: &str) -> String {
    json!({
        "kind": "Event", "apiVersion": "audit.k8s.io/v1", "level": "Metadata",
        "auditID": audit_id, "stage": "ResponseComplete",
        "requestURI": "/api/v1/namespaces/kube-system/pods/coredns-1/exec?command=sh",
        "verb": "create", "user": {"username": "kubernetes-admin"},
        "sourceIPs": ["203.0.113.10"],
        "objectRef": {"resource": "pods", "namespace": "kube-system", "name": "coredns-1",
                      "subresource": "exec"},
        "responseStatus": {"code": 101},
        "requestReceivedTimestamp": "2024-05-21T10:00:00.000000Z",
        "stageTimestamp": "2024-05-21T10:00:01.000000Z"
    })
    .to_string()
}

async fn detecting_handler(bucket: &str, queue_url: &str) -> Handler {
    let mut settings = Settings {
        bucket: Some(bucket.to_owned()),
        ..Settings::default()
    };
    settings.process.detector = Some(Arc::new(Detector::load(&default_pack()).unwrap()));
    let config = moto::config().await;
    let store = ObjectStore::S3(S3Store::new(
        eks_audit_forwarder::sink::s3::client(&config),
        bucket.to_owned(),
        None,
    ));
    Handler::new(settings, store, Some("eu-west-1".into())).with_findings_queue(FindingsQueue::new(
        aws_sdk_sqs::Client::new(&config),
        queue_url.to_owned(),
    ))
}

#[tokio::test]
async fn each_finding_reaches_the_queue_and_its_object_the_bucket() {
    let (s3, sqs) = (moto::s3().await, moto::sqs().await);
    let bucket = new_bucket(&s3).await;
    let queue = sqs
        .create_queue()
        .queue_name(unique("findings"))
        .send()
        .await
        .unwrap();
    let queue_url = queue.queue_url().unwrap();
    let handler = detecting_handler(&bucket, queue_url).await;
    // Twelve findings at least: more than one SendMessageBatch of ten.
    let events: Vec<String> = (0..12)
        .map(|i| exec_in_kube_system(&format!("id-{i}")))
        .collect();
    let refs: Vec<&str> = events.iter().map(String::as_str).collect();
    let event = awslogs_event(&data_message(GROUP, STREAM, &refs));
    let invocation = handler.invoke(&event).await.unwrap();
    let Response::Direct(summary) = &invocation.response else {
        panic!("direct")
    };
    assert!(summary.findings >= 12);
    assert_eq!(invocation.findings.queued, summary.findings);
    assert_eq!(invocation.findings.queue_failures, 0);

    let mut bodies = Vec::new();
    loop {
        let received = sqs
            .receive_message()
            .queue_url(queue_url)
            .max_number_of_messages(10)
            .send()
            .await
            .unwrap();
        let messages = received.messages();
        if messages.is_empty() {
            break;
        }
        for message in messages {
            bodies.push(serde_json::from_str::<Value>(message.body().unwrap()).unwrap());
            sqs.delete_message()
                .queue_url(queue_url)
                .receipt_handle(message.receipt_handle().unwrap())
                .send()
                .await
                .unwrap();
        }
    }
    assert_eq!(bodies.len() as u64, summary.findings);
    let mut ids: Vec<&str> = bodies
        .iter()
        .map(|b| {
            b["finding_info"]["related_events"][0]["uid"]
                .as_str()
                .unwrap()
        })
        .collect();
    ids.sort();
    ids.dedup();
    assert_eq!(ids.len(), 12, "every event's finding arrived");
    assert!(bodies.iter().all(|b| b["class_uid"] == 2004));

    let keys = keys(&s3, &bucket).await;
    assert!(
        keys.iter()
            .any(|k| k.starts_with("eks-audit/findings/cluster=prod-east/dt=2024-05-21/hour=10/")),
        "{keys:?}"
    );
}

#[tokio::test]
async fn a_queue_that_takes_nothing_fails_neither_the_invocation_nor_the_data() {
    let s3 = moto::s3().await;
    let bucket = new_bucket(&s3).await;
    let missing = format!("{}/000000000000/no-such-queue", moto::endpoint());
    let handler = detecting_handler(&bucket, &missing).await;
    let event = awslogs_event(&data_message(GROUP, STREAM, &[&exec_in_kube_system("a")]));
    let invocation = handler.invoke(&event).await.expect("the data is written");
    assert!(invocation.findings.findings >= 1);
    assert_eq!(invocation.findings.queued, 0);
    assert_eq!(
        invocation.findings.queue_failures,
        invocation.findings.findings
    );
    let keys = keys(&s3, &bucket).await;
    assert!(
        keys.iter().any(|k| k.starts_with("eks-audit/cluster=")),
        "{keys:?}"
    );
    assert!(
        keys.iter().any(|k| k.starts_with("eks-audit/findings/")),
        "{keys:?}"
    );
}
