//! The AWS resources the emulator tests and the soak create in moto: buckets, queues with their
//! dead-letter queues and bucket notifications, and Firehose delivery streams.

#![allow(
    dead_code,
    reason = "each test binary that includes the resources uses part of them"
)]

use aws_sdk_firehose::types::{
    BufferingHints, CompressionFormat, DeliveryStreamType, ExtendedS3DestinationConfiguration,
};
use aws_sdk_s3::types::{Event, NotificationConfiguration, QueueConfiguration};
use aws_sdk_sqs::types::QueueAttributeName;

use crate::moto::{self, ACCOUNT, unique};

/// A new, empty bucket.
pub async fn new_bucket(s3: &aws_sdk_s3::Client) -> String {
    let bucket = unique("audit");
    s3.create_bucket()
        .bucket(&bucket)
        .send()
        .await
        .expect("create bucket");
    bucket
}

/// A queue, optionally with a dead-letter queue after `max_receive_count` receives.
pub struct Queue {
    pub url: String,
    pub arn: String,
}

pub async fn new_queue(sqs: &aws_sdk_sqs::Client, redrive: Option<(&Queue, u32)>) -> Queue {
    let mut request = sqs.create_queue().queue_name(unique("audit-objects"));
    if let Some((dlq, max_receive_count)) = redrive {
        let policy = serde_json::json!({"deadLetterTargetArn": dlq.arn, "maxReceiveCount": max_receive_count});
        request = request.attributes(QueueAttributeName::RedrivePolicy, policy.to_string());
    }
    let url = request
        .send()
        .await
        .expect("create queue")
        .queue_url
        .expect("a queue URL");
    let attributes = sqs
        .get_queue_attributes()
        .queue_url(&url)
        .attribute_names(QueueAttributeName::QueueArn)
        .send()
        .await
        .expect("queue attributes");
    let arn = attributes
        .attributes()
        .and_then(|a| a.get(&QueueAttributeName::QueueArn))
        .expect("a queue ARN")
        .clone();
    Queue { url, arn }
}

/// Sends the bucket's `ObjectCreated` events to `queue` (S3 then sends `s3:TestEvent`).
pub async fn notify(s3: &aws_sdk_s3::Client, bucket: &str, queue: &Queue) {
    let configuration = QueueConfiguration::builder()
        .queue_arn(&queue.arn)
        .events(Event::from("s3:ObjectCreated:*"))
        .build()
        .unwrap();
    s3.put_bucket_notification_configuration()
        .bucket(bucket)
        .notification_configuration(
            NotificationConfiguration::builder()
                .queue_configurations(configuration)
                .build(),
        )
        .send()
        .await
        .expect("put bucket notification configuration");
}

/// A delivery stream writing to its own bucket, as moto delivers: one object per call.
pub struct Stream {
    pub name: String,
    pub arn: String,
    pub bucket: String,
}

/// A delivery stream in `region` (its bucket is global, in moto's default region).
pub async fn new_stream_in(region: &str) -> Stream {
    let s3 = moto::s3().await;
    let bucket = new_bucket(&s3).await;
    let name = unique("eks-audit");
    let destination = ExtendedS3DestinationConfiguration::builder()
        .role_arn(format!("arn:aws:iam::{ACCOUNT}:role/firehose-delivery"))
        .bucket_arn(format!("arn:aws:s3:::{bucket}"))
        .prefix("delivered/")
        .compression_format(CompressionFormat::Uncompressed)
        .buffering_hints(
            BufferingHints::builder()
                .size_in_mbs(1)
                .interval_in_seconds(60)
                .build(),
        )
        .build()
        .unwrap();
    let config = aws_sdk_firehose::config::Builder::from(&moto::config().await)
        .region(aws_sdk_firehose::config::Region::new(region.to_owned()))
        .build();
    aws_sdk_firehose::Client::from_conf(config)
        .create_delivery_stream()
        .delivery_stream_name(&name)
        .delivery_stream_type(DeliveryStreamType::DirectPut)
        .extended_s3_destination_configuration(destination)
        .send()
        .await
        .expect("create delivery stream");
    let arn = format!("arn:aws:firehose:{region}:{ACCOUNT}:deliverystream/{name}");
    Stream { name, arn, bucket }
}
