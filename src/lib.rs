//! eks-audit-forwarder: Amazon EKS Kubernetes audit logs from CloudWatch Logs to S3, Firehose
//! and the SIEMs behind them.
//!
//! This crate is the shell around the pure core, [`eks_audit_core`], which decodes, filters,
//! normalizes and encodes. Here is everything that touches the world:
//!
//! - [`handler`]: the one handler the Lambda and `eks-audit invoke` share. It tells the event's
//!   kind, runs the core, stores objects and answers.
//! - [`sink`]: S3 or a local directory for objects, and Firehose for records re-ingested when a
//!   response would be too large.
//! - [`config`]: flags and environment variables, validated into [`Settings`].
//! - [`detection`]: which Sigma rules run, loaded once at start; findings go out through
//!   [`sink::findings`].
//! - [`subscribe`]: puts the subscription filter on the clusters' log groups and checks that
//!   audit logs flow.
//! - [`collect`]: reads the objects back through their S3 notifications on SQS.
//! - [`reconcile`]: proves, hour by hour, that every audit event in CloudWatch reached the
//!   bucket once.
//! - [`telemetry`]: logs and the Lambda's EMF metrics.
//!
//! The binaries in `src/bin/` parse flags and call these.

pub mod collect;
pub mod config;
pub mod detection;
mod fingerprint;
pub mod handler;
pub mod reconcile;
pub mod sink;
pub mod subscribe;
pub mod telemetry;

pub use config::{Settings, SettingsArgs};
pub use handler::{Handler, HandlerError, Response};
pub use sink::ObjectStore;
