//! Re-ingestion into the delivery stream with `aws-sdk-firehose` `PutRecordBatch` (contract §2).
//! What to send is decided by [`eks_audit_core::batch::reingest`]; this sends it and retries.
//!
//! `PutRecordBatch` can succeed as a call while failing some records (`FailedPutCount`, an
//! `ErrorCode` per record): only those are sent again. Both partial failures and transient call
//! failures are retried with exponential backoff and full jitter, a bounded number of times;
//! then the invocation fails so Firehose retries it. Records already accepted by then are sent
//! again on that retry: re-ingestion is at least once, never lossy.
//!
//! The client's own retries are off, so [`RetryPolicy`] is the one place attempts are counted.
//!
//! <https://docs.aws.amazon.com/firehose/latest/APIReference/API_PutRecordBatch.html>

use std::hash::{BuildHasher, RandomState};
use std::path::{Path, PathBuf};
use std::time::Duration;

use aws_sdk_firehose::Client;
use aws_sdk_firehose::config::Region;
use aws_sdk_firehose::config::http::HttpResponse;
use aws_sdk_firehose::config::retry::RetryConfig;
use aws_sdk_firehose::error::{ProvideErrorMetadata, SdkError};
use aws_sdk_firehose::primitives::Blob;
use aws_sdk_firehose::types::Record;
use tokio::sync::OnceCell;

use eks_audit_core::batch::reingest::{FirehoseLimits, batches};

/// A Firehose client from the shared AWS configuration, without the SDK's retries.
pub fn client(aws: &aws_config::SdkConfig) -> Client {
    let config = aws_sdk_firehose::config::Builder::from(aws)
        .retry_config(RetryConfig::disabled())
        .build();
    Client::from_conf(config)
}

/// How often and how patiently a batch is retried.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RetryPolicy {
    /// Calls per batch, the first included.
    pub max_attempts: u32,
    /// The backoff ceiling before the second attempt; it doubles with each attempt.
    pub base_delay: Duration,
    /// The largest backoff ceiling.
    pub max_delay: Duration,
}

impl Default for RetryPolicy {
    /// Six attempts, with at most 3.1 s of backoff in all (ceilings of 0.1, 0.2, 0.4, 0.8 and
    /// 1.6 s; half that on average with jitter): well inside a transformation Lambda's timeout.
    fn default() -> Self {
        RetryPolicy {
            max_attempts: 6,
            base_delay: Duration::from_millis(100),
            max_delay: Duration::from_secs(5),
        }
    }
}

impl RetryPolicy {
    /// Full jitter: a uniform delay between zero and the attempt's exponential ceiling.
    /// `retry` is 1 before the second attempt.
    fn delay(&self, retry: u32) -> Duration {
        let ceiling = self
            .base_delay
            .saturating_mul(1 << retry.saturating_sub(1).min(20))
            .min(self.max_delay);
        let random = RandomState::new().hash_one(retry);
        ceiling.mul_f64((random >> 11) as f64 / (1u64 << 53) as f64)
    }
}

/// Why records could not be re-ingested; the invocation fails and Firehose retries the whole batch.
#[derive(Debug, thiserror::Error)]
pub enum ReingestError {
    /// No Firehose client: the re-ingester was built with [`Reingester::none`].
    #[error(
        "{records} record(s) must be re-ingested into delivery stream {stream}, but no Firehose client is configured"
    )]
    NoClient {
        /// The delivery stream's name.
        stream: String,
        /// Records that had to be re-ingested.
        records: usize,
    },
    /// Some records were still failing after the last attempt of the [`RetryPolicy`].
    #[error(
        "re-ingesting into delivery stream {stream}: {failed} of {sent} record(s) still failing after {attempts} attempt(s); last error: {last_error}"
    )]
    GaveUp {
        /// The delivery stream's name.
        stream: String,
        /// Records of the batch still failing.
        failed: usize,
        /// Records in the batch.
        sent: usize,
        /// `PutRecordBatch` calls made for the batch.
        attempts: u32,
        /// The last call's error, or the first failed record's error code and message.
        last_error: String,
    },
    /// `PutRecordBatch` failed in a way a retry would not change (missing stream, denied access,
    /// bad request).
    #[error("re-ingesting into delivery stream {stream} was refused: {error}")]
    Refused {
        /// The delivery stream's name.
        stream: String,
        /// The SDK error, on one line.
        error: String,
    },
}

/// What was re-ingested.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub(crate) struct Reingested {
    pub records: usize,
    pub bytes: usize,
    /// `PutRecordBatch` calls, retries included.
    pub calls: usize,
}

/// Sends records back into a delivery stream.
pub struct Reingester {
    client: ClientSource,
    policy: RetryPolicy,
    limits: FirehoseLimits,
}

enum ClientSource {
    Given(Client),
    /// Built from the standard AWS configuration on first use, so runs that never need
    /// re-ingestion never load it.
    FromEnv(OnceCell<Client>),
    /// Re-ingestion fails the invocation, saying so.
    Missing,
    /// A local directory stands in for the delivery stream: `eks-audit invoke` without a bucket.
    Directory(PathBuf),
}

impl Reingester {
    /// A re-ingester that calls Firehose with `client` (see [`client`] for the one the Lambda uses)
    /// and retries as `policy` says.
    pub fn new(client: Client, policy: RetryPolicy) -> Reingester {
        Reingester {
            client: ClientSource::Given(client),
            policy,
            limits: FirehoseLimits::default(),
        }
    }

    /// A re-ingester whose client is built from the standard AWS configuration when first needed.
    pub fn from_env() -> Reingester {
        Reingester {
            client: ClientSource::FromEnv(OnceCell::new()),
            policy: RetryPolicy::default(),
            limits: FirehoseLimits::default(),
        }
    }

    /// No client: for shells that cannot reach AWS; re-ingestion then fails the invocation.
    pub fn none() -> Reingester {
        Reingester {
            client: ClientSource::Missing,
            policy: RetryPolicy::default(),
            limits: FirehoseLimits::default(),
        }
    }

    /// A re-ingester that writes each record it would put into a stream under
    /// `<dir>/firehose/<stream>/`, as `<crc32>-<bytes>.json.gz` (the record's data: a gzip
    /// subscription message, which `eks-audit transform` reads). Named by their content, so a
    /// second run of the same invocation writes the same files again. For local runs, where a
    /// local directory stands in for S3: a large event then runs whole, without AWS.
    pub fn local(dir: &Path) -> Reingester {
        Reingester {
            client: ClientSource::Directory(dir.join("firehose")),
            policy: RetryPolicy::default(),
            limits: FirehoseLimits::default(),
        }
    }

    /// Other batch limits, for tests of the batching against an emulator.
    pub fn with_limits(mut self, limits: FirehoseLimits) -> Reingester {
        self.limits = limits;
        self
    }

    pub(crate) fn limits(&self) -> &FirehoseLimits {
        &self.limits
    }

    async fn client(&self) -> Option<&Client> {
        match &self.client {
            ClientSource::Given(client) => Some(client),
            ClientSource::FromEnv(cell) => Some(
                cell.get_or_init(|| async { client(&aws_config::load_from_env().await) })
                    .await,
            ),
            ClientSource::Missing | ClientSource::Directory(_) => None,
        }
    }

    /// [`Reingester::put`] into a local directory.
    fn write_all(
        dir: &Path,
        stream: DeliveryStream<'_>,
        payloads: &[Vec<u8>],
    ) -> Result<Reingested, ReingestError> {
        let refused = |error: std::io::Error| ReingestError::Refused {
            stream: stream.name.to_owned(),
            error: error.to_string(),
        };
        // The name comes from the event's ARN: one safe path segment, or a stand-in.
        let segment = match stream.name {
            "" | "." | ".." => "_",
            name if name.contains(['/', '\\']) => "_",
            name => name,
        };
        let dir = dir.join(segment);
        std::fs::create_dir_all(&dir).map_err(refused)?;
        let mut done = Reingested::default();
        for data in payloads {
            let mut crc = flate2::Crc::new();
            crc.update(data);
            let path = dir.join(format!("{:08x}-{}.json.gz", crc.sum(), data.len()));
            std::fs::write(path, data).map_err(refused)?;
            done.records += 1;
            done.bytes += data.len();
            // One file stands for one call.
            done.calls += 1;
        }
        Ok(done)
    }

    /// Puts every payload into `stream`, in batches within the limits, retrying failures.
    pub(crate) async fn put(
        &self,
        stream: DeliveryStream<'_>,
        payloads: &[Vec<u8>],
    ) -> Result<Reingested, ReingestError> {
        if let ClientSource::Directory(dir) = &self.client {
            return Self::write_all(dir, stream, payloads);
        }
        let Some(client) = self.client().await else {
            return Err(ReingestError::NoClient {
                stream: stream.name.to_owned(),
                records: payloads.len(),
            });
        };
        let mut done = Reingested::default();
        for batch in batches(payloads, &self.limits) {
            done.calls += self
                .put_batch(client, stream, &payloads[batch.clone()])
                .await?;
            done.records += batch.len();
            done.bytes += payloads[batch].iter().map(Vec::len).sum::<usize>();
        }
        Ok(done)
    }

    /// One batch until every record is accepted; returns the number of calls made.
    async fn put_batch(
        &self,
        client: &Client,
        stream: DeliveryStream<'_>,
        batch: &[Vec<u8>],
    ) -> Result<usize, ReingestError> {
        let elsewhere = stream.region.filter(|r| {
            client
                .config()
                .region()
                .is_none_or(|own| own.as_ref() != *r)
        });
        let name = stream.name;
        let mut pending: Vec<&Vec<u8>> = batch.iter().collect();
        let mut attempt = 0;
        loop {
            attempt += 1;
            let records = pending
                .iter()
                .map(|data| Record::builder().data(Blob::new(data.as_slice())).build());
            let records = records
                .collect::<Result<Vec<_>, _>>()
                .expect("data, the one required field, is set");
            let mut request = client
                .put_record_batch()
                .delivery_stream_name(name)
                .set_records(Some(records))
                .customize();
            if let Some(region) = elsewhere {
                request = request.config_override(
                    aws_sdk_firehose::config::Builder::default()
                        .region(Region::new(region.to_owned())),
                );
            }
            let last_error = match request.send().await {
                Ok(output) => {
                    let answers = output.request_responses();
                    if answers.len() != pending.len() {
                        format!("{} answers for {} records", answers.len(), pending.len())
                    } else {
                        let mut first_error = None;
                        let mut failed = Vec::new();
                        for (data, answer) in pending.iter().zip(answers) {
                            if let Some(code) = answer.error_code() {
                                first_error.get_or_insert_with(|| {
                                    format!(
                                        "{code}: {}",
                                        answer.error_message().unwrap_or_default()
                                    )
                                });
                                failed.push(*data);
                            }
                        }
                        match first_error {
                            None => return Ok(attempt as usize),
                            Some(error) => {
                                tracing::warn!(stream = name, failed = failed.len(), sent = pending.len(), attempt, %error, "PutRecordBatch: some records failed");
                                pending = failed;
                                error
                            }
                        }
                    }
                }
                Err(error) => {
                    let message = super::describe_sdk_error(&error);
                    if !is_transient(&error) {
                        return Err(ReingestError::Refused {
                            stream: name.to_owned(),
                            error: message,
                        });
                    }
                    tracing::warn!(stream = name, sent = pending.len(), attempt, error = %message, "PutRecordBatch failed");
                    message
                }
            };
            if attempt >= self.policy.max_attempts {
                return Err(ReingestError::GaveUp {
                    stream: name.to_owned(),
                    failed: pending.len(),
                    sent: batch.len(),
                    attempts: attempt,
                    last_error,
                });
            }
            tokio::time::sleep(self.policy.delay(attempt)).await;
        }
    }
}

/// Whether a failed call may succeed if made again: throttling, server errors, timeouts and
/// connection failures. A missing stream, bad arguments or denied access will not.
fn is_transient<E: ProvideErrorMetadata>(error: &SdkError<E, HttpResponse>) -> bool {
    match error {
        SdkError::ServiceError(service) => {
            let code = service.err().code().unwrap_or_default();
            service.raw().status().is_server_error()
                || matches!(
                    code,
                    "ServiceUnavailableException"
                        | "ThrottlingException"
                        | "LimitExceededException"
                )
        }
        SdkError::ResponseError(_) | SdkError::TimeoutError(_) | SdkError::DispatchFailure(_) => {
            true
        }
        _ => false,
    }
}

/// The delivery stream a Firehose event came from, named by its `deliveryStreamArn`
/// (`arn:aws:firehose:<region>:<account>:deliverystream/<name>`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct DeliveryStream<'a> {
    pub name: &'a str,
    /// The stream's region, when the ARN names one: calls go there, whatever the client's
    /// own region.
    pub region: Option<&'a str>,
}

impl<'a> DeliveryStream<'a> {
    pub(crate) fn from_arn(arn: &'a str) -> Option<DeliveryStream<'a>> {
        let (head, name) = arn.split_once(":deliverystream/")?;
        let region = head.split(':').nth(3).filter(|r| !r.is_empty());
        (!name.is_empty()).then_some(DeliveryStream { name, region })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_stream_and_its_region_come_from_the_arn() {
        assert_eq!(
            DeliveryStream::from_arn(
                "arn:aws:firehose:eu-west-1:111122223333:deliverystream/eks-audit"
            ),
            Some(DeliveryStream {
                name: "eks-audit",
                region: Some("eu-west-1")
            })
        );
        assert_eq!(
            DeliveryStream::from_arn("arn:aws:firehose:eu-west-1:111122223333:deliverystream/"),
            None
        );
        assert_eq!(DeliveryStream::from_arn("eks-audit"), None);
    }

    #[test]
    fn backoff_is_full_jitter_under_a_doubling_ceiling() {
        let policy = RetryPolicy {
            max_attempts: 10,
            base_delay: Duration::from_millis(100),
            max_delay: Duration::from_secs(1),
        };
        for retry in 1..10 {
            let ceiling = Duration::from_millis(100 << (retry - 1)).min(Duration::from_secs(1));
            let delays: Vec<Duration> = (0..50).map(|_| policy.delay(retry)).collect();
            assert!(
                delays.iter().all(|d| *d <= ceiling),
                "retry {retry}: {delays:?}"
            );
            assert!(
                delays.iter().any(|d| *d < ceiling / 2),
                "retry {retry}: jitter reaches low delays"
            );
        }
    }
}
