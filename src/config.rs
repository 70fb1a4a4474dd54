//! Settings shared by the Lambda and every CLI command.
//!
//! One `clap` definition serves both: the CLI reads flags with the environment as fallback, and
//! the Lambda parses an empty command line so that only the environment applies. A variable set
//! to the empty string counts as unset (contract §7).

use std::path::PathBuf;
use std::sync::Arc;

use clap::{Args, ValueEnum};

use crate::detection::{DetectionArgs, RulesError};
use eks_audit_core::filter::{DEFAULT_EXCLUDE_URIS, parse_uri_patterns};
use eks_audit_core::{
    Filter, Format, InputLimits, KeyLayout, ProcessOptions, Redaction, StageFilter,
};

/// What the objects the function writes itself (direct mode) hold.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, ValueEnum)]
pub enum Output {
    /// gzip NDJSON under `<prefix>/cluster=…/dt=…/hour=…/` (contract §6).
    #[default]
    Ndjson,
    /// Amazon Security Lake custom-source objects: OCSF as zstd Parquet, one per log stream and
    /// day, under `ext/<source-name>/region=…/accountId=…/eventDay=…/`. Implies `--format ocsf`.
    #[cfg(feature = "security-lake")]
    Parquet,
}

/// Flags and environment variables, as documented by `--help` and the README.
#[derive(Debug, Clone, Args)]
pub struct SettingsArgs {
    /// Output schema: `flat` (Sentinel AWSEKSLogs_CL columns and more) or `ocsf` (OCSF 1.1.0
    /// API Activity, as Amazon Security Lake stores EKS audit logs).
    #[arg(long, env = "EKS_AUDIT_FORMAT", value_enum, default_value_t = Format::Flat)]
    pub format: Format,

    /// Audit stages to keep, comma separated; `*` keeps every stage.
    #[arg(long, env = "EKS_AUDIT_STAGES", default_value = "ResponseComplete")]
    pub stages: String,

    /// Request URIs to drop, comma separated, `*` matching any run of characters as in
    /// CloudWatch filter patterns; `none` disables the exclusion.
    #[arg(long, env = "EKS_AUDIT_EXCLUDE_URIS", default_value = DEFAULT_EXCLUDE_URIS)]
    pub exclude_uris: String,

    /// S3 bucket for objects and quarantine; without it objects go to the local `--out` directory.
    #[arg(long, env = "EKS_AUDIT_BUCKET")]
    pub bucket: Option<String>,

    /// Key prefix of NDJSON and quarantine objects (Security Lake Parquet objects go under `ext/`).
    /// Keys are paths: no `.`, `..` or empty segment, backslash or control character. Its last
    /// segment may not be `quarantine` (nor may a `quarantine` segment come before a `cluster=`
    /// one): event keys would then read as quarantine keys.
    #[arg(long, env = "EKS_AUDIT_PREFIX", default_value = "eks-audit", value_parser = parse_prefix)]
    pub prefix: String,

    /// Key layout: `cluster` (one account: `<prefix>/cluster=<c>/dt=…`) or `fleet` (many
    /// accounts and regions: `<prefix>/cluster=<c>/account=<a>/region=<r>/dt=…`, and a `region`
    /// Firehose partition key beside `cluster` and `account`).
    #[arg(long, env = "EKS_AUDIT_KEY_LAYOUT", value_enum, default_value_t = KeyLayout::Cluster)]
    pub key_layout: KeyLayout,

    /// Cluster name used when the log group is not `/aws/eks/<cluster>/cluster`.
    #[arg(long, env = "EKS_AUDIT_CLUSTER_NAME")]
    pub cluster_name: Option<String>,

    /// KMS key for SSE-KMS on objects written to S3; without it objects use SSE-S3.
    #[arg(long, env = "EKS_AUDIT_SSE_KMS_KEY_ID")]
    pub sse_kms_key_id: Option<String>,

    /// Largest audit event accepted, in bytes; bigger messages are quarantined. From 1 to
    /// 4294967296 (4 GiB).
    #[arg(long, env = "EKS_AUDIT_MAX_EVENT_BYTES", default_value_t = InputLimits::default().max_event_bytes,
          value_parser = limit("EKS_AUDIT_MAX_EVENT_BYTES (--max-event-bytes)", BYTES_CEILING))]
    pub max_event_bytes: usize,

    /// Largest decompressed payload accepted per record, in bytes (gzip bomb guard). From 1 to
    /// 4294967296 (4 GiB).
    #[arg(long, env = "EKS_AUDIT_MAX_PAYLOAD_BYTES", default_value_t = InputLimits::default().max_payload_bytes,
          value_parser = limit("EKS_AUDIT_MAX_PAYLOAD_BYTES (--max-payload-bytes)", BYTES_CEILING))]
    pub max_payload_bytes: usize,

    /// Deepest nesting of objects and arrays accepted in an audit event; deeper events are
    /// quarantined. From 1 to 1000.
    #[arg(long, env = "EKS_AUDIT_MAX_DEPTH", default_value_t = InputLimits::default().max_depth,
          value_parser = limit("EKS_AUDIT_MAX_DEPTH (--max-depth)", DEPTH_CEILING))]
    pub max_depth: usize,

    /// Most log events accepted in one record; a record with more fails whole (Firehose:
    /// ProcessingFailed with its original data; direct mode: the invocation fails). From 1 to
    /// 10000000.
    #[arg(long, env = "EKS_AUDIT_MAX_EVENTS_PER_RECORD", default_value_t = InputLimits::default().max_events_per_record,
          value_parser = limit("EKS_AUDIT_MAX_EVENTS_PER_RECORD (--max-events-per-record)", EVENTS_PER_RECORD_CEILING))]
    pub max_events_per_record: usize,

    /// Resources whose request and response bodies are replaced by a marker in the output:
    /// a comma list of `resource` or `resource/subresource`, `*` for all, `default` for
    /// secrets,configmaps,tokenreviews,serviceaccounts/token; `none` (the default) redacts nothing.
    #[arg(long, env = "EKS_AUDIT_REDACT", value_parser = Redaction::parse, default_value = "none")]
    pub redact: Redaction,

    /// Local directory standing in for S3 when no bucket is configured (for `invoke`, for the
    /// delivery stream's re-ingestion too, under `firehose/<stream>/`).
    #[arg(long = "out", env = "EKS_AUDIT_OUT_DIR", default_value = "out")]
    pub out_dir: PathBuf,

    /// What direct-mode objects hold: `ndjson` (gzip NDJSON) or, in builds with the
    /// `security-lake` feature, `parquet` (Security Lake custom-source Parquet, OCSF). Firehose
    /// records are NDJSON either way.
    #[arg(long, env = "EKS_AUDIT_OUTPUT", value_enum, default_value_t = Output::Ndjson)]
    pub output: Output,

    /// Security Lake custom source name: Parquet objects go under `ext/<source-name>/` (the
    /// bucket's custom-source location; `EKS_AUDIT_PREFIX` does not apply to them). Its segments
    /// follow the rules of `--prefix` for paths.
    #[arg(long, env = "EKS_AUDIT_SOURCE_NAME", default_value = DEFAULT_SOURCE_NAME, value_parser = parse_source_name)]
    pub source_name: String,

    /// Sigma rules and the IP list (contract §12).
    #[command(flatten)]
    pub detection: DetectionArgs,

    /// SQS queue that also receives every finding (batches of 10, retried); a failure to
    /// deliver is logged and counted and never fails the audit data.
    #[arg(long, env = "EKS_AUDIT_FINDINGS_QUEUE_URL")]
    pub findings_queue_url: Option<String>,
}

/// The Security Lake custom source name used when none is configured.
pub const DEFAULT_SOURCE_NAME: &str = "eks-audit";

/// Validated settings: what the core runs with, and what only the shells use.
#[derive(Debug, Clone)]
pub struct Settings {
    /// Everything the core reads: format, filter, limits, redaction, cluster override.
    pub process: ProcessOptions,
    /// S3 bucket for objects and quarantine; `None` writes under [`Settings::out_dir`].
    pub bucket: Option<String>,
    /// Key prefix of NDJSON and quarantine objects, without surrounding slashes.
    pub prefix: String,
    /// KMS key for SSE-KMS; `None` means SSE-S3.
    pub sse_kms_key_id: Option<String>,
    /// Local directory standing in for S3.
    pub out_dir: PathBuf,
    /// What direct-mode objects hold.
    pub output: Output,
    /// Security Lake custom source name, without surrounding slashes.
    pub source_name: String,
    /// Which rules to load ([`Settings::with_detector`]).
    pub detection: DetectionArgs,
    /// SQS queue URL for findings, beside their S3 objects.
    pub findings_queue_url: Option<String>,
}

impl SettingsArgs {
    /// Settings from the environment only, as the Lambda runs. Empty variables count as unset.
    pub fn from_env() -> Result<Settings, clap::Error> {
        use clap::{FromArgMatches, Parser};
        #[derive(Parser)]
        struct EnvOnly {
            #[command(flatten)]
            settings: SettingsArgs,
        }
        let matches = <EnvOnly as clap::CommandFactory>::command()
            .no_binary_name(true)
            .try_get_matches_from(std::iter::empty::<String>())?;
        Ok(EnvOnly::from_arg_matches(&matches)?
            .settings
            .into_settings())
    }

    /// The [`Settings`] these flags and variables give: empty values count as unset and the
    /// prefix loses its leading and trailing `/`. With `--output parquet` (feature
    /// `security-lake`) the format is OCSF, whatever `--format` says.
    pub fn into_settings(self) -> Settings {
        // Security Lake stores OCSF only.
        #[cfg(feature = "security-lake")]
        let format = if self.output == Output::Parquet {
            Format::Ocsf
        } else {
            self.format
        };
        #[cfg(not(feature = "security-lake"))]
        let format = self.format;
        Settings {
            process: ProcessOptions {
                format,
                filter: Filter {
                    stages: StageFilter::parse(&self.stages),
                    exclude_uris: parse_uri_patterns(&self.exclude_uris),
                },
                limits: InputLimits {
                    max_event_bytes: self.max_event_bytes,
                    max_payload_bytes: self.max_payload_bytes,
                    max_depth: self.max_depth,
                    max_events_per_record: self.max_events_per_record,
                },
                redaction: self.redact,
                cluster_override: non_empty(self.cluster_name),
                // Loaded by `Settings::with_detector`, which reads files.
                detector: None,
                key_layout: self.key_layout,
            },
            bucket: non_empty(self.bucket),
            prefix: self.prefix.trim_matches('/').to_owned(),
            sse_kms_key_id: non_empty(self.sse_kms_key_id),
            out_dir: self.out_dir,
            output: self.output,
            source_name: non_empty(Some(self.source_name)).map_or_else(
                || DEFAULT_SOURCE_NAME.to_owned(),
                |name| name.trim_matches('/').to_owned(),
            ),
            detection: self.detection,
            findings_queue_url: non_empty(self.findings_queue_url),
        }
    }
}

impl Settings {
    /// These settings with their rules loaded and compiled into `process.detector`: the Lambda
    /// and the commands call it once at start.
    pub fn with_detector(mut self) -> Result<Settings, RulesError> {
        self.process.detector = self.detection.detector()?.map(Arc::new);
        Ok(self)
    }
}

impl Default for Settings {
    fn default() -> Self {
        Settings {
            process: ProcessOptions::default(),
            bucket: None,
            prefix: "eks-audit".to_owned(),
            sse_kms_key_id: None,
            out_dir: PathBuf::from("out"),
            output: Output::default(),
            source_name: DEFAULT_SOURCE_NAME.to_owned(),
            detection: DetectionArgs::default(),
            findings_queue_url: None,
        }
    }
}

/// The largest value of a byte limit (`EKS_AUDIT_MAX_EVENT_BYTES`, `EKS_AUDIT_MAX_PAYLOAD_BYTES`,
/// `collect --max-object-bytes`): 4 GiB, 64 times the defaults' largest and 40% of the largest
/// Lambda's memory. A limit is a bound on hostile input, so a value past anything a function
/// can hold is a mistake (`18446744073709551615` made `limit + 1` wrap to 0 in the core, and
/// every gzip record failed as empty).
pub const BYTES_CEILING: u64 = 4 << 30;

/// The deepest `EKS_AUDIT_MAX_DEPTH`. Real events nest a few dozen levels; past about 120 the
/// output lines are deeper than serde_json's readers accept (128), and past 1,000 than most
/// recursive readers' stacks allow (Python's default recursion limit is 1,000).
pub const DEPTH_CEILING: u64 = 1000;

/// The largest `EKS_AUDIT_MAX_EVENTS_PER_RECORD`: each event costs about 60 bytes of
/// bookkeeping while its record is parsed, so 10 million is 600 MB; PutLogEvents sends at most
/// 10,000 events a call.
pub const EVENTS_PER_RECORD_CEILING: u64 = 10_000_000;

/// A value parser for a limit: a whole number from 1 to `ceiling`. Zero is refused too: every
/// limit at 0 would fail or quarantine everything. `setting` names the variable and the flag.
pub fn limit(
    setting: &'static str,
    ceiling: u64,
) -> impl Fn(&str) -> Result<usize, String> + Clone + Send + Sync + 'static {
    move |value: &str| {
        value
            .parse::<u64>()
            .ok()
            .filter(|n| (1..=ceiling).contains(n))
            .and_then(|n| usize::try_from(n).ok())
            .ok_or_else(|| format!("{setting} must be a whole number from 1 to {ceiling}"))
    }
}

/// The key segment quarantine objects go under: `<prefix>/quarantine/cluster=…` (contract §6.2),
/// next to event objects at `<prefix>/cluster=…` (§6.1).
const QUARANTINE_SEGMENT: &str = "quarantine";
/// The key segment of findings objects (contract §12), which a prefix may not imitate either.
const FINDINGS_SEGMENT: &str = "findings";

/// `EKS_AUDIT_PREFIX` (`--prefix`), without its surrounding slashes.
///
/// Collectors tell quarantine objects from event objects by their key alone
/// ([`is_quarantine_key`](eks_audit_core::batch::objects::is_quarantine_key): a `quarantine`
/// segment followed by a `cluster=` one). A prefix that ends in a `quarantine` segment, or has
/// one before a `cluster=` segment, gives event keys that read as quarantine keys, and every
/// event would be skipped as quarantine; such a prefix is bad usage.
fn parse_prefix(value: &str) -> Result<String, String> {
    let prefix = value.trim_matches('/');
    if prefix.is_empty() {
        return Ok(String::new());
    }
    check_key_path("EKS_AUDIT_PREFIX (--prefix)", prefix)?;
    let segments: Vec<&str> = prefix.split('/').collect();
    let confusable = segments.iter().enumerate().any(|(index, segment)| {
        [QUARANTINE_SEGMENT, FINDINGS_SEGMENT].contains(segment)
            && segments
                .get(index + 1)
                .is_none_or(|next| next.starts_with("cluster="))
    });
    if confusable {
        return Err(format!(
            "EKS_AUDIT_PREFIX (--prefix) may not end in a `{QUARANTINE_SEGMENT}` or `{FINDINGS_SEGMENT}` segment, nor have one before a `cluster=` segment: \
             event keys (<prefix>/cluster=…) would read as quarantine or findings keys (<prefix>/{QUARANTINE_SEGMENT}/cluster=…) and collectors would skip them"
        ));
    }
    Ok(prefix.to_owned())
}

/// `EKS_AUDIT_SOURCE_NAME` (`--source-name`): its segments become a key prefix, `ext/<name>/`.
fn parse_source_name(value: &str) -> Result<String, String> {
    let name = value.trim_matches('/');
    if !name.trim().is_empty() {
        check_key_path("EKS_AUDIT_SOURCE_NAME (--source-name)", name)?;
    }
    Ok(value.to_owned())
}

/// A key prefix (surrounding slashes already trimmed) is a path under the bucket, or under
/// `--out` without one: a `.` or `..` segment would climb out of the output directory (or name
/// an object no path-based tool could reach), and an empty segment (`a//b`), a backslash or a
/// control character would make keys that read differently to S3, to file systems and to
/// people. `setting` names the variable and flag in the message.
fn check_key_path(setting: &str, path: &str) -> Result<(), String> {
    if let Some(c) = path.chars().find(|c| c.is_control()) {
        return Err(format!(
            "{setting} may not contain a control character (found {c:?})"
        ));
    }
    if path.contains('\\') {
        return Err(format!("{setting} may not contain a backslash"));
    }
    for segment in path.split('/') {
        match segment {
            "" => return Err(format!("{setting} may not contain an empty segment (`//`)")),
            "." | ".." => {
                return Err(format!(
                    "{setting} may not contain a `{segment}` segment: keys are paths, and it would lead out of the output directory"
                ));
            }
            _ => {}
        }
    }
    Ok(())
}

fn non_empty(value: Option<String>) -> Option<String> {
    value.filter(|v| !v.trim().is_empty())
}

/// The function's region as the Lambda runtime (and the AWS CLI convention) sets it.
pub fn region_from_env() -> Option<String> {
    ["AWS_REGION", "AWS_DEFAULT_REGION"]
        .iter()
        .find_map(|name| non_empty(std::env::var(name).ok()))
}

#[cfg(all(test, feature = "security-lake"))]
mod tests {
    use clap::Parser;

    use super::*;

    #[derive(Parser)]
    struct Cli {
        #[command(flatten)]
        settings: SettingsArgs,
    }

    #[test]
    fn parquet_output_writes_ocsf_under_the_trimmed_source_name() {
        let args = [
            "eks-audit",
            "--output",
            "parquet",
            "--format",
            "flat",
            "--source-name",
            "/eks-audit/1.0/",
        ];
        let settings = Cli::try_parse_from(args)
            .expect("valid flags")
            .settings
            .into_settings();
        assert_eq!(
            (settings.output, settings.process.format),
            (Output::Parquet, Format::Ocsf)
        );
        assert_eq!(settings.source_name, "eks-audit/1.0");
    }
}

#[cfg(test)]
mod validation {
    use clap::Parser;

    use super::*;
    use eks_audit_core::batch::objects::{is_findings_key, is_quarantine_key};

    #[derive(Parser)]
    struct Cli {
        #[command(flatten)]
        settings: SettingsArgs,
    }

    fn prefix(value: &str) -> Result<String, clap::Error> {
        Cli::try_parse_from(["eks-audit", "--prefix", value]).map(|cli| cli.settings.prefix)
    }

    /// The key of an event object under `prefix` (contract §6.1).
    fn event_key(prefix: &str) -> String {
        let slash = if prefix.is_empty() { "" } else { "/" };
        format!(
            "{prefix}{slash}cluster=prod/dt=2024-05-21/hour=13/kube-apiserver-audit-1-1.json.gz"
        )
    }

    #[test]
    fn a_prefix_whose_event_keys_would_read_as_quarantine_is_bad_usage() {
        for bad in [
            "quarantine",
            "/quarantine/",
            "logs/quarantine",
            "quarantine/cluster=x",
            "a/quarantine/cluster=b/c",
        ] {
            let error = prefix(bad).expect_err(bad);
            assert_eq!(
                error.kind(),
                clap::error::ErrorKind::ValueValidation,
                "{bad}"
            );
            assert_eq!(error.exit_code(), 2, "{bad}");
            assert!(error.to_string().contains("EKS_AUDIT_PREFIX"), "{error}");
        }
    }

    #[test]
    fn prefixes_that_are_not_plain_paths_are_bad_usage() {
        for (bad, named) in [
            ("../../escaped", "`..` segment"),
            ("/x/../../../e", "`..` segment"),
            ("a/./b", "`.` segment"),
            (".", "`.` segment"),
            ("a//b", "empty segment"),
            ("a\\b", "backslash"),
            ("a\nb", "control character"),
            ("a\u{7f}b", "control character"),
        ] {
            let error = prefix(bad).expect_err(bad);
            assert_eq!(error.exit_code(), 2, "{bad:?}");
            let message = error.to_string();
            assert!(message.contains("EKS_AUDIT_PREFIX (--prefix)"), "{message}");
            assert!(message.contains(named), "{bad:?}: {message}");
        }
        for good in ["eks-audit", "/a/b/", "a.b/..c/d..", "audit logs", "é"] {
            assert_eq!(prefix(good).unwrap(), good.trim_matches('/'), "{good:?}");
        }
    }

    #[test]
    fn the_source_name_follows_the_same_path_rules() {
        let source = |value: &str| {
            Cli::try_parse_from(["eks-audit", "--source-name", value])
                .map(|cli| cli.settings.into_settings().source_name)
        };
        for bad in ["../x", "a//b", "a/./b"] {
            let error = source(bad).expect_err(bad);
            assert!(
                error.to_string().contains("EKS_AUDIT_SOURCE_NAME"),
                "{error}"
            );
        }
        assert_eq!(source("/eks-audit/1.0/").unwrap(), "eks-audit/1.0");
        assert_eq!(source("").unwrap(), DEFAULT_SOURCE_NAME);
    }

    #[test]
    fn limits_outside_their_range_are_bad_usage_naming_the_variable_and_the_range() {
        let cases = [
            (
                "--max-event-bytes",
                "EKS_AUDIT_MAX_EVENT_BYTES",
                "4294967296",
            ),
            (
                "--max-payload-bytes",
                "EKS_AUDIT_MAX_PAYLOAD_BYTES",
                "4294967296",
            ),
            ("--max-depth", "EKS_AUDIT_MAX_DEPTH", "1000"),
            (
                "--max-events-per-record",
                "EKS_AUDIT_MAX_EVENTS_PER_RECORD",
                "10000000",
            ),
        ];
        for (flag, variable, ceiling) in cases {
            let past = (ceiling.parse::<u64>().unwrap() + 1).to_string();
            for bad in [
                "0",
                &past,
                "18446744073709551615",
                "18446744073709551616",
                "-1",
                "1e6",
                "",
            ] {
                let error = Cli::try_parse_from(["eks-audit", &format!("{flag}={bad}")])
                    .err()
                    .unwrap_or_else(|| panic!("{flag} {bad} is refused"));
                assert_eq!(error.exit_code(), 2);
                let message = error.to_string();
                assert!(message.contains(variable), "{message}");
                assert!(
                    message.contains(&format!("from 1 to {ceiling}")),
                    "{message}"
                );
            }
            for good in ["1", ceiling] {
                let limits = Cli::try_parse_from(["eks-audit", flag, good])
                    .unwrap()
                    .settings
                    .into_settings()
                    .process
                    .limits;
                let value = match flag {
                    "--max-event-bytes" => limits.max_event_bytes,
                    "--max-payload-bytes" => limits.max_payload_bytes,
                    "--max-depth" => limits.max_depth,
                    _ => limits.max_events_per_record,
                };
                assert_eq!(value.to_string(), good, "{flag}");
            }
        }
        let defaults = Cli::try_parse_from(["eks-audit"])
            .unwrap()
            .settings
            .into_settings();
        assert_eq!(
            defaults.process.limits,
            InputLimits::default(),
            "the defaults are in range"
        );
    }

    #[test]
    fn accepted_prefixes_never_make_event_keys_read_as_quarantine() {
        // Whatever the validation accepts, collectors must see its event keys as events: the
        // rule is checked against the core's own test, not restated.
        let candidates = [
            "",
            "/",
            "eks-audit",
            "/eks-audit/",
            "quarantine-x",
            "x-quarantine",
            "Quarantine",
            "quarantine/x",
            "a/quarantine/b",
            "cluster=x",
            "a/b/c",
            "quarantine",
            "a/quarantine",
            "quarantine/cluster=",
            "a/quarantine/cluster=b",
            "findings",
            "a/findings",
            "a/findings/cluster=b",
            "findingsx",
        ];
        for candidate in candidates {
            let accepted = prefix(candidate).ok();
            let trimmed = candidate.trim_matches('/');
            assert_eq!(
                accepted.is_some(),
                !is_quarantine_key(&event_key(trimmed)) && !is_findings_key(&event_key(trimmed)),
                "{candidate:?}"
            );
            if let Some(accepted) = accepted {
                assert_eq!(accepted, trimmed, "stored without surrounding slashes");
            }
        }
    }
}
