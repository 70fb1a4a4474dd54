//! The CloudWatch Logs calls of `eks-audit subscribe`, with `aws-sdk-cloudwatchlogs`: what is
//! on a log group in, the one change out. No decisions here (see [`super::plan`] and
//! [`super::check`]).

use aws_sdk_cloudwatchlogs::Client;
use aws_sdk_cloudwatchlogs::types::SubscriptionFilter;

use super::check::StreamActivity;
use super::plan::FilterSpec;
use crate::sink::describe_sdk_error;
use eks_audit_core::eks::{AUDIT_STREAM_PREFIX, cluster_from_log_group};

/// The prefix of every EKS control-plane log group, `/aws/eks/<cluster>/cluster`.
pub const EKS_LOG_GROUP_PREFIX: &str = "/aws/eks/";

/// A CloudWatch Logs call that failed, with the log group it was about.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum LogsError {
    /// `DescribeLogGroups` failed; says why.
    #[error("cannot list the log groups under {EKS_LOG_GROUP_PREFIX}: {0}")]
    ListGroups(String),
    /// `DescribeSubscriptionFilters` failed on a log group.
    #[error("cannot describe the subscription filters of {group}: {message}")]
    DescribeFilters {
        /// The log group.
        group: String,
        /// The SDK error, on one line.
        message: String,
    },
    /// `PutSubscriptionFilter` failed on a log group.
    #[error("cannot put subscription filter {filter} on {group}: {message}")]
    PutFilter {
        /// The log group.
        group: String,
        /// The filter's name.
        filter: String,
        /// The SDK error, on one line.
        message: String,
    },
    /// `DescribeLogStreams` failed on a log group.
    #[error("cannot describe the log streams of {group}: {message}")]
    DescribeStreams {
        /// The log group.
        group: String,
        /// The SDK error, on one line.
        message: String,
    },
}

#[derive(Debug, Clone)]
pub(crate) struct CloudWatchLogs {
    client: Client,
}

impl CloudWatchLogs {
    pub(crate) fn new(client: Client) -> CloudWatchLogs {
        CloudWatchLogs { client }
    }

    /// The clusters of every log group named `/aws/eks/<cluster>/cluster` in the client's
    /// region, in name order. Other groups under `/aws/eks/` are left out.
    /// <https://docs.aws.amazon.com/AmazonCloudWatchLogs/latest/APIReference/API_DescribeLogGroups.html>
    pub async fn eks_clusters(&self) -> Result<Vec<String>, LogsError> {
        let mut pages = self
            .client
            .describe_log_groups()
            .log_group_name_prefix(EKS_LOG_GROUP_PREFIX)
            .into_paginator()
            .send();
        let mut clusters = Vec::new();
        while let Some(page) = pages.next().await {
            let page = page.map_err(|e| LogsError::ListGroups(describe_sdk_error(&e)))?;
            let names = page.log_groups().iter().filter_map(|g| g.log_group_name());
            clusters.extend(names.filter_map(cluster_from_log_group).map(str::to_owned));
        }
        clusters.sort();
        clusters.dedup();
        Ok(clusters)
    }

    /// The subscription filters on `group`; `None` when the log group does not exist.
    /// <https://docs.aws.amazon.com/AmazonCloudWatchLogs/latest/APIReference/API_DescribeSubscriptionFilters.html>
    pub async fn subscription_filters(
        &self,
        group: &str,
    ) -> Result<Option<Vec<FilterSpec>>, LogsError> {
        let mut pages = self
            .client
            .describe_subscription_filters()
            .log_group_name(group)
            .into_paginator()
            .send();
        let mut filters = Vec::new();
        while let Some(page) = pages.next().await {
            match page {
                Ok(page) => filters.extend(page.subscription_filters().iter().map(filter_spec)),
                Err(e)
                    if e.as_service_error()
                        .is_some_and(|e| e.is_resource_not_found_exception()) =>
                {
                    return Ok(None);
                }
                Err(e) => {
                    return Err(LogsError::DescribeFilters {
                        group: group.to_owned(),
                        message: describe_sdk_error(&e),
                    });
                }
            }
        }
        Ok(Some(filters))
    }

    /// Creates `filter` on `group`, or replaces the filter of the same name.
    /// <https://docs.aws.amazon.com/AmazonCloudWatchLogs/latest/APIReference/API_PutSubscriptionFilter.html>
    pub async fn put_subscription_filter(
        &self,
        group: &str,
        filter: &FilterSpec,
    ) -> Result<(), LogsError> {
        self.client
            .put_subscription_filter()
            .log_group_name(group)
            .filter_name(&filter.name)
            .filter_pattern(&filter.pattern)
            .destination_arn(&filter.destination_arn)
            .set_role_arn(filter.role_arn.clone().filter(|r| !r.is_empty()))
            .send()
            .await
            .map_err(|e| LogsError::PutFilter {
                group: group.to_owned(),
                filter: filter.name.clone(),
                message: describe_sdk_error(&e),
            })?;
        Ok(())
    }

    /// The `kube-apiserver-audit-*` streams of `group`; `None` when the log group does not exist.
    /// Streams can only be listed in name order when a prefix is given (ordering by
    /// `LastEventTime` refuses a prefix), so every page is read.
    /// <https://docs.aws.amazon.com/AmazonCloudWatchLogs/latest/APIReference/API_DescribeLogStreams.html>
    pub async fn audit_streams(
        &self,
        group: &str,
    ) -> Result<Option<Vec<StreamActivity>>, LogsError> {
        let mut pages = self
            .client
            .describe_log_streams()
            .log_group_name(group)
            .log_stream_name_prefix(AUDIT_STREAM_PREFIX)
            .into_paginator()
            .send();
        let mut streams = Vec::new();
        while let Some(page) = pages.next().await {
            match page {
                Ok(page) => streams.extend(page.log_streams().iter().map(|s| StreamActivity {
                    name: s.log_stream_name().unwrap_or_default().to_owned(),
                    last_event_ms: s.last_event_timestamp(),
                    last_ingestion_ms: s.last_ingestion_time(),
                })),
                Err(e)
                    if e.as_service_error()
                        .is_some_and(|e| e.is_resource_not_found_exception()) =>
                {
                    return Ok(None);
                }
                Err(e) => {
                    return Err(LogsError::DescribeStreams {
                        group: group.to_owned(),
                        message: describe_sdk_error(&e),
                    });
                }
            }
        }
        Ok(Some(streams))
    }
}

fn filter_spec(filter: &SubscriptionFilter) -> FilterSpec {
    FilterSpec {
        name: filter.filter_name().unwrap_or_default().to_owned(),
        destination_arn: filter.destination_arn().unwrap_or_default().to_owned(),
        role_arn: filter
            .role_arn()
            .filter(|r| !r.is_empty())
            .map(str::to_owned),
        pattern: filter.filter_pattern().unwrap_or_default().to_owned(),
    }
}
