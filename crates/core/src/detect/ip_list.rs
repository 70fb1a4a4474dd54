//! `EKS_AUDIT_IP_LIST`: the user's own list of hostile addresses, as GuardDuty's
//! `MaliciousIPCaller.Custom` finding types take them. The list becomes one Sigma rule over
//! `sourceIPs` with the `cidr` modifier, so it runs in the same engine as every other rule.

use std::net::IpAddr;

use super::rules::{RuleError, RuleFile};

/// The rule's id: stable, so findings of the list are recognisable across deployments.
pub const RULE_ID: &str = "0b6f3c1e-2f7a-4d8e-9c55-6a1d2e3f4b70";

/// The Sigma rule matching any request with a `sourceIPs` entry in `list` (one IP address or
/// CIDR block per line; `#` starts a comment). `name` names the list in errors and findings.
pub fn rule(name: &str, list: &str) -> Result<RuleFile, Vec<RuleError>> {
    let mut blocks = Vec::new();
    let mut errors = Vec::new();
    for (index, line) in list.lines().enumerate() {
        let entry = line.split('#').next().unwrap_or_default().trim();
        if entry.is_empty() {
            continue;
        }
        match block(entry) {
            Some(block) => blocks.push(block),
            None => errors.push(RuleError {
                file: name.to_owned(),
                line: Some(index + 1),
                message: format!("`{entry}` is not an IP address or a CIDR block"),
            }),
        }
    }
    if blocks.is_empty() && errors.is_empty() {
        errors.push(RuleError {
            file: name.to_owned(),
            line: None,
            message: "the IP list holds no address".to_owned(),
        });
    }
    if !errors.is_empty() {
        return Err(errors);
    }
    let mut text = format!(
        "title: Request From an Address on the IP List\n\
         id: {RULE_ID}\n\
         status: stable\n\
         description: A request came from an address on the operator's IP list ({name}), as \
         GuardDuty's MaliciousIPCaller.Custom finding types.\n\
         author: eks-audit-forwarder\n\
         tags:\n  - attack.initial-access\n  - attack.t1078\n\
         logsource:\n  product: kubernetes\n  service: audit\n\
         detection:\n  selection:\n    sourceIPs|cidr:\n"
    );
    for block in blocks {
        text.push_str(&format!("      - '{block}'\n"));
    }
    text.push_str(
        "  condition: selection\nfalsepositives:\n  - An address listed by mistake\nlevel: high\n",
    );
    Ok(RuleFile {
        name: name.to_owned(),
        text,
    })
}

/// `entry` as a CIDR block: an address alone is its own /32 or /128.
fn block(entry: &str) -> Option<String> {
    let (address, prefix) = match entry.split_once('/') {
        Some((address, prefix)) => (address, Some(prefix)),
        None => (entry, None),
    };
    let address: IpAddr = address.parse().ok()?;
    let max = if address.is_ipv4() { 32 } else { 128 };
    let prefix = match prefix {
        Some(prefix) => prefix.parse::<u8>().ok().filter(|p| *p <= max)?,
        None => max,
    };
    Some(format!("{address}/{prefix}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn entries_become_cidr_blocks_and_bad_ones_are_named_by_line() {
        assert_eq!(block("192.0.2.7"), Some("192.0.2.7/32".into()));
        assert_eq!(block("2001:db8::/32"), Some("2001:db8::/32".into()));
        assert_eq!(block("192.0.2.0/33"), None);
        assert_eq!(block("example.com"), None);
        let errors = rule("ips.txt", "# hostile\n192.0.2.7\nnot-an-ip\n").unwrap_err();
        assert_eq!(errors.len(), 1);
        assert_eq!(
            errors[0].to_string(),
            "ips.txt:3: `not-an-ip` is not an IP address or a CIDR block"
        );
        assert!(rule("ips.txt", "# nothing\n\n").is_err());
    }
}
