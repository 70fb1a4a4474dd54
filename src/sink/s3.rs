//! Objects to S3 with `aws-sdk-s3`: gzip NDJSON with its content type and encoding, the
//! object's event count and first and last event times as user metadata, and server-side
//! encryption requested explicitly (SSE-S3, or SSE-KMS with a key).

use aws_sdk_s3::Client;
use aws_sdk_s3::primitives::ByteStream;
use aws_sdk_s3::types::ServerSideEncryption;

use super::SinkError;
use eks_audit_core::batch::objects::{CONTENT_ENCODING, CONTENT_TYPE, Object};

/// An S3 client from the shared AWS configuration. With an endpoint override (a local AWS
/// emulator) buckets are addressed by path, since `bucket.127.0.0.1` does not resolve.
pub fn client(aws: &aws_config::SdkConfig) -> Client {
    let config = aws_sdk_s3::config::Builder::from(aws)
        .force_path_style(aws.endpoint_url().is_some())
        .build();
    Client::from_conf(config)
}

/// Parquet objects (Security Lake output) are compressed inside; everything else is gzip NDJSON.
fn content_type(key: &str) -> &'static str {
    if key.ends_with(".parquet") {
        PARQUET_CONTENT_TYPE
    } else {
        CONTENT_TYPE
    }
}

fn content_encoding(key: &str) -> Option<&'static str> {
    (!key.ends_with(".parquet")).then_some(CONTENT_ENCODING)
}

const PARQUET_CONTENT_TYPE: &str = "application/vnd.apache.parquet";

/// An S3 bucket that objects are put into, with their headers and server-side encryption (contract
/// §6.1).
pub struct S3Store {
    client: Client,
    bucket: String,
    kms_key_id: Option<String>,
}

impl S3Store {
    /// Puts objects into `bucket` with `client` (see [`client`]), encrypted with SSE-KMS under
    /// `kms_key_id` when given, else SSE-S3.
    pub fn new(client: Client, bucket: String, kms_key_id: Option<String>) -> S3Store {
        S3Store {
            client,
            bucket,
            kms_key_id,
        }
    }

    pub(crate) fn bucket(&self) -> &str {
        &self.bucket
    }

    /// Transient errors are retried by the SDK's standard retry policy before this fails.
    pub async fn put(&self, object: &Object) -> Result<(), SinkError> {
        let request = self
            .client
            .put_object()
            .bucket(&self.bucket)
            .key(&object.key)
            .content_type(content_type(&object.key))
            .set_content_encoding(content_encoding(&object.key).map(str::to_owned))
            .body(ByteStream::from(object.body.clone()));
        let request = object
            .metadata()
            .into_iter()
            .fold(request, |request, (name, value)| {
                request.metadata(name, value)
            });
        let request = match &self.kms_key_id {
            Some(key) => request
                .server_side_encryption(ServerSideEncryption::AwsKms)
                .ssekms_key_id(key),
            None => request.server_side_encryption(ServerSideEncryption::Aes256),
        };
        request.send().await.map(drop).map_err(|e| SinkError::S3 {
            bucket: self.bucket.clone(),
            key: object.key.clone(),
            message: super::describe_sdk_error(&e),
        })
    }
}
