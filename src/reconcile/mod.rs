//! `eks-audit reconcile`: proof, hour by hour, that every audit event of a cluster's CloudWatch
//! log group reached the bucket, as an event line or in quarantine, and only once.
//!
//! For each UTC hour of the window:
//!
//! - **In CloudWatch**: the events of the cluster's audit streams (`kube-apiserver-audit-*`)
//!   read with `FilterLogEvents`, each decided by the core exactly as the forwarder decides it
//!   under the same settings: dropped (stage and URI filter), delivered in the hour of its audit
//!   time, or quarantined in the hour of its CloudWatch timestamp.
//! - **In the bucket**: the lines of the direct-mode event objects of the hour, of the
//!   Firehose objects of the neighbouring arrival hours (each line placed by its own time), and
//!   of the quarantine objects of the hour; flat or OCSF, told apart per line.
//!
//! Events are compared by key ([`events`], [`ledger`]): missing, duplicated and unexpected per
//! hour. Where the objects' `x-amz-meta-events` counts already equal CloudWatch's, the hour's
//! objects are not downloaded, unless `--verify`.
//!
//! [`window`], [`events`] and [`ledger`] are pure; [`aws`] makes the calls.

pub mod aws;
pub mod events;
pub mod ledger;
pub mod window;

pub use aws::{ReconcileError, Reconciler, Request};
pub use ledger::{Checked, Report, Row};
pub use window::{Window, parse_when};
