//! `eks-audit`: the operator's command line. Each command is a thin shell over the library.

#![recursion_limit = "256"]
// The doc comments of the argument types are clap's `--help` text, not rustdoc: a placeholder
// such as `/aws/eks/<cluster>/cluster` is meant literally there, not as an HTML tag.
#![allow(rustdoc::invalid_html_tags)]

use std::io::{IsTerminal, Read, Write};
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use anyhow::{Context, Result};
use clap::{ArgGroup, Args, Parser, Subcommand};
use eks_audit_core::InputLimits;
use eks_audit_core::detect::rules;
use eks_audit_core::detect::{Detector, testing};
use eks_audit_core::filter::DEFAULT_SUBSCRIPTION_PATTERN;
use eks_audit_forwarder::Settings;
use eks_audit_forwarder::collect::{Collector, Options, Progress};
use eks_audit_forwarder::config::{BYTES_CEILING, SettingsArgs, limit, region_from_env};
use eks_audit_forwarder::detection;
use eks_audit_forwarder::handler::{Handler, Response};
use eks_audit_forwarder::reconcile::window::When;
use eks_audit_forwarder::reconcile::{Reconciler, Request, Window, parse_when};
use eks_audit_forwarder::sink::ObjectStore;
use eks_audit_forwarder::sink::firehose::Reingester;
use eks_audit_forwarder::subscribe::check::{Expected, parse_duration};
use eks_audit_forwarder::subscribe::fleet::{self, Accounts, Fleet};
use eks_audit_forwarder::subscribe::plan::{self, DEFAULT_FILTER_NAME, FilterSpec};
use eks_audit_forwarder::subscribe::{Clusters, Subscriber, parse_cluster};

#[derive(Parser)]
#[command(
    name = "eks-audit",
    version,
    about = "Forward Amazon EKS audit logs from CloudWatch Logs"
)]
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
    /// Put the forwarder's subscription filter on EKS audit log groups, or check that logs flow.
    ///
    /// For each cluster's log group /aws/eks/<cluster>/cluster: creates the filter, leaves it
    /// unchanged when it is already as asked, or updates it in place. Filters of other names
    /// are kept and reported; a log group has two subscription filter slots, and when other
    /// filters use both the cluster is skipped. When another filter already delivers to the
    /// destination (the SAM stack's), none is added, so events do not arrive twice. One line
    /// per cluster; exit code 1 when a cluster is not subscribed (or, with --check, not flowing).
    Subscribe(SubscribeArgs),
    /// Prove, hour by hour, that every audit event in CloudWatch reached the bucket once.
    ///
    /// For each UTC hour of the window, counts the events of the cluster's audit streams in
    /// /aws/eks/<cluster>/cluster that the forwarder keeps or quarantines with these settings
    /// (the same --stages, --exclude-uris, --format, limits and --redact as the forwarder),
    /// and compares them by auditID and stage (quarantine: by CloudWatch event id) with the
    /// lines of the objects under --prefix: direct-mode objects of the hour, Firehose objects
    /// of the neighbouring arrival hours, quarantine objects. Prints a table (or --json): in
    /// CloudWatch, delivered, quarantined, missing, duplicated, unexpected. Hours whose objects'
    /// event counts (x-amz-meta-events) already agree are not downloaded unless --verify.
    /// Exit code 1 when an event is missing.
    Reconcile(ReconcileArgs),
    /// Print the findings of Sigma rules as OCSF Detection Findings, one per line.
    ///
    /// Reads every input `transform` reads. The rules are the default pack, plus --rules and
    /// --ip-list; --no-default-rules leaves the pack out. Problems with the input are reported
    /// on stderr, one per line (exit code 1); a rule that does not load is bad usage (exit 2).
    Detect {
        /// Input file, or `-` for stdin.
        #[arg(default_value = "-")]
        file: PathBuf,
        /// Add to each finding which detections (`selection`, ...) matched, under
        /// `unmapped.matched_selections`.
        #[arg(long)]
        explain: bool,
        #[command(flatten)]
        settings: SettingsArgs,
    },
    /// Check Sigma rule files, or run their test events.
    #[command(subcommand)]
    Rules(RulesCommand),
}

#[derive(Subcommand)]
enum RulesCommand {
    /// Check that rule files load: YAML, Sigma, modifiers, and fields an audit event has. One
    /// line per error, `file:line: message`; exit code 1 when any.
    Check {
        /// Rule files or directories of them (`*.yml`, `*.yaml`).
        #[arg(required = true)]
        paths: Vec<PathBuf>,
    },
    /// Run every rule's test events: `<dir>/tests/<rule>/fires*.json` must match the rule of
    /// `<dir>/<rule>.yml`, `misses*.json` must not. Without a directory, the default pack's.
    /// Exit code 1 when a test fails or a rule has no test of either kind.
    Test {
        /// A rule directory; default: the built-in pack.
        dir: Option<PathBuf>,
    },
}

#[derive(Args)]
struct ReconcileArgs {
    /// The EKS cluster (or its log group, /aws/eks/<cluster>/cluster).
    #[arg(long, value_parser = parse_cluster)]
    cluster: String,
    /// Start of the window, rounded down to its UTC hour: a duration back from now (90m, 2h,
    /// 1d) or an RFC 3339 time (2024-05-21T10:00:00Z).
    #[arg(long, default_value = "2h", value_parser = parse_when)]
    since: When,
    /// End of the window, exclusive: a duration back from now, `now`, or an RFC 3339 time. The
    /// default leaves the last events time to arrive (Firehose buffers up to 15 minutes).
    #[arg(long, default_value = "15m", value_parser = parse_when)]
    until: When,
    /// Download and compare every object, even for hours whose object metadata counts agree
    /// with CloudWatch (where a missing event and a duplicated one would cancel out).
    #[arg(long)]
    verify: bool,
    /// Print the report as one JSON document instead of a table.
    #[arg(long)]
    json: bool,
    #[command(flatten)]
    settings: SettingsArgs,
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
    /// Largest decompressed object accepted, in bytes (gzip bomb guard). From 1 to 4294967296
    /// (4 GiB).
    #[arg(long, default_value_t = InputLimits::default().max_payload_bytes,
          value_parser = limit("--max-object-bytes", BYTES_CEILING))]
    max_object_bytes: usize,
    /// Objects downloaded at once (1-64), ahead of the writer; output order stays that of the
    /// messages and their records. Memory: each object is held whole until written, so about
    /// N x --max-object-bytes at most (the download is capped at that size too: 2 x N x
    /// --max-object-bytes for an object that does not compress).
    #[arg(long, default_value_t = 4, value_parser = clap::value_parser!(u16).range(1..=64))]
    concurrency: u16,
    /// Drop events whose audit id and stage repeat one of the last 1,000,000 written (for
    /// consumers that cannot take re-ingestion's at-least-once); about 52 MB.
    #[arg(long)]
    dedup: bool,
}

#[derive(Args)]
#[command(group(ArgGroup::new("which").required(true).args(["clusters", "all", "accounts", "org"])))]
struct SubscribeArgs {
    /// EKS cluster names (or their log groups, /aws/eks/<cluster>/cluster).
    #[arg(value_parser = parse_cluster)]
    clusters: Vec<String>,
    /// Every log group /aws/eks/<cluster>/cluster of the region.
    #[arg(long, conflicts_with = "clusters")]
    all: bool,
    /// Where the filter delivers: the stack's DeliveryStreamArn (Firehose mode) or FunctionArn
    /// (direct mode) output. Optional with --check: then a filter of any name delivering
    /// there counts, and ours delivering elsewhere does not.
    #[arg(long, required_unless_present = "check")]
    destination_arn: Option<String>,
    /// Role CloudWatch Logs assumes to deliver; required for Firehose and Kinesis (the stack's
    /// SubscriptionRoleArn output), not for a Lambda function.
    #[arg(long)]
    role_arn: Option<String>,
    /// Name of the subscription filter; a filter of this name is ours to update.
    #[arg(long, default_value = DEFAULT_FILTER_NAME)]
    filter_name: String,
    /// CloudWatch Logs filter pattern; empty = every event. The default is contract §3's, as
    /// in template.yaml.
    #[arg(long, default_value = DEFAULT_SUBSCRIPTION_PATTERN)]
    filter_pattern: String,
    /// Print what would be done, change nothing.
    #[arg(long, conflicts_with = "check")]
    dry_run: bool,
    /// Report whether audit logs flow instead: log group present, a kube-apiserver-audit-*
    /// stream with an event within --max-age, our filter present.
    #[arg(long)]
    check: bool,
    /// With --check: the oldest last audit event that still counts as flowing (90s, 15m, 2h, 1d).
    #[arg(long, default_value = "15m", value_parser = parse_duration, requires = "check")]
    max_age: Duration,
    /// Fleet: every EKS log group of these accounts (comma list), through --role-name assumed
    /// in each. --destination-arn and --role-arn may hold `{region}`, replaced per region.
    #[arg(long, value_delimiter = ',', requires = "role_name", conflicts_with_all = ["clusters", "all", "org"])]
    accounts: Vec<String>,
    /// Fleet: every active account of the AWS Organization (from its management or delegated
    /// administrator account), or of --ou and the OUs under it.
    #[arg(long, requires = "role_name", conflicts_with_all = ["clusters", "all"])]
    org: bool,
    /// With --org: the OU (ou-…) or root (r-…) to cover.
    #[arg(long, requires = "org")]
    ou: Option<String>,
    /// Fleet: the IAM role assumed in each account (arn:aws:iam::<account>:role/<NAME>).
    #[arg(long)]
    role_name: Option<String>,
    /// Fleet: the regions to cover in each account (comma list); default the configured one.
    #[arg(long, value_delimiter = ',')]
    regions: Vec<String>,
    /// Fleet: account-region pairs worked on at once.
    #[arg(long, default_value_t = fleet::DEFAULT_CONCURRENCY, value_parser = clap::value_parser!(u16).range(1..=64))]
    concurrency: u16,
    /// Fleet: attempts per AWS call, in the SDK's standard retry mode (throttling backs off).
    #[arg(long, default_value_t = fleet::DEFAULT_MAX_ATTEMPTS, value_parser = clap::value_parser!(u32).range(1..=20))]
    max_attempts: u32,
}

fn main() -> ExitCode {
    // Before the runtime's threads start: glibc reads these settings without a lock, and
    // commands run on this thread (`block_on`), from the heap advised here.
    eks_audit_core::allocator::configure();
    let cli = Cli::parse();
    eks_audit_forwarder::telemetry::init(false);
    let runtime = match tokio::runtime::Runtime::new() {
        Ok(runtime) => runtime,
        Err(e) => return fail(&anyhow::Error::new(e).context("cannot start the async runtime")),
    };
    let result = runtime.block_on(async {
        match cli.command {
            Command::Invoke {
                event_file,
                settings,
            } => invoke(&event_file, settings).await,
            Command::Transform { file, settings } => transform(&file, settings),
            Command::Collect(args) => collect(args).await,
            Command::Subscribe(args) => subscribe(args).await,
            Command::Reconcile(args) => reconcile(args).await,
            Command::Detect {
                file,
                explain,
                settings,
            } => detect(&file, explain, settings),
            Command::Rules(RulesCommand::Check { paths }) => rules_check(&paths),
            Command::Rules(RulesCommand::Test { dir }) => rules_test(dir.as_deref()),
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
    let event = std::fs::read_to_string(event_file)
        .with_context(|| format!("cannot read {}", event_file.display()))?;
    let settings = match with_rules(settings.into_settings()) {
        Ok(settings) => settings,
        Err(code) => return Ok(code),
    };
    let store = ObjectStore::from_settings(&settings).await;
    // A local run stays local: without a bucket, records to re-ingest go beside the objects.
    let reingester = if store.is_bucket() {
        Reingester::from_env()
    } else {
        Reingester::local(&settings.out_dir)
    };
    let handler = Handler::new(settings, store, region_from_env()).with_reingester(reingester);
    let response = handler
        .handle(&event)
        .await
        .with_context(|| format!("{}", event_file.display()))?;
    let mut out = response_output()?;
    match &response {
        Response::Firehose(firehose) => firehose.write_pretty(&mut out)?,
        other => serde_json::to_writer_pretty(&mut out, other)?,
    }
    writeln!(out)?;
    out.flush()?;
    Ok(ExitCode::SUCCESS)
}

/// Where `invoke` writes its response: standard output, but not through its line buffering,
/// which searches each write for a line break, and the response's megabytes of base64 hold
/// none (6.8 M instructions on the typical event). A buffer of its own instead, which passes
/// large writes straight through.
#[cfg(unix)]
fn response_output() -> std::io::Result<impl Write> {
    use std::os::fd::AsFd;
    let stdout = std::io::stdout().as_fd().try_clone_to_owned()?;
    Ok(std::io::BufWriter::with_capacity(
        64 << 10,
        std::fs::File::from(stdout),
    ))
}

#[cfg(not(unix))]
fn response_output() -> std::io::Result<impl Write> {
    Ok(std::io::stdout().lock())
}

/// The input of `transform` and `detect`: a file, or stdin for `-`.
fn read_input(file: &Path) -> Result<Vec<u8>> {
    let mut input = Vec::new();
    if file == Path::new("-") {
        std::io::stdin()
            .read_to_end(&mut input)
            .context("cannot read stdin")?;
    } else {
        input = std::fs::read(file).with_context(|| format!("cannot read {}", file.display()))?;
    }
    Ok(input)
}

/// `settings` with their rules compiled; a rule that does not load is bad usage (exit code 2),
/// each error on its own line.
fn with_rules(settings: Settings) -> Result<Settings, ExitCode> {
    settings.with_detector().map_err(|error| {
        for line in error.to_string().lines() {
            eprintln!("eks-audit: {line}");
        }
        ExitCode::from(2)
    })
}

fn detect(file: &Path, explain: bool, settings: SettingsArgs) -> Result<ExitCode> {
    let input = read_input(file)?;
    let mut settings = settings.into_settings();
    settings.detection.no_detections = false;
    let mut settings = match with_rules(settings) {
        Ok(settings) => settings,
        Err(code) => return Ok(code),
    };
    let Some(detector) = settings.process.detector.take() else {
        eprintln!("eks-audit: no rule to run: --no-default-rules without --rules or --ip-list");
        return Ok(ExitCode::from(2));
    };
    if explain {
        let detector = std::sync::Arc::try_unwrap(detector)
            .map_err(|_| anyhow::anyhow!("the detector is shared"))?;
        settings.process.detector = Some(std::sync::Arc::new(detector.explain()));
    } else {
        settings.process.detector = Some(detector);
    }
    let region = region_from_env();
    let transformed =
        eks_audit_core::transform::transform(input, &settings.process, region.as_deref())
            .with_context(|| format!("{}", file.display()))?;
    let mut stdout = std::io::stdout().lock();
    for finding in &transformed.findings {
        stdout.write_all(&finding.line)?;
    }
    for problem in &transformed.problems {
        eprintln!("eks-audit: {}: {problem}", file.display());
    }
    tracing::info!(
        events = transformed.tally.events,
        kept = transformed.tally.kept,
        findings = transformed.findings.len(),
        "detect summary"
    );
    Ok(if transformed.problems.is_empty() {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    })
}

fn rules_check(paths: &[PathBuf]) -> Result<ExitCode> {
    let mut ok = true;
    let mut stdout = std::io::stdout().lock();
    for path in paths {
        let loaded = detection::read_rules(path).and_then(|files| {
            Detector::load(&files)
                .map(|detector| detector.rule_count())
                .map_err(detection::RulesError)
        });
        match loaded {
            Ok(count) => writeln!(stdout, "{}: ok, {count} rules", path.display())?,
            Err(error) => {
                ok = false;
                for line in error.to_string().lines() {
                    writeln!(stdout, "{line}")?;
                }
            }
        }
    }
    Ok(if ok {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    })
}

fn rules_test(dir: Option<&Path>) -> Result<ExitCode> {
    let (files, tests) = match dir {
        None => (rules::default_pack(), rules::default_tests()),
        Some(dir) => {
            let loaded = detection::read_rules(dir)
                .and_then(|files| Ok((files, detection::read_tests(dir)?)));
            match loaded {
                Ok(loaded) => loaded,
                Err(error) => {
                    eprintln!("eks-audit: {error}");
                    return Ok(ExitCode::from(2));
                }
            }
        }
    };
    let detector = match Detector::load(&files) {
        Ok(detector) => detector,
        Err(errors) => {
            for error in errors {
                eprintln!("eks-audit: {error}");
            }
            return Ok(ExitCode::from(2));
        }
    };
    let results = testing::run(&detector, &tests);
    let failed = results.iter().filter(|r| r.failure.is_some()).count();
    let mut stdout = std::io::stdout().lock();
    for result in &results {
        match &result.failure {
            None => writeln!(stdout, "ok    {}/{}", result.rule, result.file)?,
            Some(why) => writeln!(stdout, "FAIL  {}/{}: {why}", result.rule, result.file)?,
        }
    }
    writeln!(
        stdout,
        "{} rules, {} tests, {} failed",
        detector.rule_count(),
        results.len(),
        failed
    )?;
    Ok(if failed == 0 {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    })
}

fn transform(file: &Path, settings: SettingsArgs) -> Result<ExitCode> {
    let input = read_input(file)?;
    // Findings are `detect`'s output; transform only prints events.
    let mut settings = settings.into_settings();
    settings.detection.no_detections = true;
    let region = region_from_env();
    let transformed =
        eks_audit_core::transform::transform(input, &settings.process, region.as_deref())
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
        salvaged = tally.salvaged,
        failed_records = tally.failed_records,
        "transform summary"
    );
    Ok(if transformed.problems.is_empty() {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    })
}

async fn collect(args: CollectArgs) -> Result<ExitCode> {
    let aws = aws_config::load_from_env().await;
    let options = Options {
        queue_url: args.queue_url,
        max_messages: args.max_messages,
        wait_seconds: args.wait_seconds,
        visibility_timeout: args.visibility_timeout,
        max_object_bytes: args.max_object_bytes,
        concurrency: usize::from(args.concurrency),
        once: args.once,
        dedup: args.dedup,
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
            eprint!(
                "\r\x1b[Kcollect: {} objects, {} events, {} bytes",
                progress.objects, progress.events, progress.bytes
            );
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
        duplicates = progress.duplicates,
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

async fn subscribe(args: SubscribeArgs) -> Result<ExitCode> {
    let aws = aws_config::load_from_env().await;
    if !args.accounts.is_empty() || args.org {
        return subscribe_fleet(args, aws).await;
    }
    let subscriber = Subscriber::new(&aws);
    let which = if args.all {
        Clusters::All
    } else {
        Clusters::Named(args.clusters)
    };
    let filter = args.destination_arn.map(|destination_arn| FilterSpec {
        name: args.filter_name.clone(),
        destination_arn,
        role_arn: args.role_arn,
        pattern: args.filter_pattern,
    });
    if !args.check
        && let Some(filter) = &filter
        && let Err(error) = subscriber.check_destination(filter)
    {
        eprintln!("eks-audit: {error}");
        return Ok(ExitCode::from(2));
    }
    let clusters = subscriber.clusters(&which).await?;
    let mut stdout = std::io::stdout().lock();
    let mut all_ok = true;
    if args.check {
        let expected = Expected {
            filter_name: args.filter_name,
            destination_arn: filter.map(|f| f.destination_arn),
            max_age: args.max_age,
        };
        for cluster in &clusters {
            let now_ms = SystemTime::now()
                .duration_since(UNIX_EPOCH)
                .map_or(0, |d| d.as_millis() as i64);
            let report = subscriber.check(cluster, &expected, now_ms).await;
            all_ok &= report.is_flowing();
            writeln!(stdout, "{report}")?;
            stdout.flush()?;
        }
    } else {
        let filter = filter.context("--destination-arn is required")?;
        for cluster in &clusters {
            let report = subscriber.subscribe(cluster, &filter, args.dry_run).await;
            all_ok &= report.is_subscribed();
            writeln!(stdout, "{report}")?;
            stdout.flush()?;
        }
    }
    Ok(if all_ok {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    })
}

/// `subscribe` over accounts and regions: one table row per account, region and cluster.
async fn subscribe_fleet(args: SubscribeArgs, aws: aws_config::SdkConfig) -> Result<ExitCode> {
    let regions = if args.regions.is_empty() {
        aws.region()
            .map(|r| vec![r.to_string()])
            .unwrap_or_default()
    } else {
        args.regions.clone()
    };
    if regions.is_empty() {
        eprintln!("eks-audit: give --regions, or configure a region (AWS_REGION)");
        return Ok(ExitCode::from(2));
    }
    let fleet = Fleet {
        base: aws,
        role_name: args.role_name.clone().context("--role-name is required")?,
        regions,
        concurrency: usize::from(args.concurrency),
        max_attempts: args.max_attempts,
    };
    let accounts = if args.org {
        Accounts::Organization {
            ou: args.ou.clone(),
        }
    } else {
        Accounts::Listed(args.accounts.clone())
    };
    let task = if args.check {
        fleet::Task::Check {
            expected: Expected {
                filter_name: args.filter_name,
                destination_arn: args.destination_arn,
                max_age: args.max_age,
            },
            now_ms: SystemTime::now()
                .duration_since(UNIX_EPOCH)
                .map_or(0, |d| d.as_millis() as i64),
        }
    } else {
        let destination_arn = args
            .destination_arn
            .context("--destination-arn is required")?;
        // The destination's shape is checked once, before any call, as for one account.
        if let Err(error) = plan::check_destination(
            &destination_arn.replace(fleet::REGION_PLACEHOLDER, "us-east-1"),
            args.role_arn.as_deref(),
            None,
        ) {
            eprintln!("eks-audit: {error}");
            return Ok(ExitCode::from(2));
        }
        fleet::Task::Subscribe {
            filter: FilterSpec {
                name: args.filter_name,
                destination_arn,
                role_arn: args.role_arn,
                pattern: args.filter_pattern,
            },
            dry_run: args.dry_run,
        }
    };
    let accounts = fleet.accounts(&accounts).await?;
    let rows = fleet.run(&accounts, &task).await;
    let mut stdout = std::io::stdout().lock();
    write!(stdout, "{}", fleet::table(&rows))?;
    stdout.flush()?;
    Ok(if rows.iter().all(|row| row.ok) {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    })
}

async fn reconcile(args: ReconcileArgs) -> Result<ExitCode> {
    let settings = args.settings.into_settings();
    let usage = |message: &str| {
        eprintln!("eks-audit: {message}");
        Ok(ExitCode::from(2))
    };
    let Some(bucket) = settings.bucket.clone() else {
        return usage("reconcile reads the forwarder's bucket: give --bucket or EKS_AUDIT_BUCKET");
    };
    #[cfg(feature = "security-lake")]
    if settings.output == eks_audit_forwarder::config::Output::Parquet {
        return usage(
            "reconcile reads NDJSON objects; Parquet output (--output parquet) is not supported",
        );
    }
    let now = time::OffsetDateTime::now_utc();
    let window = match Window::new(args.since.resolve(now), args.until.resolve(now)) {
        Ok(window) => window,
        Err(reason) => return usage(&reason),
    };
    let aws = aws_config::load_from_env().await;
    let request = Request {
        cluster: args.cluster,
        bucket,
        prefix: settings.prefix,
        window,
        options: settings.process,
        verify: args.verify,
    };
    let report = Reconciler::new(&aws).run(&request).await?;
    let mut stdout = std::io::stdout().lock();
    if args.json {
        serde_json::to_writer_pretty(&mut stdout, &report)?;
        writeln!(stdout)?;
    } else {
        report.write_table(&mut stdout)?;
    }
    stdout.flush()?;
    if report.is_missing_events() {
        eprintln!(
            "eks-audit: {} event(s) in CloudWatch reached the bucket neither as events nor in quarantine",
            report.total.missing
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
