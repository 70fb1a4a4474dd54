//! `eks-audit`: the operator's command line. Each command is a thin shell over the library.

#![recursion_limit = "256"]

use std::io::{IsTerminal, Read, Write};
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::{Context, Result};
use clap::{Args, Parser, Subcommand};
use eks_audit_forwarder::collect::{Collector, Options, Progress};
use eks_audit_forwarder::config::{SettingsArgs, region_from_env};
use eks_audit_forwarder::handler::Handler;
use eks_audit_forwarder::pipeline::Limits;
use eks_audit_forwarder::sink::ObjectStore;
use eks_audit_forwarder::sink::firehose::Reingester;

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
    /// Collect the forwarder's S3 objects through their notifications on SQS.
    ///
    /// Long-polls the queue, downloads each object an `ObjectCreated` notification names,
    /// checks it (gzip, NDJSON, every line a JSON object) and writes its events as NDJSON. A
    /// message is deleted only after all its events are written; one whose object cannot be
    /// read is left in the queue, so its redrive policy moves it to the dead-letter queue.
    /// `s3:TestEvent` and other S3 events are deleted; quarantine objects are skipped. Stops on
    /// Ctrl-C, or with `--once` when the queue is drained. Exit code 1 when a message was left.
    Collect(CollectArgs),
}

#[derive(Args)]
struct CollectArgs {
    /// SQS queue receiving the bucket's S3 event notifications.
    #[arg(long, env = "EKS_AUDIT_QUEUE_URL")]
    queue_url: String,
    /// Messages per receive (1-10).
    #[arg(long, default_value_t = 10, value_parser = clap::value_parser!(i32).range(1..=10))]
    max_messages: i32,
    /// Long-poll wait per receive, in seconds (0-20).
    #[arg(long, default_value_t = 20, value_parser = clap::value_parser!(i32).range(0..=20))]
    wait_seconds: i32,
    /// Seconds a received message stays hidden from other consumers; default: the queue's.
    #[arg(long, value_parser = clap::value_parser!(i32).range(0..=43_200))]
    visibility_timeout: Option<i32>,
    /// Drain the queue and exit, instead of polling until Ctrl-C.
    #[arg(long)]
    once: bool,
    /// Append events to this file instead of writing them to stdout.
    #[arg(long, short)]
    output: Option<PathBuf>,
    /// Largest decompressed object accepted, in bytes (gzip bomb guard).
    #[arg(long, default_value_t = Limits::default().max_payload_bytes)]
    max_object_bytes: usize,
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
            Command::Collect(args) => collect(args).await,
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
    let handler = Handler::new(settings, store, region_from_env()).with_reingester(Reingester::from_env());
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

async fn collect(args: CollectArgs) -> Result<ExitCode> {
    let aws = aws_config::load_from_env().await;
    let options = Options {
        queue_url: args.queue_url,
        max_messages: args.max_messages,
        wait_seconds: args.wait_seconds,
        visibility_timeout: args.visibility_timeout,
        max_object_bytes: args.max_object_bytes,
        once: args.once,
    };
    let collector = Collector::new(
        aws_sdk_sqs::Client::new(&aws),
        eks_audit_forwarder::sink::s3::client(&aws),
        options,
    );
    let mut out: Box<dyn Write> = match &args.output {
        Some(path) => Box::new(DurableFile(
            std::fs::OpenOptions::new()
                .create(true)
                .append(true)
                .open(path)
                .with_context(|| format!("cannot open {}", path.display()))?,
        )),
        None => Box::new(std::io::stdout().lock()),
    };
    let terminal = std::io::stderr().is_terminal();
    let show = |progress: &Progress| {
        if terminal {
            eprint!("\r\x1b[Kcollect: {} objects, {} events, {} bytes", progress.objects, progress.events, progress.bytes);
        }
    };
    let stop = async {
        // Without a signal handler Ctrl-C would still stop the process, only less cleanly.
        if tokio::signal::ctrl_c().await.is_err() {
            std::future::pending::<()>().await;
        }
    };
    let result = collector.run(&mut out, stop, show).await;
    if terminal {
        eprintln!();
    }
    let progress = result?;
    tracing::info!(
        messages = progress.messages,
        objects = progress.objects,
        events = progress.events,
        bytes = progress.bytes,
        skipped = progress.skipped,
        left = progress.left,
        "collect summary"
    );
    if progress.left > 0 {
        eprintln!(
            "eks-audit: {} message(s) could not be processed and were left in the queue for its redrive policy",
            progress.left
        );
        return Ok(ExitCode::FAILURE);
    }
    Ok(ExitCode::SUCCESS)
}

/// A file whose `flush` reaches the disk. The collector flushes before it deletes a message,
/// so a deleted message's events survive a crash of the machine, not only of the process.
struct DurableFile(std::fs::File);

impl Write for DurableFile {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.write(buf)
    }

    fn flush(&mut self) -> std::io::Result<()> {
        self.0.sync_data()
    }
}
