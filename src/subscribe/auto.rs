//! The auto-subscriber: the Lambda subscribes a new cluster's log group when EventBridge
//! delivers CloudTrail's `CreateLogGroup` for `/aws/eks/<cluster>/cluster`, and every EKS log
//! group of its region on a schedule (drift repair). Both run [`Subscriber::subscribe`], the code
//! behind `eks-audit subscribe`: there is one implementation of "subscribe this log group".
//!
//! - [`trigger`]: which EventBridge event this is (pure).
//! - [`AutoSubscriber`]: the destination from the environment, and the run.

use serde::{Deserialize, Serialize};

use super::plan::{DEFAULT_FILTER_NAME, FilterSpec};
use super::{Clusters, Outcome, SubscribeError, Subscriber};
use eks_audit_core::eks::cluster_from_log_group;
use eks_audit_core::filter::DEFAULT_SUBSCRIPTION_PATTERN;

/// `detail-type` of a CloudTrail management event delivered by EventBridge.
pub const CLOUDTRAIL_DETAIL_TYPE: &str = "AWS API Call via CloudTrail";
/// `detail-type` of an EventBridge schedule.
pub const SCHEDULED_DETAIL_TYPE: &str = "Scheduled Event";

/// Where the auto-subscriber's filters deliver: a CloudWatch Logs destination of the central
/// account (fleets), or a delivery stream or function of the same account.
pub const DESTINATION_ARN_VAR: &str = "EKS_AUDIT_SUBSCRIBE_DESTINATION_ARN";
/// The role CloudWatch Logs assumes to deliver (Firehose and Kinesis destinations only).
pub const ROLE_ARN_VAR: &str = "EKS_AUDIT_SUBSCRIBE_ROLE_ARN";
/// The filter's name, default `eks-audit-forwarder` as for `eks-audit subscribe`.
pub const FILTER_NAME_VAR: &str = "EKS_AUDIT_SUBSCRIBE_FILTER_NAME";
/// The filter's pattern, default contract §3's.
pub const FILTER_PATTERN_VAR: &str = "EKS_AUDIT_SUBSCRIBE_FILTER_PATTERN";

/// What an EventBridge event asks of the auto-subscriber.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Trigger {
    /// CloudTrail's `CreateLogGroup` for this EKS cluster's log group: subscribe it.
    ClusterCreated(String),
    /// `CreateLogGroup` of a group that is not `/aws/eks/<cluster>/cluster` (the rule matched
    /// more than it should): nothing to do.
    OtherLogGroup(String),
    /// A scheduled event: subscribe every EKS log group of the region again (drift repair).
    Sweep,
}

/// The parts of an EventBridge event the auto-subscriber reads.
#[derive(Deserialize)]
struct EventBridgeEvent {
    #[serde(rename = "detail-type")]
    detail_type: String,
    #[serde(default)]
    detail: Option<Detail>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct Detail {
    #[serde(default)]
    event_name: Option<String>,
    #[serde(default)]
    request_parameters: Option<RequestParameters>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct RequestParameters {
    #[serde(default)]
    log_group_name: Option<String>,
}

/// The trigger an event holds: `None` when it is not an EventBridge event (no `detail-type`),
/// `Some(Err(reason))` when it is one the auto-subscriber does not handle.
pub fn trigger(event: &str) -> Option<Result<Trigger, String>> {
    let event: EventBridgeEvent = serde_json::from_str(event).ok()?;
    Some(match event.detail_type.as_str() {
        SCHEDULED_DETAIL_TYPE => Ok(Trigger::Sweep),
        CLOUDTRAIL_DETAIL_TYPE => {
            let detail = event.detail.unwrap_or(Detail {
                event_name: None,
                request_parameters: None,
            });
            match (detail.event_name.as_deref(), detail.request_parameters) {
                (
                    Some("CreateLogGroup"),
                    Some(RequestParameters {
                        log_group_name: Some(group),
                    }),
                ) => Ok(match cluster_from_log_group(&group) {
                    Some(cluster) => Trigger::ClusterCreated(cluster.to_owned()),
                    None => Trigger::OtherLogGroup(group),
                }),
                (name, _) => Err(format!(
                    "CloudTrail event {} is not a CreateLogGroup with requestParameters.logGroupName",
                    name.unwrap_or("(no eventName)")
                )),
            }
        }
        other => Err(format!(
            "EventBridge events of detail-type {other:?} are not handled: expected \
             {CLOUDTRAIL_DETAIL_TYPE:?} (CreateLogGroup) or {SCHEDULED_DETAIL_TYPE:?}"
        )),
    })
}

/// What the auto-subscriber did to one cluster: a row of its answer.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct AutoRow {
    /// The cluster.
    pub cluster: String,
    /// `created`, `unchanged`, `updated`, `no free slot`, `already delivered`,
    /// `log group not found` or `failed: <reason>`.
    pub state: String,
    /// The full report line, as `eks-audit subscribe` prints it.
    pub detail: String,
}

/// The auto-subscriber's answer to one event.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct AutoSummary {
    /// `created` (a `CreateLogGroup` event), `sweep`, or `ignored`.
    pub trigger: &'static str,
    /// One row per cluster looked at.
    pub clusters: Vec<AutoRow>,
}

/// Why an auto-subscribe run fails, so that Lambda retries the event (EventBridge invokes
/// asynchronously: two retries, then the event's failure destination).
#[derive(Debug, thiserror::Error)]
pub enum AutoError {
    /// The event is EventBridge's but not one handled here.
    #[error("{0}")]
    Unsupported(String),
    /// The region's log groups could not be listed (sweep).
    #[error(transparent)]
    List(#[from] SubscribeError),
    /// A cluster could not be subscribed for a reason a retry may cure: a failed call, or a
    /// log group CloudTrail announced that CloudWatch Logs does not show yet.
    #[error("not subscribed, to be retried: {0}")]
    Retry(String),
}

/// The auto-subscriber: a [`Subscriber`] and the filter it puts.
#[derive(Debug, Clone)]
pub struct AutoSubscriber {
    subscriber: Subscriber,
    filter: FilterSpec,
}

impl AutoSubscriber {
    /// An auto-subscriber putting `filter` through `subscriber`.
    pub fn new(subscriber: Subscriber, filter: FilterSpec) -> AutoSubscriber {
        AutoSubscriber { subscriber, filter }
    }

    /// The filter of the `EKS_AUDIT_SUBSCRIBE_*` variables; `None` without a destination (the
    /// function then forwards only). Empty variables count as unset.
    pub fn filter_from_env() -> Option<FilterSpec> {
        let var = |name: &str| std::env::var(name).ok().filter(|v| !v.is_empty());
        Some(FilterSpec {
            destination_arn: var(DESTINATION_ARN_VAR)?,
            role_arn: var(ROLE_ARN_VAR),
            name: var(FILTER_NAME_VAR).unwrap_or_else(|| DEFAULT_FILTER_NAME.to_owned()),
            pattern: var(FILTER_PATTERN_VAR)
                .unwrap_or_else(|| DEFAULT_SUBSCRIPTION_PATTERN.to_owned()),
        })
    }

    /// The filter it puts.
    pub fn filter(&self) -> &FilterSpec {
        &self.filter
    }

    /// Runs `trigger`. Fails when a cluster was not subscribed for a reason a retry may cure;
    /// `no free slot` is reported, not failed, since retrying cannot free a slot.
    pub async fn run(&self, trigger: Trigger) -> Result<AutoSummary, AutoError> {
        let (name, clusters) = match trigger {
            Trigger::OtherLogGroup(group) => {
                tracing::info!(%group, "CreateLogGroup of a log group that is not an EKS cluster's: ignored");
                return Ok(AutoSummary {
                    trigger: "ignored",
                    clusters: Vec::new(),
                });
            }
            Trigger::ClusterCreated(cluster) => ("created", vec![cluster]),
            Trigger::Sweep => match self.subscriber.clusters(&Clusters::All).await {
                Ok(clusters) => ("sweep", clusters),
                // A member account without clusters in this region: nothing to repair.
                Err(SubscribeError::NoClusters { .. }) => ("sweep", Vec::new()),
                Err(error) => return Err(error.into()),
            },
        };
        let mut rows = Vec::new();
        let mut retry = Vec::new();
        for cluster in &clusters {
            let report = self
                .subscriber
                .subscribe(cluster, &self.filter, false)
                .await;
            let detail = report.to_string();
            let state = match &report.outcome {
                Outcome::Planned { plan, .. } => plan.action.state().to_owned(),
                Outcome::LogGroupNotFound => "log group not found".to_owned(),
                Outcome::Failed(error) => format!("failed: {error}"),
            };
            if matches!(
                report.outcome,
                Outcome::Failed(_) | Outcome::LogGroupNotFound
            ) {
                retry.push(detail.clone());
            }
            tracing::info!(%cluster, %state, "auto-subscribe");
            rows.push(AutoRow {
                cluster: cluster.clone(),
                state,
                detail,
            });
        }
        if !retry.is_empty() {
            return Err(AutoError::Retry(retry.join("; ")));
        }
        Ok(AutoSummary {
            trigger: name,
            clusters: rows,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn cloudtrail(event_name: &str, group: &str) -> String {
        json!({"version":"0","detail-type":CLOUDTRAIL_DETAIL_TYPE,"source":"aws.logs",
            "detail":{"eventSource":"logs.amazonaws.com","eventName":event_name,
                "requestParameters":{"logGroupName":group}}})
        .to_string()
    }

    #[test]
    fn triggers_are_told_apart_by_detail_type_and_event_name() {
        assert_eq!(
            trigger(&cloudtrail("CreateLogGroup", "/aws/eks/prod/cluster")),
            Some(Ok(Trigger::ClusterCreated("prod".into())))
        );
        assert_eq!(
            trigger(&cloudtrail("CreateLogGroup", "/aws/lambda/f")),
            Some(Ok(Trigger::OtherLogGroup("/aws/lambda/f".into())))
        );
        assert!(matches!(
            trigger(&cloudtrail("DeleteLogGroup", "/aws/eks/prod/cluster")),
            Some(Err(reason)) if reason.contains("DeleteLogGroup")
        ));
        let scheduled =
            json!({"detail-type":SCHEDULED_DETAIL_TYPE,"source":"aws.events","detail":{}});
        assert_eq!(trigger(&scheduled.to_string()), Some(Ok(Trigger::Sweep)));
        assert!(matches!(
            trigger(
                &json!({"detail-type":"EC2 Instance State-change Notification","detail":{}})
                    .to_string()
            ),
            Some(Err(_))
        ));
        // Firehose and awslogs events are not EventBridge's.
        assert_eq!(trigger(r#"{"records":[]}"#), None);
        assert_eq!(trigger(r#"{"awslogs":{"data":""}}"#), None);
    }
}
