//! The AWS half of `eks-audit reconcile`: CloudWatch Logs `FilterLogEvents` and S3 listings,
//! `HeadObject` and `GetObject`, all through the SDK's paginators and standard retries. Every
//! decision is in [`super::ledger`] and [`super::window`].

use aws_sdk_cloudwatchlogs::error::ProvideErrorMetadata;
use aws_sdk_s3::types::Object as S3Object;

use eks_audit_core::ProcessOptions;
use eks_audit_core::batch::objects::META_EVENTS;
use eks_audit_core::eks::{AUDIT_STREAM_PREFIX, is_audit_stream, log_group_of};

use super::events::{LogEvent, ObjectLines, expected};
use super::ledger::{Ledger, Reads, Report, Totals};
use super::window::{Layout, Window, format_time};
use crate::sink::describe_sdk_error;

/// What to reconcile.
#[derive(Debug, Clone)]
pub struct Request {
    /// The EKS cluster: its log group is `/aws/eks/<cluster>/cluster`.
    pub cluster: String,
    /// The bucket the forwarder writes to.
    pub bucket: String,
    /// The forwarder's key prefix (`EKS_AUDIT_PREFIX`).
    pub prefix: String,
    /// The hours to check.
    pub window: Window,
    /// The forwarder's settings: which events it keeps, quarantines or drops.
    pub options: ProcessOptions,
    /// Download every object, even for hours whose metadata counts agree.
    pub verify: bool,
}

/// Why reconciling could not finish: an AWS call failed after the SDK's retries.
#[derive(Debug, thiserror::Error)]
pub enum ReconcileError {
    /// The cluster's log group does not exist.
    #[error(
        "log group {0} does not exist: is audit logging on for the cluster (eks-audit subscribe --check)?"
    )]
    NoLogGroup(String),
    /// `FilterLogEvents` failed.
    #[error("cannot read the events of {group}: {message}")]
    Logs {
        /// The log group.
        group: String,
        /// The SDK error, on one line.
        message: String,
    },
    /// `ListObjectsV2` failed.
    #[error("cannot list s3://{bucket}/{prefix}: {message}")]
    List {
        /// The bucket.
        bucket: String,
        /// The prefix listed.
        prefix: String,
        /// The SDK error, on one line.
        message: String,
    },
    /// `HeadObject` failed.
    #[error("cannot read the metadata of s3://{bucket}/{key}: {message}")]
    Head {
        /// The bucket.
        bucket: String,
        /// The key.
        key: String,
        /// The SDK error, on one line.
        message: String,
    },
}

/// Reads CloudWatch Logs and S3 to answer a [`Request`].
pub struct Reconciler {
    logs: aws_sdk_cloudwatchlogs::Client,
    s3: aws_sdk_s3::Client,
    page_size: Option<i32>,
}

/// An object of one of the layouts, as listed.
#[derive(Debug, Clone)]
struct Listed {
    key: String,
    quarantine: bool,
}

/// The objects that may hold one hour's events.
#[derive(Debug, Default)]
struct HourObjects {
    events: Vec<Listed>,
    quarantine: Vec<Listed>,
}

impl Reconciler {
    /// With the clients of `aws` (S3 by path with an endpoint override, as the sink).
    pub fn new(aws: &aws_config::SdkConfig) -> Reconciler {
        Reconciler::from_clients(
            aws_sdk_cloudwatchlogs::Client::new(aws),
            crate::sink::s3::client(aws),
        )
    }

    /// With these clients.
    pub fn from_clients(
        logs: aws_sdk_cloudwatchlogs::Client,
        s3: aws_sdk_s3::Client,
    ) -> Reconciler {
        Reconciler {
            logs,
            s3,
            page_size: None,
        }
    }

    /// Asks for at most `events` events per `FilterLogEvents` page (default: the service's, up
    /// to 10,000), so that tests exercise paging.
    pub fn with_page_size(mut self, events: i32) -> Reconciler {
        self.page_size = Some(events);
        self
    }

    /// Counts what CloudWatch holds and what the bucket holds, hour by hour.
    pub async fn run(&self, request: &Request) -> Result<Report, ReconcileError> {
        let window = request.window;
        let mut ledger = Ledger::new(window);
        let mut reads = Reads::default();
        let log_group = log_group_of(&request.cluster);
        self.read_cloudwatch(request, &log_group, &mut ledger, &mut reads)
            .await?;
        ledger.seal();

        let layout = Layout::new(&request.prefix, &request.cluster);
        let mut hours = Vec::with_capacity(window.hour_count());
        for index in 0..window.hour_count() {
            let hour = window.hour(index);
            hours.push(HourObjects {
                events: self
                    .list(request, &layout.direct_folder(hour), false)
                    .await?,
                quarantine: self
                    .list(request, &layout.quarantine_folder(hour), true)
                    .await?,
            });
        }
        let firehose = self.list_firehose(request, &layout).await?;
        reads.objects_listed = (hours
            .iter()
            .map(|h| h.events.len() + h.quarantine.len())
            .sum::<usize>()
            + firehose.len()) as u64;

        // Firehose objects hold lines of any hour, without our metadata: with any of them,
        // every hour is read line by line.
        if !request.verify && firehose.is_empty() {
            for (index, objects) in hours.iter().enumerate() {
                // Every object the forwarder writes holds at least one event: more objects than
                // events cannot agree, and are not worth a HeadObject each.
                let (events, quarantined) = ledger.expected_counts(index);
                if !window.is_whole(index)
                    || objects.events.len() as u64 > events
                    || objects.quarantine.len() as u64 > quarantined
                {
                    continue;
                }
                let events = self
                    .events_metadata(request, &objects.events, &mut reads)
                    .await?;
                let quarantined = self
                    .events_metadata(request, &objects.quarantine, &mut reads)
                    .await?;
                if let (Some(events), Some(quarantined)) = (events, quarantined) {
                    ledger.settle_by_metadata(index, events, quarantined);
                }
            }
        }

        let to_read: Vec<Listed> = hours
            .into_iter()
            .enumerate()
            .filter(|(index, _)| !ledger.is_settled(*index))
            .flat_map(|(_, objects)| objects.events.into_iter().chain(objects.quarantine))
            .chain(firehose)
            .collect();
        for object in to_read {
            self.read_object(request, &object, &mut ledger, &mut reads)
                .await;
        }

        let (rows, unreadable_lines) = ledger.finish();
        reads.lines_unreadable = unreadable_lines;
        Ok(Report {
            cluster: request.cluster.clone(),
            log_group,
            bucket: request.bucket.clone(),
            prefix: request.prefix.clone(),
            since: format_time(window.start()),
            until: format_time(window.end()),
            total: Totals::of(&rows),
            hours: rows,
            reads,
        })
    }

    /// Every event of the cluster's audit streams in the window and its margins, paged.
    async fn read_cloudwatch(
        &self,
        request: &Request,
        log_group: &str,
        ledger: &mut Ledger,
        reads: &mut Reads,
    ) -> Result<(), ReconcileError> {
        let (start, end) = request.window.cloudwatch_range();
        let mut paginator = self
            .logs
            .filter_log_events()
            .log_group_name(log_group)
            .log_stream_name_prefix(AUDIT_STREAM_PREFIX)
            .start_time(start)
            .end_time(end)
            .into_paginator();
        if let Some(size) = self.page_size {
            paginator = paginator.page_size(size);
        }
        let mut pages = paginator.send();
        let mut scratch = Vec::new();
        while let Some(page) = pages.next().await {
            let page = page.map_err(|e| {
                if e.as_service_error().and_then(|s| s.code()) == Some("ResourceNotFoundException")
                {
                    ReconcileError::NoLogGroup(log_group.to_owned())
                } else {
                    ReconcileError::Logs {
                        group: log_group.to_owned(),
                        message: describe_sdk_error(&e),
                    }
                }
            })?;
            reads.cloudwatch_pages += 1;
            for event in page.events() {
                let stream = event.log_stream_name().unwrap_or_default();
                // The prefix is asked for; checked again because emulators ignore it.
                if !is_audit_stream(stream) {
                    continue;
                }
                let (Some(event_id), Some(timestamp)) = (event.event_id(), event.timestamp())
                else {
                    continue;
                };
                reads.cloudwatch_events += 1;
                let event = LogEvent {
                    log_group,
                    log_stream: stream,
                    event_id,
                    timestamp,
                    message: event.message().unwrap_or_default(),
                };
                ledger.expect(expected(
                    &event,
                    &request.cluster,
                    &request.options,
                    &mut scratch,
                ));
            }
        }
        Ok(())
    }

    /// The objects under `prefix`.
    async fn list(
        &self,
        request: &Request,
        prefix: &str,
        quarantine: bool,
    ) -> Result<Vec<Listed>, ReconcileError> {
        let mut pages = self
            .s3
            .list_objects_v2()
            .bucket(&request.bucket)
            .prefix(prefix)
            .into_paginator()
            .send();
        let mut listed = Vec::new();
        while let Some(page) = pages.next().await {
            let page = page.map_err(|e| ReconcileError::List {
                bucket: request.bucket.clone(),
                prefix: prefix.to_owned(),
                message: describe_sdk_error(&e),
            })?;
            listed.extend(
                page.contents()
                    .iter()
                    .filter_map(S3Object::key)
                    .map(|key| Listed {
                        key: key.to_owned(),
                        quarantine,
                    }),
            );
        }
        Ok(listed)
    }

    /// The Firehose objects of every account folder, in the window's arrival hours.
    async fn list_firehose(
        &self,
        request: &Request,
        layout: &Layout,
    ) -> Result<Vec<Listed>, ReconcileError> {
        let accounts_prefix = layout.firehose_accounts();
        let mut pages = self
            .s3
            .list_objects_v2()
            .bucket(&request.bucket)
            .prefix(&accounts_prefix)
            .delimiter("/")
            .into_paginator()
            .send();
        let mut accounts = Vec::new();
        while let Some(page) = pages.next().await {
            let page = page.map_err(|e| ReconcileError::List {
                bucket: request.bucket.clone(),
                prefix: accounts_prefix.clone(),
                message: describe_sdk_error(&e),
            })?;
            accounts.extend(
                page.common_prefixes()
                    .iter()
                    .filter_map(|p| p.prefix().map(str::to_owned)),
            );
        }
        let mut listed = Vec::new();
        for account in &accounts {
            for hour in request.window.firehose_hours() {
                let folder = Layout::firehose_folder(account, hour);
                listed.extend(self.list(request, &folder, false).await?);
            }
        }
        Ok(listed)
    }

    /// The sum of the objects' `x-amz-meta-events`; `None` when one of them has none (written
    /// before the forwarder wrote metadata, or by something else).
    async fn events_metadata(
        &self,
        request: &Request,
        objects: &[Listed],
        reads: &mut Reads,
    ) -> Result<Option<u64>, ReconcileError> {
        let mut sum = 0;
        for object in objects {
            let head = self
                .s3
                .head_object()
                .bucket(&request.bucket)
                .key(&object.key)
                .send()
                .await
                .map_err(|e| ReconcileError::Head {
                    bucket: request.bucket.clone(),
                    key: object.key.clone(),
                    message: describe_sdk_error(&e),
                })?;
            reads.objects_headed += 1;
            let events = head
                .metadata()
                .and_then(|m| m.get(META_EVENTS))
                .and_then(|v| v.parse::<u64>().ok());
            match events {
                Some(events) => sum += events,
                None => return Ok(None),
            }
        }
        Ok(Some(sum))
    }

    /// Downloads `object` and counts its lines, streaming: a chunk and a line in memory at a
    /// time. An object that cannot be downloaded or decoded is logged and counted unreadable;
    /// the lines read before the error still count.
    async fn read_object(
        &self,
        request: &Request,
        object: &Listed,
        ledger: &mut Ledger,
        reads: &mut Reads,
    ) {
        let location = format!("s3://{}/{}", request.bucket, object.key);
        let response = match self
            .s3
            .get_object()
            .bucket(&request.bucket)
            .key(&object.key)
            .send()
            .await
        {
            Ok(response) => response,
            Err(e) => {
                tracing::warn!(object = %location, error = %describe_sdk_error(&e), "cannot download the object");
                reads.objects_unreadable += 1;
                return;
            }
        };
        reads.objects_downloaded += 1;
        let mut body = response.body;
        let mut lines = ObjectLines::new(ledger, object.quarantine);
        let mut failure = None;
        while let Some(chunk) = body.next().await {
            match chunk {
                Ok(chunk) => {
                    if let Err(e) = lines.feed(&chunk) {
                        failure = Some(format!("not gzip, or corrupt: {e}"));
                        break;
                    }
                }
                Err(e) => {
                    failure = Some(format!("download cut short: {e}"));
                    break;
                }
            }
        }
        let failure = match failure {
            Some(failure) => Some(failure),
            None => lines
                .finish()
                .err()
                .map(|e| format!("not gzip, or corrupt: {e}")),
        };
        if let Some(error) = failure {
            tracing::warn!(object = %location, %error, "cannot read the object");
            reads.objects_unreadable += 1;
        }
    }
}
