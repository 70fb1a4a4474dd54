//! `eks-audit subscribe`: puts the forwarder's subscription filter on EKS control-plane log
//! groups (`/aws/eks/<cluster>/cluster`), idempotently, or checks that audit logs flow.
//!
//! - [`plan`]: what to do to one log group, from the filters already on it (pure).
//! - [`check`]: whether audit logs flow, from the log group's streams and filters (pure).
//! - [`logs`]: the CloudWatch Logs calls.
//! - [`fleet`]: the same over several accounts (listed or an Organization) and regions.
//! - [`auto`]: the same subscription run by the Lambda on CloudTrail's `CreateLogGroup` and on
//!   a schedule.
//!
//! [`Subscriber`] ties them together for one cluster at a time and returns a report per cluster;
//! one cluster failing never stops the others.

pub mod auto;
pub mod check;
pub mod fleet;
pub mod logs;
pub mod plan;

use std::fmt;

use check::{Expected, Health, Observed};
use eks_audit_core::eks::log_group_of;
use logs::{CloudWatchLogs, LogsError};
use plan::{Action, DestinationError, FilterSpec, MAX_FILTERS_PER_GROUP, Plan};

/// A cluster named on the command line: an EKS cluster name, or its log group.
pub fn parse_cluster(arg: &str) -> Result<String, String> {
    let name = eks_audit_core::eks::cluster_from_log_group(arg).unwrap_or(arg);
    // EKS cluster names: 1-100 characters, a letter or digit first, then letters, digits, - and _.
    let valid = name.len() <= 100
        && name.starts_with(|c: char| c.is_ascii_alphanumeric())
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_');
    if valid {
        Ok(name.to_owned())
    } else {
        Err(format!(
            "{arg:?} is neither an EKS cluster name nor a /aws/eks/<cluster>/cluster log group"
        ))
    }
}

/// The command that turns on a cluster's audit logs (other log types keep their setting).
pub fn enable_audit_logging_command(cluster: &str, region: Option<&str>) -> String {
    let region = region.map(|r| format!(" --region {r}")).unwrap_or_default();
    format!(
        r#"aws eks update-cluster-config{region} --name {cluster} --logging '{{"clusterLogging":[{{"types":["audit"],"enabled":true}}]}}'"#
    )
}

/// Which clusters a run covers.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Clusters {
    /// These clusters (names given on the command line).
    Named(Vec<String>),
    /// Every `/aws/eks/<cluster>/cluster` log group of the region.
    All,
}

/// What stops a run before any cluster is looked at.
#[derive(Debug, thiserror::Error)]
pub enum SubscribeError {
    /// The destination is one AWS would refuse (checked before any call).
    #[error(transparent)]
    Destination(#[from] DestinationError),
    /// The log groups of the region could not be listed.
    #[error(transparent)]
    Logs(#[from] LogsError),
    /// `--all` found no EKS control-plane log group in the region.
    #[error(
        "no log group matches /aws/eks/<cluster>/cluster in region {region}: is it the clusters' region, and is their audit logging on?"
    )]
    NoClusters {
        /// The region searched, or `(no region configured)`.
        region: String,
    },
}

/// What happened to one cluster's log group.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    /// The plan, carried out unless `dry_run`.
    Planned {
        /// What to do to the log group.
        plan: Plan,
        /// Whether the plan was only reported, not carried out (`--dry-run`).
        dry_run: bool,
    },
    /// The cluster has no `/aws/eks/<cluster>/cluster` log group: audit logging is off, or the
    /// cluster does not exist in this region.
    LogGroupNotFound,
    /// A CloudWatch Logs call failed; this cluster is not subscribed, the others go on.
    Failed(LogsError),
}

/// One line of `subscribe`'s output.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SubscribeReport {
    /// The cluster's name.
    pub cluster: String,
    /// The filter wanted on its log group.
    pub filter: FilterSpec,
    /// The region of the log group, for the command that enables audit logging; `None` when not
    /// configured.
    pub region: Option<String>,
    /// What happened.
    pub outcome: Outcome,
}

impl SubscribeReport {
    /// Whether the cluster's log group delivers to the destination (or would, in a dry run).
    pub fn is_subscribed(&self) -> bool {
        matches!(&self.outcome, Outcome::Planned { plan, .. } if plan.action.is_subscribed())
    }
}

impl fmt::Display for SubscribeReport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let (cluster, filter) = (&self.cluster, &self.filter);
        let target = format!("filter {} -> {}", filter.name, filter.destination_arn);
        let (plan, dry_run) = match &self.outcome {
            Outcome::Planned { plan, dry_run } => (plan, *dry_run),
            Outcome::LogGroupNotFound => {
                let enable = enable_audit_logging_command(cluster, self.region.as_deref());
                return write!(
                    f,
                    "{cluster}: log group {} not found (enable audit logging: {enable})",
                    log_group_of(cluster)
                );
            }
            Outcome::Failed(error) => return write!(f, "{cluster}: error: {error}"),
        };
        let verb = |done: &str, planned: &str| {
            if dry_run {
                planned.to_owned()
            } else {
                done.to_owned()
            }
        };
        write!(f, "{cluster}: ")?;
        match &plan.action {
            Action::Unchanged => write!(f, "unchanged ({target})")?,
            Action::Create => write!(f, "{} {target}", verb("created", "would create"))?,
            Action::Update { changed } => {
                let changed: Vec<String> = changed.iter().map(ToString::to_string).collect();
                write!(
                    f,
                    "{} {target} ({} changed)",
                    verb("updated", "would update"),
                    changed.join(", ")
                )?;
            }
            Action::AlreadyDelivered { by } => write!(
                f,
                "already delivered to {} by filter {by}; {} not added (events would arrive twice)",
                filter.destination_arn, filter.name
            )?,
            Action::NoFreeSlot => {
                return write!(
                    f,
                    "no free slot: filters {} use the log group's {MAX_FILTERS_PER_GROUP} subscription filters; not subscribed (remove one, or pass its name as --filter-name to replace it)",
                    describe(&plan.others)
                );
            }
        }
        let kept: Vec<&FilterSpec> = plan
            .others
            .iter()
            .filter(|o| !matches!(&plan.action, Action::AlreadyDelivered { by } if *by == o.name))
            .collect();
        if !kept.is_empty() {
            write!(f, "; other filter kept: {}", describe(kept))?;
        }
        Ok(())
    }
}

fn describe<'a>(filters: impl IntoIterator<Item = &'a FilterSpec>) -> String {
    filters
        .into_iter()
        .map(|f| format!("{} -> {}", f.name, f.destination_arn))
        .collect::<Vec<_>>()
        .join(", ")
}

/// What `--check` found for one cluster.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CheckOutcome {
    /// The log group was found and looked at: whether audit logs flow, and why not.
    Assessed(Health),
    /// The cluster has no `/aws/eks/<cluster>/cluster` log group: audit logging is off, or the
    /// cluster does not exist in this region.
    LogGroupNotFound,
    /// A CloudWatch Logs call failed; the other clusters are still checked.
    Failed(LogsError),
}

/// One line of `subscribe --check`'s output.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CheckReport {
    /// The cluster's name.
    pub cluster: String,
    /// The region of the log group, for the command that enables audit logging; `None` when not
    /// configured.
    pub region: Option<String>,
    /// What the check found.
    pub outcome: CheckOutcome,
}

impl CheckReport {
    /// Whether the cluster's audit logs flow.
    pub fn is_flowing(&self) -> bool {
        matches!(&self.outcome, CheckOutcome::Assessed(health) if health.is_flowing())
    }
}

impl fmt::Display for CheckReport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let cluster = &self.cluster;
        match &self.outcome {
            CheckOutcome::Assessed(health) => write!(f, "{cluster}: {health}"),
            CheckOutcome::LogGroupNotFound => write!(
                f,
                "{cluster}: NOT flowing: log group {} not found (enable audit logging: {})",
                log_group_of(cluster),
                enable_audit_logging_command(cluster, self.region.as_deref())
            ),
            CheckOutcome::Failed(error) => write!(f, "{cluster}: error: {error}"),
        }
    }
}

/// Subscribes or checks clusters, one at a time.
#[derive(Debug, Clone)]
pub struct Subscriber {
    logs: CloudWatchLogs,
    region: Option<String>,
}

impl Subscriber {
    /// A subscriber for the region of `aws` (the standard SDK configuration).
    pub fn new(aws: &aws_config::SdkConfig) -> Subscriber {
        Subscriber {
            logs: CloudWatchLogs::new(aws_sdk_cloudwatchlogs::Client::new(aws)),
            region: aws.region().map(ToString::to_string),
        }
    }

    /// The region of the log groups, from the AWS configuration; `None` when none is configured.
    pub fn region(&self) -> Option<&str> {
        self.region.as_deref()
    }

    /// The cluster names a run covers: the named ones (each once, in order), or those of every
    /// EKS control-plane log group of the region (at least one).
    pub async fn clusters(&self, which: &Clusters) -> Result<Vec<String>, SubscribeError> {
        match which {
            Clusters::Named(names) => {
                let mut unique = Vec::new();
                for name in names {
                    if !unique.contains(name) {
                        unique.push(name.clone());
                    }
                }
                Ok(unique)
            }
            Clusters::All => {
                let clusters = self.logs.eks_clusters().await?;
                if clusters.is_empty() {
                    return Err(SubscribeError::NoClusters {
                        region: self
                            .region
                            .clone()
                            .unwrap_or_else(|| "(no region configured)".to_owned()),
                    });
                }
                Ok(clusters)
            }
        }
    }

    /// Refuses a destination AWS would refuse less clearly (see [`plan::check_destination`]).
    pub fn check_destination(&self, filter: &FilterSpec) -> Result<(), DestinationError> {
        plan::check_destination(
            &filter.destination_arn,
            filter.role_arn.as_deref(),
            self.region.as_deref(),
        )
    }

    /// Puts `filter` on the cluster's log group as [`plan::plan`] decides; with `dry_run`
    /// only decides.
    pub async fn subscribe(
        &self,
        cluster: &str,
        filter: &FilterSpec,
        dry_run: bool,
    ) -> SubscribeReport {
        let outcome = self
            .subscribe_group(&log_group_of(cluster), filter, dry_run)
            .await;
        SubscribeReport {
            cluster: cluster.to_owned(),
            filter: filter.clone(),
            region: self.region.clone(),
            outcome,
        }
    }

    async fn subscribe_group(&self, group: &str, filter: &FilterSpec, dry_run: bool) -> Outcome {
        let existing = match self.logs.subscription_filters(group).await {
            Ok(Some(existing)) => existing,
            Ok(None) => return Outcome::LogGroupNotFound,
            Err(error) => return Outcome::Failed(error),
        };
        let plan = plan::plan(&existing, filter);
        if plan.action.puts()
            && !dry_run
            && let Err(error) = self.logs.put_subscription_filter(group, filter).await
        {
            return Outcome::Failed(error);
        }
        Outcome::Planned { plan, dry_run }
    }

    /// Whether the cluster's audit logs flow, at `now_ms` (epoch milliseconds).
    pub async fn check(&self, cluster: &str, expected: &Expected, now_ms: i64) -> CheckReport {
        let group = log_group_of(cluster);
        let observed = async {
            let Some(audit_streams) = self.logs.audit_streams(&group).await? else {
                return Ok(None);
            };
            let Some(filters) = self.logs.subscription_filters(&group).await? else {
                return Ok(None);
            };
            Ok(Some(Observed {
                audit_streams,
                filters,
            }))
        };
        let outcome = match observed.await {
            Ok(Some(observed)) => {
                CheckOutcome::Assessed(check::assess(&observed, expected, now_ms))
            }
            Ok(None) => CheckOutcome::LogGroupNotFound,
            Err(error) => CheckOutcome::Failed(error),
        };
        CheckReport {
            cluster: cluster.to_owned(),
            region: self.region.clone(),
            outcome,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn report(outcome: Outcome) -> SubscribeReport {
        SubscribeReport {
            cluster: "prod".to_owned(),
            filter: FilterSpec {
                name: "eks-audit-forwarder".to_owned(),
                destination_arn: "arn:aws:lambda:us-east-1:111122223333:function:fwd".to_owned(),
                role_arn: None,
                pattern: String::new(),
            },
            region: Some("us-east-1".to_owned()),
            outcome,
        }
    }

    fn other(name: &str) -> FilterSpec {
        FilterSpec {
            name: name.to_owned(),
            destination_arn: format!("arn:aws:lambda:us-east-1:1:function:{name}"),
            role_arn: None,
            pattern: String::new(),
        }
    }

    fn planned(action: Action, others: Vec<FilterSpec>, dry_run: bool) -> SubscribeReport {
        report(Outcome::Planned {
            plan: Plan { action, others },
            dry_run,
        })
    }

    #[test]
    fn cluster_names_and_log_groups_are_accepted() {
        assert_eq!(parse_cluster("prod-east_1"), Ok("prod-east_1".to_owned()));
        assert_eq!(
            parse_cluster("/aws/eks/prod/cluster"),
            Ok("prod".to_owned())
        );
        for bad in [
            "",
            "-prod",
            "a/b",
            "/aws/eks/a/b/cluster",
            "prod east",
            &"x".repeat(101),
        ] {
            assert!(parse_cluster(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn each_action_is_one_line_naming_the_cluster() {
        let fwd =
            "filter eks-audit-forwarder -> arn:aws:lambda:us-east-1:111122223333:function:fwd";
        assert_eq!(
            planned(Action::Create, vec![], false).to_string(),
            format!("prod: created {fwd}")
        );
        assert_eq!(
            planned(Action::Create, vec![], true).to_string(),
            format!("prod: would create {fwd}")
        );
        assert_eq!(
            planned(Action::Unchanged, vec![], false).to_string(),
            format!("prod: unchanged ({fwd})")
        );
        let update = Action::Update {
            changed: vec![plan::Field::Pattern, plan::Field::Role],
        };
        assert_eq!(
            planned(update, vec![], true).to_string(),
            format!("prod: would update {fwd} (filter pattern, role changed)")
        );
        for report in [
            planned(Action::Create, vec![], false),
            planned(Action::NoFreeSlot, vec![other("a"), other("b")], false),
        ] {
            assert_eq!(report.to_string().lines().count(), 1);
        }
    }

    #[test]
    fn other_filters_are_reported_as_kept() {
        let line = planned(Action::Create, vec![other("splunk")], false).to_string();
        assert!(
            line.ends_with(
                "; other filter kept: splunk -> arn:aws:lambda:us-east-1:1:function:splunk"
            ),
            "{line}"
        );
    }

    #[test]
    fn no_free_slot_names_both_filters_and_is_not_subscribed() {
        let report = planned(Action::NoFreeSlot, vec![other("a"), other("b")], false);
        let line = report.to_string();
        assert!(
            line.starts_with(
                "prod: no free slot: filters a -> arn:aws:lambda:us-east-1:1:function:a, b -> "
            ),
            "{line}"
        );
        assert!(line.contains("not subscribed"), "{line}");
        assert!(!report.is_subscribed());
    }

    #[test]
    fn a_filter_already_delivering_there_is_named_once() {
        let report = planned(
            Action::AlreadyDelivered {
                by: "stack".to_owned(),
            },
            vec![other("stack")],
            false,
        );
        let line = report.to_string();
        assert!(
            line.contains("by filter stack; eks-audit-forwarder not added"),
            "{line}"
        );
        assert!(!line.contains("kept"), "{line}");
        assert!(report.is_subscribed());
    }

    #[test]
    fn a_missing_log_group_says_how_to_enable_audit_logging() {
        let report = report(Outcome::LogGroupNotFound);
        assert!(!report.is_subscribed());
        assert_eq!(
            report.to_string(),
            r#"prod: log group /aws/eks/prod/cluster not found (enable audit logging: aws eks update-cluster-config --region us-east-1 --name prod --logging '{"clusterLogging":[{"types":["audit"],"enabled":true}]}')"#
        );
    }
}
