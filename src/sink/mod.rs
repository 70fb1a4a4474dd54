//! Where output goes: objects to S3 when a bucket is configured, a local directory otherwise;
//! records that do not fit a Firehose response back into their delivery stream.

pub mod findings;
pub mod firehose;
pub mod local;
pub mod s3;

use aws_sdk_s3::config::http::HttpResponse;
use aws_sdk_s3::error::{DisplayErrorContext, ProvideErrorMetadata, SdkError};

use crate::config::Settings;
use eks_audit_core::batch::objects::Object;

/// Why an object could not be stored. The invocation fails, so the source retries it and the
/// deterministic keys make the retry overwrite rather than duplicate.
#[derive(Debug, thiserror::Error)]
pub enum SinkError {
    /// A local file could not be written.
    #[error("cannot write {path}: {source}")]
    Local {
        /// The file's path.
        path: String,
        /// What the file system said.
        source: std::io::Error,
    },
    /// A key that would leave the local output directory (absolute, or a `.`, `..` or empty
    /// segment): refused, never written.
    #[error(
        "refusing to write {key:?} under {root}: {reason}; keys are paths below the output directory"
    )]
    UnsafeKey {
        /// The output directory.
        root: String,
        /// The key refused.
        key: String,
        /// What is wrong with it.
        reason: &'static str,
    },
    /// `PutObject` failed (after the SDK's retries).
    #[error("cannot put s3://{bucket}/{key}: {message}")]
    S3 {
        /// The bucket.
        bucket: String,
        /// The object key.
        key: String,
        /// The SDK error, on one line.
        message: String,
    },
}

/// Where objects are written: a bucket, or a local directory standing in for one (contract §6.1).
pub enum ObjectStore {
    /// Objects as files under a local directory (`--out`, no bucket).
    Local(local::LocalDir),
    /// Objects in an S3 bucket.
    S3(s3::S3Store),
}

impl ObjectStore {
    /// S3 when `settings` name a bucket, else the local output directory. The AWS
    /// configuration (region, credentials, `AWS_ENDPOINT_URL`) is only loaded for a bucket, so
    /// local runs never probe for credentials.
    pub async fn from_settings(settings: &Settings) -> ObjectStore {
        match &settings.bucket {
            Some(bucket) => {
                let aws = aws_config::load_from_env().await;
                ObjectStore::S3(s3::S3Store::new(
                    s3::client(&aws),
                    bucket.clone(),
                    settings.sse_kms_key_id.clone(),
                ))
            }
            None => ObjectStore::Local(local::LocalDir::new(&settings.out_dir)),
        }
    }

    /// Writes `object` under its key, replacing any object of that key. S3 objects carry
    /// [`Object::metadata`] (event count, first and last event time) as user metadata; a local
    /// directory keeps the body only and drops the metadata (contract §6.1).
    pub async fn put(&self, object: &Object) -> Result<(), SinkError> {
        match self {
            ObjectStore::Local(dir) => dir.put(object).await,
            ObjectStore::S3(store) => store.put(object).await,
        }
    }

    /// Where an object with `key` ends up, for logs and responses.
    pub fn location(&self, key: &str) -> String {
        match self {
            ObjectStore::Local(dir) => dir.path_of(key).display().to_string(),
            ObjectStore::S3(store) => format!("s3://{}/{key}", store.bucket()),
        }
    }

    /// Whether this is a real bucket (Firehose mode only quarantines into one).
    pub fn is_bucket(&self) -> bool {
        matches!(self, ObjectStore::S3(_))
    }
}

/// A one-line account of an AWS SDK error for logs and error messages: the service's error
/// code, HTTP status and message when it answered; else the whole chain (timeouts, connection
/// failures, credentials).
pub fn describe_sdk_error<E>(error: &SdkError<E, HttpResponse>) -> String
where
    E: ProvideErrorMetadata + std::error::Error + 'static,
{
    match error {
        SdkError::ServiceError(service) => {
            let (err, status) = (service.err(), service.raw().status().as_u16());
            let code = err.code().unwrap_or("error");
            match err.message() {
                Some(message) => format!("{code} (HTTP {status}): {message}"),
                None => format!("{code} (HTTP {status})"),
            }
        }
        other => DisplayErrorContext(other).to_string(),
    }
}
