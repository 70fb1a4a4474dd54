//! Logging set-up shared by the binaries: JSON lines on Lambda (CloudWatch Logs Insights reads
//! their fields), compact text on a terminal. Logs go to stderr so stdout stays the output.

pub mod emf;

use tracing_subscriber::EnvFilter;

/// Installs the global log subscriber, filtered by `RUST_LOG` (default `info`), writing to stderr:
/// JSON lines when `json` (on Lambda), compact text otherwise. A second call keeps the first
/// subscriber.
pub fn init(json: bool) {
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info"));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    let result = if json {
        builder
            .json()
            .flatten_event(true)
            .with_current_span(false)
            .without_time()
            .try_init()
    } else {
        builder.compact().try_init()
    };
    // A second initialisation (tests) keeps the first subscriber.
    drop(result);
}
