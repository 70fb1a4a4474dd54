//! `eks-audit subscribe` over a fleet: every EKS log group of several accounts (listed, or an
//! AWS Organization or OU) and regions, through a role assumed in each account. One account or
//! region failing is reported in its own rows; the others go on. Calls run with bounded
//! concurrency, and throttling is left to the SDK's standard retry mode (configured, not
//! hand-written).

use std::fmt::Write as _;
use std::sync::Arc;

use aws_config::SdkConfig;
use aws_config::retry::RetryConfig;
use aws_config::sts::AssumeRoleProvider;
use aws_sdk_cloudwatchlogs::config::SharedCredentialsProvider;
use tokio::sync::Semaphore;
use tokio::task::JoinSet;

use super::check::{Expected, Problem, human};
use super::plan::FilterSpec;
use super::{CheckOutcome, Clusters, Outcome, SubscribeError, Subscriber};
use crate::sink::describe_sdk_error;

/// The placeholder of `--destination-arn` and `--role-arn` replaced by each target's region: a
/// log group delivers only to a destination of its own region, so a fleet has one per region.
pub const REGION_PLACEHOLDER: &str = "{region}";

/// Which accounts a fleet run covers.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Accounts {
    /// These account ids.
    Listed(Vec<String>),
    /// The active accounts of the organization, or of one OU and the OUs under it.
    Organization {
        /// The OU (`ou-…`) or root (`r-…`) to start from; `None` for the whole organization.
        ou: Option<String>,
    },
}

/// What a fleet run does in each account and region.
#[derive(Debug, Clone)]
pub enum Task {
    /// Put `filter` on every EKS log group (`{region}` replaced); only plan with `dry_run`.
    Subscribe {
        /// The wanted filter.
        filter: FilterSpec,
        /// Report the plan, change nothing.
        dry_run: bool,
    },
    /// Check that audit logs flow.
    Check {
        /// What counts as flowing (`{region}` in the destination replaced).
        expected: Expected,
        /// Now, in epoch milliseconds.
        now_ms: i64,
    },
}

/// How a fleet run reaches its accounts.
#[derive(Debug, Clone)]
pub struct Fleet {
    /// The caller's configuration: Organizations calls and role assumption start from it.
    pub base: SdkConfig,
    /// The role assumed in each account (`arn:<partition>:iam::<account>:role/<name>`).
    pub role_name: String,
    /// The regions to cover in each account.
    pub regions: Vec<String>,
    /// How many account-region pairs are worked on at once.
    pub concurrency: usize,
    /// Attempts per call, the SDK's standard retry mode (backoff with jitter on throttling).
    pub max_attempts: u32,
}

/// One row of the table: an account, a region, a cluster (or `-` when the row is about the
/// whole account and region) and its state.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Row {
    /// The account id.
    pub account: String,
    /// The region.
    pub region: String,
    /// The cluster, or `-`.
    pub cluster: String,
    /// `created`, `unchanged`, `updated`, `no free slot`, `failed: <reason>`, ...; with
    /// `--check` `flowing`, `stale <age>`, `not subscribed`, ...
    pub state: String,
    /// Whether the row is in the wanted state (subscribed, or flowing).
    pub ok: bool,
}

/// Why a fleet run could not start.
#[derive(Debug, thiserror::Error)]
pub enum FleetError {
    /// AWS Organizations could not list the accounts.
    #[error("cannot list the organization's accounts: {0}")]
    Organizations(String),
    /// The listing found no account.
    #[error("no active account found in {0}")]
    NoAccounts(String),
}

impl Fleet {
    /// The account ids `accounts` names, each once, in order (Organizations: by id).
    pub async fn accounts(&self, accounts: &Accounts) -> Result<Vec<String>, FleetError> {
        let ids = match accounts {
            Accounts::Listed(ids) => {
                let mut unique: Vec<String> = Vec::new();
                for id in ids {
                    if !unique.contains(id) {
                        unique.push(id.clone());
                    }
                }
                unique
            }
            Accounts::Organization { ou } => self.organization_accounts(ou.as_deref()).await?,
        };
        if ids.is_empty() {
            let scope = match accounts {
                Accounts::Organization { ou: Some(ou) } => ou.clone(),
                _ => "the organization".to_owned(),
            };
            return Err(FleetError::NoAccounts(scope));
        }
        Ok(ids)
    }

    async fn organization_accounts(&self, ou: Option<&str>) -> Result<Vec<String>, FleetError> {
        let client = aws_sdk_organizations::Client::new(&self.with_retries(self.base.clone()));
        let error = |e: &dyn std::fmt::Display| FleetError::Organizations(e.to_string());
        let mut ids = Vec::new();
        match ou {
            None => {
                let mut pages = client.list_accounts().into_paginator().send();
                while let Some(page) = pages.next().await {
                    let page = page.map_err(|e| error(&describe_sdk_error(&e)))?;
                    ids.extend(active_ids(page.accounts()));
                }
            }
            Some(ou) => {
                // The OU and every OU under it, breadth first.
                let mut parents = vec![ou.to_owned()];
                while let Some(parent) = parents.pop() {
                    let mut pages = client
                        .list_accounts_for_parent()
                        .parent_id(&parent)
                        .into_paginator()
                        .send();
                    while let Some(page) = pages.next().await {
                        let page = page.map_err(|e| error(&describe_sdk_error(&e)))?;
                        ids.extend(active_ids(page.accounts()));
                    }
                    let mut pages = client
                        .list_organizational_units_for_parent()
                        .parent_id(&parent)
                        .into_paginator()
                        .send();
                    while let Some(page) = pages.next().await {
                        let page = page.map_err(|e| error(&describe_sdk_error(&e)))?;
                        parents.extend(
                            page.organizational_units()
                                .iter()
                                .filter_map(|u| u.id().map(str::to_owned)),
                        );
                    }
                }
            }
        }
        ids.sort();
        ids.dedup();
        Ok(ids)
    }

    fn with_retries(&self, config: SdkConfig) -> SdkConfig {
        config
            .into_builder()
            .retry_config(RetryConfig::standard().with_max_attempts(self.max_attempts.max(1)))
            .build()
    }

    /// The configuration for `account` in `region`: the role assumed from the base credentials.
    async fn config_for(&self, account: &str, region: &str) -> SdkConfig {
        let partition = partition_of(region);
        let role = format!("arn:{partition}:iam::{account}:role/{}", self.role_name);
        let base = self.with_retries(self.base.clone());
        let provider = AssumeRoleProvider::builder(role)
            .session_name("eks-audit-subscribe")
            .region(aws_config::Region::new(region.to_owned()))
            .configure(&base)
            .build()
            .await;
        base.into_builder()
            .region(aws_config::Region::new(region.to_owned()))
            .credentials_provider(SharedCredentialsProvider::new(provider))
            .build()
    }

    /// Runs `task` in every account and region, `concurrency` pairs at a time; the rows sorted
    /// by account, region and cluster.
    pub async fn run(&self, accounts: &[String], task: &Task) -> Vec<Row> {
        let permits = Arc::new(Semaphore::new(self.concurrency.max(1)));
        let mut tasks = JoinSet::new();
        for account in accounts {
            for region in &self.regions {
                let (fleet, task, permits) = (self.clone(), task.clone(), permits.clone());
                let (account, region) = (account.clone(), region.clone());
                tasks.spawn(async move {
                    let _permit = permits.acquire_owned().await;
                    fleet.run_one(&account, &region, &task).await
                });
            }
        }
        let mut rows = Vec::new();
        while let Some(done) = tasks.join_next().await {
            match done {
                Ok(found) => rows.extend(found),
                Err(error) => rows.push(Row {
                    account: "-".into(),
                    region: "-".into(),
                    cluster: "-".into(),
                    state: format!("failed: {error}"),
                    ok: false,
                }),
            }
        }
        rows.sort_by(|a, b| {
            (&a.account, &a.region, &a.cluster).cmp(&(&b.account, &b.region, &b.cluster))
        });
        rows
    }

    async fn run_one(&self, account: &str, region: &str, task: &Task) -> Vec<Row> {
        let row = |cluster: &str, state: String, ok: bool| Row {
            account: account.to_owned(),
            region: region.to_owned(),
            cluster: cluster.to_owned(),
            state,
            ok,
        };
        let subscriber = Subscriber::new(&self.config_for(account, region).await);
        let clusters = match subscriber.clusters(&Clusters::All).await {
            Ok(clusters) => clusters,
            // A region without clusters is not a failure: nothing there to subscribe.
            Err(SubscribeError::NoClusters { .. }) => {
                return vec![row("-", "no clusters".into(), true)];
            }
            // Access denied, a role that cannot be assumed, a region not enabled: one row
            // for the account and region, the others go on.
            Err(error) => return vec![row("-", format!("failed: {error}"), false)],
        };
        let mut rows = Vec::new();
        for cluster in &clusters {
            rows.push(match task {
                Task::Subscribe { filter, dry_run } => {
                    let filter = in_region(filter, region);
                    if let Err(error) = subscriber.check_destination(&filter) {
                        rows.push(row(cluster, format!("failed: {error}"), false));
                        continue;
                    }
                    let report = subscriber.subscribe(cluster, &filter, *dry_run).await;
                    let ok = report.is_subscribed();
                    row(cluster, subscribe_state(&report.outcome), ok)
                }
                Task::Check { expected, now_ms } => {
                    let mut expected = expected.clone();
                    expected.destination_arn = expected
                        .destination_arn
                        .map(|arn| arn.replace(REGION_PLACEHOLDER, region));
                    let report = subscriber.check(cluster, &expected, *now_ms).await;
                    let ok = report.is_flowing();
                    row(cluster, check_state(&report.outcome), ok)
                }
            });
        }
        rows
    }
}

/// `filter` with `{region}` replaced in its destination and role.
fn in_region(filter: &FilterSpec, region: &str) -> FilterSpec {
    FilterSpec {
        destination_arn: filter.destination_arn.replace(REGION_PLACEHOLDER, region),
        role_arn: filter
            .role_arn
            .as_ref()
            .map(|r| r.replace(REGION_PLACEHOLDER, region)),
        ..filter.clone()
    }
}

/// The ARN partition of a region's resources.
fn partition_of(region: &str) -> &'static str {
    if region.starts_with("cn-") {
        "aws-cn"
    } else if region.starts_with("us-gov-") {
        "aws-us-gov"
    } else {
        "aws"
    }
}

/// The state a subscribe row shows.
pub fn subscribe_state(outcome: &Outcome) -> String {
    match outcome {
        Outcome::Planned { plan, dry_run } => {
            let state = plan.action.state();
            match (dry_run, plan.action.puts()) {
                (true, true) => format!("would be {state}"),
                _ => state.to_owned(),
            }
        }
        Outcome::LogGroupNotFound => "log group not found".to_owned(),
        Outcome::Failed(error) => format!("failed: {error}"),
    }
}

/// The state a check row shows: `flowing`, `not subscribed`, `stale <age>`, `no audit events`,
/// `log group not found` or `failed: <reason>`.
pub fn check_state(outcome: &CheckOutcome) -> String {
    match outcome {
        CheckOutcome::Assessed(health) if health.is_flowing() => "flowing".to_owned(),
        CheckOutcome::Assessed(health) => {
            let mut states = Vec::new();
            for problem in &health.problems {
                states.push(match problem {
                    Problem::FilterMissing { .. } | Problem::FilterElsewhere { .. } => {
                        "not subscribed".to_owned()
                    }
                    Problem::Stale { age, .. } => format!("stale {}", human(*age)),
                    Problem::NoAuditStream | Problem::NoAuditEvent => "no audit events".to_owned(),
                });
            }
            states.join(", ")
        }
        CheckOutcome::LogGroupNotFound => "log group not found".to_owned(),
        CheckOutcome::Failed(error) => format!("failed: {error}"),
    }
}

/// The rows as an aligned table with a header.
pub fn table(rows: &[Row]) -> String {
    let header = ["ACCOUNT", "REGION", "CLUSTER", "STATE"];
    let width =
        |f: fn(&Row) -> &str, h: &str| rows.iter().map(|r| f(r).len()).fold(h.len(), usize::max);
    let widths = [
        width(|r| &r.account, header[0]),
        width(|r| &r.region, header[1]),
        width(|r| &r.cluster, header[2]),
    ];
    let mut out = String::new();
    let mut line = |cells: [&str; 4]| {
        let _ = writeln!(
            out,
            "{:<a$}  {:<b$}  {:<c$}  {}",
            cells[0],
            cells[1],
            cells[2],
            cells[3].replace('\n', " "),
            a = widths[0],
            b = widths[1],
            c = widths[2]
        );
    };
    line(header);
    for row in rows {
        line([&row.account, &row.region, &row.cluster, &row.state]);
    }
    out
}

/// A sensible default for `--max-attempts`: the SDK's standard mode default is 3, raised for
/// fleets, where many accounts share one caller's Organizations and STS quotas.
pub const DEFAULT_MAX_ATTEMPTS: u32 = 5;
/// The default `--concurrency`: account-region pairs worked on at once.
pub const DEFAULT_CONCURRENCY: u16 = 8;

/// The ids of the active accounts among `accounts`: suspended ones have no clusters to subscribe.
fn active_ids(
    accounts: &[aws_sdk_organizations::types::Account],
) -> impl Iterator<Item = String> + '_ {
    use aws_sdk_organizations::types::AccountState;
    accounts
        .iter()
        .filter(|a| a.state() == Some(&AccountState::Active))
        .filter_map(|a| a.id().map(str::to_owned))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn region_placeholder_and_partition() {
        let filter = FilterSpec {
            name: "f".into(),
            destination_arn: "arn:aws:logs:{region}:999999999999:destination:central".into(),
            role_arn: None,
            pattern: String::new(),
        };
        assert_eq!(
            in_region(&filter, "eu-west-1").destination_arn,
            "arn:aws:logs:eu-west-1:999999999999:destination:central"
        );
        assert_eq!(partition_of("cn-north-1"), "aws-cn");
        assert_eq!(partition_of("us-gov-west-1"), "aws-us-gov");
        assert_eq!(partition_of("eu-west-1"), "aws");
    }

    #[test]
    fn check_rows_name_each_problem_in_the_issue_s_words() {
        use super::super::check::Health;
        use std::time::Duration;
        let health = |problems: Vec<Problem>| {
            CheckOutcome::Assessed(Health {
                latest: None,
                filter: None,
                problems,
            })
        };
        assert_eq!(check_state(&health(Vec::new())), "flowing");
        let stale = Problem::Stale {
            age: Duration::from_secs(2 * 3600),
            max_age: Duration::from_secs(15 * 60),
        };
        assert_eq!(check_state(&health(vec![stale])), "stale 2h");
        let missing = Problem::FilterMissing { name: "f".into() };
        assert_eq!(check_state(&health(vec![missing])), "not subscribed");
        assert_eq!(
            check_state(&CheckOutcome::LogGroupNotFound),
            "log group not found"
        );
    }

    #[test]
    fn table_aligns_columns() {
        let rows = [Row {
            account: "111111111111".into(),
            region: "eu-west-1".into(),
            cluster: "prod".into(),
            state: "created".into(),
            ok: true,
        }];
        assert_eq!(
            table(&rows),
            "ACCOUNT       REGION     CLUSTER  STATE\n111111111111  eu-west-1  prod     created\n"
        );
    }
}
