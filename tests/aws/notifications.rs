//! S3 → SQS: the bucket's `ObjectCreated` notifications for the objects the handler writes,
//! as downstream collectors receive them.

use aws_sdk_sqs::types::QueueAttributeName;
use eks_audit_forwarder::collect::notification::{self, Notification};

use crate::events::sample;
use crate::moto;
use crate::resources::new_bucket;
use crate::resources::{Queue, new_queue, notify};
use crate::s3_objects::{direct, s3_handler};

/// Messages in the queue, visible or in flight.
pub async fn depth(sqs: &aws_sdk_sqs::Client, queue: &Queue) -> usize {
    let attributes = sqs
        .get_queue_attributes()
        .queue_url(&queue.url)
        .attribute_names(QueueAttributeName::ApproximateNumberOfMessages)
        .attribute_names(QueueAttributeName::ApproximateNumberOfMessagesNotVisible)
        .send()
        .await
        .unwrap();
    let attributes = attributes.attributes().unwrap();
    let count = |name| {
        attributes
            .get(&name)
            .map_or(0, |v: &String| v.parse::<usize>().unwrap())
    };
    count(QueueAttributeName::ApproximateNumberOfMessages)
        + count(QueueAttributeName::ApproximateNumberOfMessagesNotVisible)
}

/// Receives and deletes every visible message body.
pub async fn drain(sqs: &aws_sdk_sqs::Client, queue: &Queue) -> Vec<String> {
    let mut bodies = Vec::new();
    loop {
        let received = sqs
            .receive_message()
            .queue_url(&queue.url)
            .max_number_of_messages(10)
            .send()
            .await
            .unwrap();
        let messages = received.messages.unwrap_or_default();
        if messages.is_empty() {
            return bodies;
        }
        for message in messages {
            bodies.push(message.body().unwrap_or_default().to_owned());
            sqs.delete_message()
                .queue_url(&queue.url)
                .receipt_handle(message.receipt_handle().unwrap())
                .send()
                .await
                .unwrap();
        }
    }
}

#[tokio::test]
async fn objects_written_by_the_handler_are_announced_on_the_queue_after_a_test_event() {
    let (s3, sqs) = (moto::s3().await, moto::sqs().await);
    let bucket = new_bucket(&s3).await;
    let queue = new_queue(&sqs, None).await;
    notify(&s3, &bucket, &queue).await;

    let summary = direct(
        &s3_handler(&bucket, None).await,
        &sample("awslogs-eks-audit.json"),
    )
    .await;

    let bodies = drain(&sqs, &queue).await;
    let parsed: Vec<Notification> = bodies
        .iter()
        .map(|b| notification::parse(b).expect("an S3 notification"))
        .collect();
    assert_eq!(
        parsed[0],
        Notification::TestEvent {
            bucket: bucket.clone()
        },
        "s3:TestEvent comes first"
    );
    let mut announced = Vec::new();
    for (body, notification) in bodies.iter().zip(&parsed).skip(1) {
        let Notification::Records(records) = notification else {
            panic!("object events after the test event")
        };
        for record in records {
            assert_eq!(record.event_name, "ObjectCreated:Put");
            assert_eq!(record.bucket, bucket);
            assert!(
                !body.contains(&record.key),
                "keys arrive URL-encoded: {body}"
            );
            announced.push(format!("s3://{}/{}", record.bucket, record.key));
        }
    }
    announced.sort();
    let mut written = summary.objects.clone();
    written.sort();
    assert_eq!(
        announced, written,
        "one notification per object, keys decoded back exactly"
    );
}
