//! Builds the default Sigma rule pack (`rules/` at the repository's root) into the crate: the
//! Lambda needs no rule files beside it, and the pack is compiled once per cold start.

use std::fmt::Write;
use std::path::{Path, PathBuf};
use std::{env, fs};

fn main() {
    let manifest = PathBuf::from(env::var("CARGO_MANIFEST_DIR").unwrap());
    let rules = manifest.join("../../rules");
    println!("cargo:rerun-if-changed={}", rules.display());
    let mut out = String::new();

    out.push_str("/// The default pack's rule files, by file name.\n");
    out.push_str("pub const RULES: &[(&str, &str)] = &[\n");
    for file in files(&rules, "yml") {
        let name = file.file_name().unwrap().to_str().unwrap();
        writeln!(out, "    ({name:?}, include_str!({:?})),", abs(&file)).unwrap();
    }
    out.push_str("];\n");

    out.push_str("/// The default pack's test events: (rule, file, JSON).\n");
    out.push_str("pub const TESTS: &[(&str, &str, &str)] = &[\n");
    let tests = rules.join("tests");
    println!("cargo:rerun-if-changed={}", tests.display());
    let mut rule_dirs: Vec<PathBuf> = fs::read_dir(&tests)
        .map(|dir| {
            dir.flatten()
                .map(|e| e.path())
                .filter(|p| p.is_dir())
                .collect()
        })
        .unwrap_or_default();
    rule_dirs.sort();
    for dir in rule_dirs {
        println!("cargo:rerun-if-changed={}", dir.display());
        let rule = dir.file_name().unwrap().to_str().unwrap().to_owned();
        for file in files(&dir, "json") {
            let name = file.file_name().unwrap().to_str().unwrap();
            writeln!(
                out,
                "    ({rule:?}, {name:?}, include_str!({:?})),",
                abs(&file)
            )
            .unwrap();
        }
    }
    out.push_str("];\n");

    let mapping = rules.join("pipelines/sigmahq-kubernetes.yml");
    println!("cargo:rerun-if-changed={}", mapping.display());
    out.push_str("/// The SigmaHQ field mapping pipeline.\n");
    writeln!(
        out,
        "pub const FIELD_MAPPING: &str = include_str!({:?});",
        abs(&mapping)
    )
    .unwrap();

    let target = PathBuf::from(env::var("OUT_DIR").unwrap()).join("default_rules.rs");
    fs::write(target, out).unwrap();
}

/// The files of `dir` ending in `.ext`, sorted, so the pack is the same on every machine.
fn files(dir: &Path, ext: &str) -> Vec<PathBuf> {
    let mut files: Vec<PathBuf> = fs::read_dir(dir)
        .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
        .flatten()
        .map(|entry| entry.path())
        .filter(|path| path.is_file() && path.extension().is_some_and(|e| e == ext))
        .collect();
    files.sort();
    for file in &files {
        println!("cargo:rerun-if-changed={}", file.display());
    }
    files
}

fn abs(path: &Path) -> PathBuf {
    path.canonicalize()
        .unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}
