//! Which Sigma rules run (contract §12): the default pack, the operator's own files
//! (`EKS_AUDIT_RULES`), and the IP list (`EKS_AUDIT_IP_LIST`), loaded and compiled once at start.
//! A rule file that does not load stops the start with its file and line: a Lambda must not run
//! with half its rules and say nothing.

use std::fmt;
use std::path::{Path, PathBuf};

use clap::Args;

use eks_audit_core::detect::rules::{self, RuleError, RuleFile, RuleTest};
use eks_audit_core::detect::{Detector, ip_list};

/// Detection flags and variables.
#[derive(Debug, Clone, Default, Args)]
pub struct DetectionArgs {
    /// Sigma rule file, or a directory of them (`*.yml`, `*.yaml`, not recursive), evaluated on
    /// every kept event beside the default pack.
    #[arg(long, env = "EKS_AUDIT_RULES")]
    pub rules: Option<PathBuf>,

    /// Leave the project's default rule pack out (only `--rules` and `--ip-list` run).
    #[arg(long, env = "EKS_AUDIT_NO_DEFAULT_RULES")]
    pub no_default_rules: bool,

    /// File of IP addresses and CIDR blocks, one per line (`#` comments): any request from one
    /// of them is a finding (GuardDuty's MaliciousIPCaller.Custom).
    #[arg(long, env = "EKS_AUDIT_IP_LIST")]
    pub ip_list: Option<PathBuf>,

    /// Turn detection off altogether: no rule is evaluated and no finding written.
    #[arg(long, env = "EKS_AUDIT_NO_DETECTIONS")]
    pub no_detections: bool,
}

/// Why the rules could not be loaded: every error, each with its file and, where known, line.
#[derive(Debug)]
pub struct RulesError(pub Vec<RuleError>);

impl fmt::Display for RulesError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let lines: Vec<String> = self.0.iter().map(ToString::to_string).collect();
        f.write_str(&lines.join("\n"))
    }
}

impl std::error::Error for RulesError {}

impl DetectionArgs {
    /// The rule files these settings name, default pack first, then the operator's in path
    /// order, then the IP list's rule.
    pub fn rule_files(&self) -> Result<Vec<RuleFile>, RulesError> {
        let mut files = Vec::new();
        if !self.no_default_rules {
            files.extend(rules::default_pack());
        }
        if let Some(path) = &self.rules {
            files.extend(read_rules(path)?);
        }
        if let Some(path) = &self.ip_list {
            let name = path.display().to_string();
            let text = read(path)?;
            files.push(ip_list::rule(&name, &text).map_err(RulesError)?);
        }
        Ok(files)
    }

    /// The compiled detector, or `None` when detection is off or no rule is left.
    pub fn detector(&self) -> Result<Option<Detector>, RulesError> {
        if self.no_detections {
            return Ok(None);
        }
        let files = self.rule_files()?;
        if files.is_empty() {
            return Ok(None);
        }
        Detector::load(&files).map(Some).map_err(RulesError)
    }
}

/// The rule files at `path`: the file itself, or a directory's `*.yml` and `*.yaml` files in
/// name order.
pub fn read_rules(path: &Path) -> Result<Vec<RuleFile>, RulesError> {
    let paths = if path.is_dir() {
        let entries = std::fs::read_dir(path).map_err(|e| io_error(path, &e))?;
        let mut paths: Vec<PathBuf> = entries
            .flatten()
            .map(|entry| entry.path())
            .filter(|p| p.is_file() && p.extension().is_some_and(|e| e == "yml" || e == "yaml"))
            .collect();
        paths.sort();
        if paths.is_empty() {
            return Err(RulesError(vec![RuleError {
                file: path.display().to_string(),
                line: None,
                message: "no *.yml or *.yaml rule file in the directory".to_owned(),
            }]));
        }
        paths
    } else {
        vec![path.to_owned()]
    };
    paths
        .iter()
        .map(|p| {
            Ok(RuleFile {
                name: p.display().to_string(),
                text: read(p)?,
            })
        })
        .collect()
}

fn read(path: &Path) -> Result<String, RulesError> {
    std::fs::read_to_string(path).map_err(|e| io_error(path, &e))
}

fn io_error(path: &Path, error: &std::io::Error) -> RulesError {
    RulesError(vec![RuleError {
        file: path.display().to_string(),
        line: None,
        message: format!("cannot read: {error}"),
    }])
}

/// The test events of a rule directory: `<dir>/tests/<rule>/*.json`, as the default pack's.
pub fn read_tests(dir: &Path) -> Result<Vec<RuleTest>, RulesError> {
    let tests_dir = dir.join("tests");
    let mut tests = Vec::new();
    let Ok(entries) = std::fs::read_dir(&tests_dir) else {
        return Ok(tests);
    };
    let mut rule_dirs: Vec<PathBuf> = entries
        .flatten()
        .map(|e| e.path())
        .filter(|p| p.is_dir())
        .collect();
    rule_dirs.sort();
    for rule_dir in rule_dirs {
        let rule = rule_dir
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default();
        let entries = std::fs::read_dir(&rule_dir).map_err(|e| io_error(&rule_dir, &e))?;
        let mut files: Vec<PathBuf> = entries
            .flatten()
            .map(|e| e.path())
            .filter(|p| p.is_file() && p.extension().is_some_and(|e| e == "json"))
            .collect();
        files.sort();
        for file in files {
            tests.push(RuleTest {
                rule: rule.clone(),
                file: file
                    .file_name()
                    .map(|n| n.to_string_lossy().into_owned())
                    .unwrap_or_default(),
                text: read(&file)?,
            });
        }
    }
    Ok(tests)
}
