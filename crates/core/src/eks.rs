//! Amazon EKS naming: which log group holds a cluster's control-plane logs, which of its
//! streams carry audit events, and what stands in for a cluster nobody named.
//!
//! EKS writes to `/aws/eks/<cluster>/cluster`, one stream per API server and kind of log:
//! <https://docs.aws.amazon.com/eks/latest/userguide/control-plane-logs.html>.

/// Log streams of an EKS control-plane log group that carry audit events. The other streams of
/// the same group (`kube-apiserver-`, `authenticator-`, `kube-scheduler-`, ...) do not.
pub const AUDIT_STREAM_PREFIX: &str = "kube-apiserver-audit-";

/// Stands in for the cluster in keys and partitions when neither the log group nor the
/// configuration names one.
pub const UNKNOWN_CLUSTER: &str = "_unknown";

/// Whether `log_stream` carries audit events.
pub fn is_audit_stream(log_stream: &str) -> bool {
    log_stream.starts_with(AUDIT_STREAM_PREFIX)
}

/// The log group EKS writes a cluster's control-plane logs to.
pub fn log_group_of(cluster: &str) -> String {
    format!("/aws/eks/{cluster}/cluster")
}

/// The cluster named by an EKS control-plane log group, `/aws/eks/<cluster>/cluster`.
pub fn cluster_from_log_group(log_group: &str) -> Option<&str> {
    let cluster = log_group
        .strip_prefix("/aws/eks/")?
        .strip_suffix("/cluster")?;
    (!cluster.is_empty() && !cluster.contains('/')).then_some(cluster)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cluster_comes_from_eks_log_groups_only() {
        assert_eq!(
            cluster_from_log_group("/aws/eks/prod-east/cluster"),
            Some("prod-east")
        );
        assert_eq!(cluster_from_log_group("/aws/eks//cluster"), None);
        assert_eq!(cluster_from_log_group("/aws/eks/a/b/cluster"), None);
        assert_eq!(cluster_from_log_group("/custom/audit"), None);
    }

    #[test]
    fn log_group_and_cluster_name_round_trip() {
        assert_eq!(log_group_of("prod-east"), "/aws/eks/prod-east/cluster");
        assert_eq!(
            cluster_from_log_group(&log_group_of("prod-east")),
            Some("prod-east")
        );
    }

    #[test]
    fn only_audit_streams_carry_audit_events() {
        assert!(is_audit_stream("kube-apiserver-audit-0123456789abcdef"));
        assert!(!is_audit_stream("kube-apiserver-0123456789abcdef"));
        assert!(!is_audit_stream("authenticator-0123456789abcdef"));
    }
}
