//! Which audit events are kept (contract §3).
//!
//! The defaults equal the filter pattern EKS audit subscriptions use in the field, so the Lambda
//! agrees with the subscription filter it sits behind and catches what slips past it.

use crate::audit::AuditEvent;
use crate::tally::DropReason;

/// The filter pattern EKS audit subscriptions use in the field, as URI exclusions (contract §3).
pub const DEFAULT_EXCLUDE_URIS: &str =
    "/version,/version?*,/metrics,/metrics?*,/logs,/logs?*,/swagger*,/livez*,/readyz*,/healthz*";

/// A comma list of URI patterns. `none` disables URI exclusion: the empty string cannot, since
/// empty means unset.
pub fn parse_uri_patterns(list: &str) -> Vec<UriPattern> {
    if list.trim().eq_ignore_ascii_case("none") {
        return Vec::new();
    }
    list.split(',')
        .map(str::trim)
        .filter(|p| !p.is_empty())
        .map(UriPattern::new)
        .collect()
}

/// The CloudWatch Logs filter pattern EKS audit subscriptions use in the field (contract §3, on one
/// line): the default [`Filter`] (`ResponseComplete`, [`DEFAULT_EXCLUDE_URIS`]) applied by
/// CloudWatch before anything leaves it. `template.yaml`'s `FilterPattern` default and
/// `eks-audit subscribe --filter-pattern` default are this string.
pub const DEFAULT_SUBSCRIPTION_PATTERN: &str = r#"{ $.stage = "ResponseComplete" && $.requestURI != "/version" && $.requestURI != "/version?*" && $.requestURI != "/metrics" && $.requestURI != "/metrics?*" && $.requestURI != "/logs" && $.requestURI != "/logs?*" && $.requestURI != "/swagger*" && $.requestURI != "/livez*" && $.requestURI != "/readyz*" && $.requestURI != "/healthz*" }"#;

/// Which stages are kept (`EKS_AUDIT_STAGES`, contract §3).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum StageFilter {
    /// `*`: every event, with a stage or without.
    All,
    /// Events whose `stage` is one of these, exactly (case-sensitive). An event without a stage is
    /// never kept; an empty list keeps nothing.
    Only(Vec<String>),
}

impl StageFilter {
    /// A comma list of stage names, or `*` for all stages.
    pub fn parse(list: &str) -> StageFilter {
        let stages: Vec<String> = list
            .split(',')
            .map(str::trim)
            .filter(|s| !s.is_empty())
            .map(str::to_owned)
            .collect();
        if stages.iter().any(|s| s == "*") {
            StageFilter::All
        } else {
            StageFilter::Only(stages)
        }
    }

    fn keeps(&self, stage: Option<&str>) -> bool {
        match self {
            StageFilter::All => true,
            StageFilter::Only(stages) => stage.is_some_and(|s| stages.iter().any(|k| k == s)),
        }
    }
}

/// A CloudWatch filter-pattern string: `*` matches any run of characters, every other character
/// (including `?`) matches itself.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UriPattern {
    pattern: String,
}

impl UriPattern {
    /// The pattern as written; `*` is the only wildcard.
    pub fn new(pattern: &str) -> UriPattern {
        UriPattern {
            pattern: pattern.to_owned(),
        }
    }

    /// The pattern as written.
    pub fn as_str(&self) -> &str {
        &self.pattern
    }

    /// Whether the whole of `text` matches, as a CloudWatch filter pattern would match it.
    pub fn matches(&self, text: &str) -> bool {
        let mut parts = self.pattern.split('*');
        // `split` always yields a first part; without a `*` the pattern is an exact match.
        let first = parts.next().unwrap_or_default();
        let Some(mut rest) = text.strip_prefix(first) else {
            return false;
        };
        let mut middle: Vec<&str> = parts.collect();
        let Some(last) = middle.pop() else {
            return rest.is_empty();
        };
        for part in middle {
            match rest.find(part) {
                Some(at) => rest = &rest[at + part.len()..],
                None => return false,
            }
        }
        rest.len() >= last.len() && rest.ends_with(last)
    }
}

/// Which audit events are kept (contract §3). The default is CloudWatch's subscription pattern:
/// stage `ResponseComplete`, and the noise URIs of [`DEFAULT_EXCLUDE_URIS`] excluded.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Filter {
    /// The stages kept.
    pub stages: StageFilter,
    /// Request URIs dropped; empty drops none.
    pub exclude_uris: Vec<UriPattern>,
}

impl Default for Filter {
    fn default() -> Self {
        Filter {
            stages: StageFilter::Only(vec!["ResponseComplete".to_owned()]),
            exclude_uris: parse_uri_patterns(DEFAULT_EXCLUDE_URIS),
        }
    }
}

impl Filter {
    /// `Ok` when the event is kept, otherwise why it is dropped.
    pub fn check(&self, event: &AuditEvent<'_>) -> Result<(), DropReason> {
        if !self.stages.keeps(event.stage.as_deref()) {
            return Err(DropReason::Stage);
        }
        // As in CloudWatch, an event without `requestURI` is not excluded by `!=` comparisons.
        if let Some(uri) = event.request_uri.as_deref()
            && self.exclude_uris.iter().any(|p| p.matches(uri))
        {
            return Err(DropReason::ExcludedUri);
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn excluded(uri: &str) -> bool {
        Filter::default()
            .exclude_uris
            .iter()
            .any(|p| p.matches(uri))
    }

    #[test]
    fn default_exclusions_follow_cloudwatch_wildcards() {
        assert!(excluded("/readyz?verbose"), "/readyz* covers query strings");
        assert!(excluded("/healthz/etcd"), "/healthz* covers sub-paths");
        assert!(excluded("/livez"));
        assert!(
            excluded("/version?timeout=32s"),
            "/version?* with a literal `?`"
        );
        assert!(excluded("/version"));
        assert!(excluded("/metrics"));
        assert!(excluded("/swagger-2.0.0.pb-v1"));
        assert!(
            !excluded("/versions"),
            "/version is exact and `?` is not a wildcard"
        );
        assert!(!excluded("/metricsx"));
        assert!(!excluded("/logsearch"));
        assert!(!excluded("/api/v1/namespaces/default/pods"));
        assert!(
            !excluded("/apis/metrics.k8s.io/v1beta1/nodes"),
            "only a leading /metrics is noise"
        );
    }

    #[test]
    fn wildcard_in_the_middle_and_repeated() {
        let p = UriPattern::new("/api*/pods*");
        assert!(p.matches("/api/v1/namespaces/x/pods"));
        assert!(p.matches("/apis/pods?watch=1"));
        assert!(!p.matches("/api/v1/namespaces/x/secrets"));
        assert!(UriPattern::new("*").matches(""));
        assert!(UriPattern::new("a**b").matches("ab"));
        assert!(
            !UriPattern::new("ab*ba").matches("aba"),
            "parts may not overlap"
        );
    }

    #[test]
    fn stage_list_and_star() {
        assert_eq!(StageFilter::parse("*"), StageFilter::All);
        let only = StageFilter::parse("ResponseComplete, Panic");
        assert!(only.keeps(Some("Panic")));
        assert!(!only.keeps(Some("RequestReceived")));
        assert!(
            !only.keeps(None),
            "an event without a stage is not in any list"
        );
        assert!(StageFilter::All.keeps(None));
    }

    #[test]
    fn the_subscription_pattern_is_the_default_filter() {
        let Filter {
            stages,
            exclude_uris,
        } = Filter::default();
        assert_eq!(
            stages,
            StageFilter::Only(vec!["ResponseComplete".to_owned()])
        );
        let exclusions: String = exclude_uris
            .iter()
            .map(|uri| format!(r#" && $.requestURI != "{}""#, uri.as_str()))
            .collect();
        let expected = format!(r#"{{ $.stage = "ResponseComplete"{exclusions} }}"#);
        assert_eq!(DEFAULT_SUBSCRIPTION_PATTERN, expected);
        assert_eq!(exclude_uris.len(), DEFAULT_EXCLUDE_URIS.split(',').count());
    }

    #[test]
    fn the_templates_filter_pattern_default_is_the_subscription_pattern() {
        let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../template.yaml");
        let template = std::fs::read_to_string(&path).expect("template.yaml is readable");
        let parameter = template
            .split_once("\n  FilterPattern:\n")
            .expect("a FilterPattern parameter")
            .1;
        let default = parameter
            .lines()
            .take_while(|line| line.starts_with("    "))
            .find_map(|line| line.trim().strip_prefix("Default: "))
            .expect("FilterPattern has a Default");
        // A YAML single-quoted scalar: '' stands for '.
        let unquoted = default
            .strip_prefix('\'')
            .and_then(|d| d.strip_suffix('\''))
            .expect("single-quoted");
        assert_eq!(unquoted.replace("''", "'"), DEFAULT_SUBSCRIPTION_PATTERN);
    }
}
