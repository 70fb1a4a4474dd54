//! The AWS side against a real local emulator: one moto server, started once for this test
//! binary and shared by every test (each uses its own buckets, queues and streams), so the
//! whole suite pays moto's start-up once. Needs `scripts/setup-tools.sh` (moto in `.venv/`).
//!
//! - [`s3_objects`]: contract §6 objects, headers, encryption, idempotency, quarantine.
//! - [`notifications`]: S3 `ObjectCreated` notifications on SQS.
//! - [`collect`]: `eks-audit collect`, happy path and failures (dead-letter queue), and its
//!   memory bound, measured by the counting allocator of [`peak`].
//! - [`subscribe`]: `eks-audit subscribe` on CloudWatch Logs log groups, and `--check`.
//! - [`fleet`]: `eks-audit subscribe --accounts/--org` over accounts reached through STS.
//! - [`auto_subscribe`]: the Lambda's auto-subscriber on EventBridge events (CloudTrail
//!   `CreateLogGroup`, the daily sweep), through the handler.
//! - [`reconcile`]: `eks-audit reconcile`, CloudWatch events against the bucket's objects.
//! - [`findings`]: contract §12 findings objects and the findings queue.
//! - [`reingest`]: contract §2 re-ingestion through Firehose `PutRecordBatch`, with failures
//!   injected by [`proxy`].

#[path = "../common/mod.rs"]
mod common;

mod auto_subscribe;
mod collect;
mod events;
mod findings;
mod fleet;
mod moto;
mod notifications;
#[path = "../common/peak.rs"]
mod peak;
mod proxy;
mod reconcile;
mod reingest;
mod resources;
mod s3_objects;
mod subscribe;
