//! eks-audit-forwarder: Amazon EKS Kubernetes audit logs from CloudWatch Logs to S3, Firehose
//! and the SIEMs behind them.
//!
//! The crate is a pure core wrapped in thin shells. Follow one audit event through it:
//!
//! 1. [`envelope`] reads the Lambda event (Firehose transformation or `awslogs`), base64 and
//!    gzip, and the CloudWatch Logs subscription messages inside.
//! 2. [`audit`] parses each log event's message into a borrowed [`audit::AuditEvent`].
//! 3. [`filter`] keeps the stages and URIs the operator asked for (SPEC §3).
//! 4. [`schema`] writes the event as one NDJSON line in the flat schema (SPEC §4) or as an
//!    OCSF API Activity event (SPEC §5); OCSF quarantines events it cannot represent.
//! 5. [`pipeline`] ties 1–4 together per payload and accounts for every event ([`tally`]).
//! 6. [`batch`] turns outcomes into a Firehose response or S3 objects with deterministic keys.
//! 7. [`handler`] is the async shell the Lambda and the CLI share; [`sink`] writes objects to
//!    S3 or a local directory, and re-ingests into Firehose what does not fit its response.
//!
//! Upstream, [`subscribe`] puts the subscription filter on the clusters' log groups and checks
//! that audit logs flow. Downstream, [`collect`] reads the objects back through their S3
//! notifications on SQS, and [`telemetry`] sets up logs and writes the Lambda's metrics.

pub mod audit;
pub mod batch;
pub mod collect;
pub mod config;
pub mod envelope;
pub mod filter;
pub mod handler;
pub mod pipeline;
pub mod redact;
pub mod schema;
pub mod sink;
pub mod subscribe;
pub mod strict_json;
pub mod tally;
pub mod telemetry;
pub mod transform;
