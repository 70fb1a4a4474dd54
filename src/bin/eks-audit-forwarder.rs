//! The Lambda function: Firehose transformation and CloudWatch Logs subscription events.
#![recursion_limit = "256"]

use std::io::Write;
use std::time::{Instant, SystemTime, UNIX_EPOCH};

use eks_audit_core::allocator;
use eks_audit_forwarder::config::{SettingsArgs, region_from_env};
use eks_audit_forwarder::handler::{Handler, HandlerError, Response};
use eks_audit_forwarder::sink::ObjectStore;
use eks_audit_forwarder::sink::findings::FindingsQueue;
use eks_audit_forwarder::sink::firehose::Reingester;
use eks_audit_forwarder::subscribe::Subscriber;
use eks_audit_forwarder::subscribe::auto::AutoSubscriber;
use eks_audit_forwarder::telemetry::emf;
use lambda_runtime::{Error, LambdaEvent, run, service_fn};
use serde_json::value::RawValue;

/// With the test-only `panic-probe` feature, an event holding this string makes the handler
/// panic (scripts/lambda-panic-test.sh).
#[cfg(feature = "panic-probe")]
const PANIC_PROBE_MARKER: &str = "eks_audit_panic_probe";

fn main() -> Result<(), Error> {
    // Before the runtime's threads start: glibc reads these settings without a lock, and the
    // handler runs on this thread (`block_on`), from the heap advised here.
    let memory = allocator::configure();
    tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?
        .block_on(serve(memory))
}

/// `memory`: what the allocator settings obtained, for the log.
async fn serve(memory: allocator::Configured) -> Result<(), Error> {
    let on_lambda = std::env::var_os("AWS_LAMBDA_FUNCTION_NAME").is_some();
    eks_audit_forwarder::telemetry::init(on_lambda);
    tracing::debug!(
        retained = memory.retained,
        huge_pages = memory.huge_pages,
        "allocator asked to keep freed memory for the next invocation and to back the heap \
         with huge pages"
    );
    let settings = match SettingsArgs::from_env() {
        Ok(settings) => settings,
        Err(error) => {
            // An invalid setting fails the cold start: Lambda reports Runtime.ExitError, and this
            // line, the reason, is the last of the function's log.
            let reason = settings_error(&error);
            tracing::error!(%reason, "invalid configuration: the function cannot start");
            return Err(format!("invalid configuration: {reason}").into());
        }
    };
    // Rules are compiled once, here; one that does not load stops the start (contract §12).
    let settings = match settings.with_detector() {
        Ok(settings) => settings,
        Err(error) => {
            let reason = error.to_string().replace('\n', "; ");
            tracing::error!(%reason, "a Sigma rule does not load: the function cannot start");
            return Err(format!("invalid rules: {reason}").into());
        }
    };
    if let Some(detector) = &settings.process.detector {
        tracing::info!(rules = detector.rule_count(), "Sigma rules compiled");
    }
    let store = ObjectStore::from_settings(&settings).await;
    let findings_queue = match &settings.findings_queue_url {
        Some(url) => Some(FindingsQueue::new(
            aws_sdk_sqs::Client::new(&aws_config::load_from_env().await),
            url.clone(),
        )),
        None => None,
    };
    let mut handler =
        Handler::new(settings, store, region_from_env()).with_reingester(Reingester::from_env());
    if let Some(queue) = findings_queue {
        handler = handler.with_findings_queue(queue);
    }
    // The auto-subscriber (member accounts): on when a destination is configured.
    if let Some(filter) = AutoSubscriber::filter_from_env() {
        let subscriber = Subscriber::new(&aws_config::load_from_env().await);
        if let Err(error) = subscriber.check_destination(&filter) {
            tracing::error!(%error, "invalid auto-subscribe destination: the function cannot start");
            return Err(format!("invalid auto-subscribe destination: {error}").into());
        }
        handler = handler.with_auto_subscriber(AutoSubscriber::new(subscriber, filter));
    }
    let handler = &handler;
    run(service_fn(
        move |event: LambdaEvent<Box<RawValue>>| async move {
            let started = Instant::now();
            #[cfg(feature = "panic-probe")]
            if event.payload.get().contains(PANIC_PROBE_MARKER) {
                panic!("panic probe ({PANIC_PROBE_MARKER})");
            }
            let invocation = handler.invoke(event.payload.get()).await?;
            let metrics = emf::line(
                &invocation.tally,
                &invocation.findings,
                emf::cluster_dimension(&invocation.clusters),
                SystemTime::now()
                    .duration_since(UNIX_EPOCH)
                    .map_or(0, |d| d.as_millis() as i64),
                started.elapsed().as_millis() as u64,
            );
            // The metrics line on stdout, alone: CloudWatch Logs extracts it (logs are on stderr).
            drop(writeln!(std::io::stdout().lock(), "{metrics}"));
            Ok::<Response, HandlerError>(invocation.response)
        },
    ))
    .await
}

/// A settings error in one line, without clap's `--help` hint (the Lambda has no command line):
/// `invalid value 'quarantine' for '--prefix <PREFIX>': EKS_AUDIT_PREFIX (--prefix) may not …`.
fn settings_error(error: &clap::Error) -> String {
    let rendered = error.to_string();
    let first = rendered
        .lines()
        .find(|l| !l.trim().is_empty())
        .unwrap_or("");
    first.strip_prefix("error: ").unwrap_or(first).to_owned()
}
