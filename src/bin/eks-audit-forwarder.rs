//! The Lambda function: Firehose transformation and CloudWatch Logs subscription events.
#![recursion_limit = "256"]

use std::io::Write;
use std::time::{Instant, SystemTime, UNIX_EPOCH};

use eks_audit_forwarder::config::{SettingsArgs, region_from_env};
use eks_audit_forwarder::handler::{Handler, HandlerError, Response};
use eks_audit_forwarder::sink::ObjectStore;
use eks_audit_forwarder::sink::firehose::Reingester;
use eks_audit_forwarder::telemetry::emf;
use lambda_runtime::{Error, LambdaEvent, run, service_fn};
use serde_json::value::RawValue;

#[tokio::main]
async fn main() -> Result<(), Error> {
    let on_lambda = std::env::var_os("AWS_LAMBDA_FUNCTION_NAME").is_some();
    eks_audit_forwarder::telemetry::init(on_lambda);
    let settings = SettingsArgs::from_env()?;
    let store = ObjectStore::from_settings(&settings).await;
    let handler =
        Handler::new(settings, store, region_from_env()).with_reingester(Reingester::from_env());
    let handler = &handler;
    run(service_fn(
        move |event: LambdaEvent<Box<RawValue>>| async move {
            let started = Instant::now();
            let invocation = handler.invoke(event.payload.get()).await?;
            let metrics = emf::line(
                &invocation.tally,
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
