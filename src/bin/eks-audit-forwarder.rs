//! The Lambda function: Firehose transformation and CloudWatch Logs subscription events.
#![recursion_limit = "256"]

use eks_audit_forwarder::config::{SettingsArgs, region_from_env};
use eks_audit_forwarder::handler::Handler;
use eks_audit_forwarder::sink::ObjectStore;
use lambda_runtime::{Error, LambdaEvent, run, service_fn};
use serde_json::value::RawValue;

#[tokio::main]
async fn main() -> Result<(), Error> {
    let on_lambda = std::env::var_os("AWS_LAMBDA_FUNCTION_NAME").is_some();
    eks_audit_forwarder::telemetry::init(on_lambda);
    let settings = SettingsArgs::from_env()?;
    let store = ObjectStore::from_settings(&settings).await;
    let handler = Handler::new(settings, store, region_from_env());
    let handler = &handler;
    run(service_fn(move |event: LambdaEvent<Box<RawValue>>| async move {
        handler.handle(event.payload.get()).await
    }))
    .await
}
