//! `eks-audit`: the operator's command line. Each command is a thin shell over the library.

#![recursion_limit = "256"]

use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::{Context, Result};
use clap::{Parser, Subcommand};
use eks_audit_forwarder::config::{SettingsArgs, region_from_env};
use eks_audit_forwarder::handler::Handler;
use eks_audit_forwarder::sink::ObjectStore;

#[derive(Parser)]
#[command(name = "eks-audit", version, about = "Forward Amazon EKS audit logs from CloudWatch Logs")]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run the Lambda handler on a saved event and print its JSON response.
    Invoke {
        /// A Firehose transformation or CloudWatch Logs (`awslogs`) event, as JSON.
        event_file: PathBuf,
        #[command(flatten)]
        settings: SettingsArgs,
    },
    /// Print normalized events as NDJSON from any supported input.
    ///
    /// Reads a Lambda event, a CloudWatch Logs subscription message (gzip or not), or audit
    /// events as JSON, NDJSON or an EventList. Problems are reported on stderr, one per line.
    Transform {
        /// Input file, or `-` for stdin.
        #[arg(default_value = "-")]
        file: PathBuf,
        #[command(flatten)]
        settings: SettingsArgs,
    },
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    eks_audit_forwarder::telemetry::init(false);
    let runtime = match tokio::runtime::Runtime::new() {
        Ok(runtime) => runtime,
        Err(e) => return fail(&anyhow::Error::new(e).context("cannot start the async runtime")),
    };
    let result = runtime.block_on(async {
        match cli.command {
            Command::Invoke { event_file, settings } => invoke(&event_file, settings).await,
            Command::Transform { file, settings } => transform(&file, settings),
        }
    });
    match result {
        Ok(code) => code,
        Err(e) => fail(&e),
    }
}

fn fail(error: &anyhow::Error) -> ExitCode {
    eprintln!("eks-audit: {error:#}");
    ExitCode::FAILURE
}

async fn invoke(event_file: &Path, settings: SettingsArgs) -> Result<ExitCode> {
    let event = std::fs::read_to_string(event_file).with_context(|| format!("cannot read {}", event_file.display()))?;
    let settings = settings.into_settings();
    let store = ObjectStore::from_settings(&settings).await;
    let handler = Handler::new(settings, store, region_from_env());
    let response = handler.handle(&event).await.with_context(|| format!("{}", event_file.display()))?;
    let mut stdout = std::io::stdout().lock();
    serde_json::to_writer_pretty(&mut stdout, &response)?;
    writeln!(stdout)?;
    Ok(ExitCode::SUCCESS)
}

fn transform(file: &Path, settings: SettingsArgs) -> Result<ExitCode> {
    let mut input = Vec::new();
    if file == Path::new("-") {
        std::io::stdin().read_to_end(&mut input).context("cannot read stdin")?;
    } else {
        input = std::fs::read(file).with_context(|| format!("cannot read {}", file.display()))?;
    }
    let settings = settings.into_settings();
    let region = region_from_env();
    let transformed = eks_audit_forwarder::transform::transform(input, &settings, region.as_deref())
        .with_context(|| format!("{}", file.display()))?;
    std::io::stdout().lock().write_all(&transformed.ndjson)?;
    for problem in &transformed.problems {
        eprintln!("eks-audit: {}: {problem}", file.display());
    }
    let tally = &transformed.tally;
    tracing::info!(
        events = tally.events,
        kept = tally.kept,
        dropped = tally.dropped.total(),
        quarantined = tally.quarantined,
        failed_records = tally.failed_records,
        "transform summary"
    );
    Ok(if transformed.problems.is_empty() { ExitCode::SUCCESS } else { ExitCode::FAILURE })
}
