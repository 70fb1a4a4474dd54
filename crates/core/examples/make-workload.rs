//! Writes a generated Firehose transformation event (see `benches/workload.rs`) to a file, for
//! the scripts in `scripts/bench-*.sh` and `scripts/compare-python.sh`.
//!
//! ```sh
//! cargo run --release -p eks-audit-core --example make-workload -- --size typical target/typical.json
//! cargo run --release -p eks-audit-core --example make-workload -- --size max target/max.json
//! ```
//!
//! Sizes: `typical` (or `1mb`: 1 MiB of record data, Firehose's processor buffer), `max` (or
//! `6mb`: the largest request, under 6,000,000 bytes of event JSON), `small`, or `<N>kb` of
//! record data. The summary, with the achieved compression ratio, goes to stderr.

#[path = "../benches/workload.rs"]
mod workload;

use std::process::ExitCode;

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let (size, out) = match args.as_slice() {
        [flag, size, out] if flag == "--size" => (size.as_str(), out),
        [out] => ("typical", out),
        _ => {
            eprintln!("usage: make-workload [--size typical|max|small|<N>kb] OUT.json");
            return ExitCode::from(2);
        }
    };
    let size = match workload::Size::parse(size) {
        Ok(size) => size,
        Err(e) => {
            eprintln!("make-workload: {e}");
            return ExitCode::from(2);
        }
    };
    let workload = workload::generate(size);
    if let Err(e) = std::fs::write(out, &workload.event) {
        eprintln!("make-workload: cannot write {out}: {e}");
        return ExitCode::FAILURE;
    }
    eprintln!("{out}: {}", workload.summary());
    ExitCode::SUCCESS
}
