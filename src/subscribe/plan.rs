//! What `eks-audit subscribe` does to one log group, decided from what is already there
//! (pure: no client, no clock).
//!
//! CloudWatch Logs allows at most [`MAX_FILTERS_PER_GROUP`] subscription filters on a log group,
//! and `PutSubscriptionFilter` with the name of an existing filter replaces that filter. So:
//!
//! | on the log group | action |
//! |---|---|
//! | our filter, as wanted | [`Action::Unchanged`] |
//! | our filter, with another destination, pattern or role | [`Action::Update`] (same name: replaced in place) |
//! | no filter of ours, another filter already delivering to our destination | [`Action::AlreadyDelivered`]: a second one would deliver every event twice |
//! | no filter of ours, a free slot | [`Action::Create`], other filters kept |
//! | no filter of ours, both slots taken by others | [`Action::NoFreeSlot`], nothing touched |
//!
//! Filters of other names are never changed; they are reported with the action.
//!
//! <https://docs.aws.amazon.com/AmazonCloudWatchLogs/latest/APIReference/API_PutSubscriptionFilter.html>

use std::fmt;

/// CloudWatch Logs' limit of subscription filters per log group (not adjustable).
/// <https://docs.aws.amazon.com/AmazonCloudWatch/latest/logs/cloudwatch_limits_cwl.html>
pub const MAX_FILTERS_PER_GROUP: usize = 2;

/// The name `subscribe` gives its filter unless told otherwise.
pub const DEFAULT_FILTER_NAME: &str = "eks-audit-forwarder";

/// A subscription filter: the one `subscribe` wants, or one found on a log group
/// (`DescribeSubscriptionFilters`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FilterSpec {
    /// The filter's name, unique on its log group.
    pub name: String,
    /// Where it delivers: a Firehose delivery stream, a Kinesis stream, a Lambda function or a
    /// CloudWatch Logs destination.
    pub destination_arn: String,
    /// The role CloudWatch Logs assumes to deliver (Firehose and Kinesis destinations).
    pub role_arn: Option<String>,
    /// The filter pattern; empty = every event.
    pub pattern: String,
}

/// A setting of our filter that differs from the wanted one.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Field {
    /// The destination ARN.
    Destination,
    /// The filter pattern.
    Pattern,
    /// The role CloudWatch Logs assumes to deliver.
    Role,
}

impl fmt::Display for Field {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Field::Destination => "destination",
            Field::Pattern => "filter pattern",
            Field::Role => "role",
        })
    }
}

/// What to do to one log group.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Action {
    /// Our filter is there as wanted.
    Unchanged,
    /// No filter of ours and a free slot: put it.
    Create,
    /// Our filter is there but these settings differ: put it again under the same name.
    Update {
        /// The settings that differ, in the order destination, pattern, role.
        changed: Vec<Field>,
    },
    /// No filter of ours, but the filter named here already delivers to our destination (for
    /// example the one the SAM stack created): nothing is added.
    AlreadyDelivered {
        /// The name of the filter that delivers there.
        by: String,
    },
    /// No filter of ours and both slots taken by other filters: nothing is touched.
    NoFreeSlot,
}

impl Action {
    /// Whether the log group ends up delivering to the destination.
    pub fn is_subscribed(&self) -> bool {
        !matches!(self, Action::NoFreeSlot)
    }

    /// The state a report or table row shows: `created`, `unchanged`, `updated`, `already
    /// delivered` or `no free slot`.
    pub fn state(&self) -> &'static str {
        match self {
            Action::Unchanged => "unchanged",
            Action::Create => "created",
            Action::Update { .. } => "updated",
            Action::AlreadyDelivered { .. } => "already delivered",
            Action::NoFreeSlot => "no free slot",
        }
    }

    /// Whether the action calls `PutSubscriptionFilter`.
    pub fn puts(&self) -> bool {
        matches!(self, Action::Create | Action::Update { .. })
    }
}

/// The action for one log group, and the filters of other names on it (kept as they are).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Plan {
    /// What to do.
    pub action: Action,
    /// The filters of other names on the log group, left as they are.
    pub others: Vec<FilterSpec>,
}

/// Decides what to do to a log group holding `existing` filters so that it holds `desired`.
pub fn plan(existing: &[FilterSpec], desired: &FilterSpec) -> Plan {
    let others: Vec<FilterSpec> = existing
        .iter()
        .filter(|f| f.name != desired.name)
        .cloned()
        .collect();
    let action = match existing.iter().find(|f| f.name == desired.name) {
        Some(ours) => match differences(ours, desired) {
            changed if changed.is_empty() => Action::Unchanged,
            changed => Action::Update { changed },
        },
        None => match others
            .iter()
            .find(|f| f.destination_arn == desired.destination_arn)
        {
            Some(same) => Action::AlreadyDelivered {
                by: same.name.clone(),
            },
            None if others.len() >= MAX_FILTERS_PER_GROUP => Action::NoFreeSlot,
            None => Action::Create,
        },
    };
    Plan { action, others }
}

/// The settings of `found` that differ from `wanted`, names aside. A missing role and an empty
/// one are the same.
pub fn differences(found: &FilterSpec, wanted: &FilterSpec) -> Vec<Field> {
    let role = |f: &FilterSpec| f.role_arn.clone().filter(|r| !r.is_empty());
    let mut changed = Vec::new();
    if found.destination_arn != wanted.destination_arn {
        changed.push(Field::Destination);
    }
    if found.pattern != wanted.pattern {
        changed.push(Field::Pattern);
    }
    if role(found) != role(wanted) {
        changed.push(Field::Role);
    }
    changed
}

/// Why a destination cannot be used as given; checked before any call.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DestinationError {
    /// Not of the form `arn:partition:service:region:account:resource`.
    #[error(
        "--destination-arn {0:?} is not an ARN (arn:partition:service:region:account:resource)"
    )]
    NotAnArn(String),
    /// A Firehose or Kinesis destination without `--role-arn`.
    #[error(
        "--destination-arn {arn} is a {service} destination: CloudWatch Logs needs --role-arn, a role it may assume to put records into it (the stack's SubscriptionRoleArn output)"
    )]
    RoleRequired {
        /// The destination ARN.
        arn: String,
        /// `Firehose` or `Kinesis`.
        service: &'static str,
    },
    /// The destination is in another region than the log groups.
    #[error(
        "--destination-arn {arn} is in region {destination_region}, the log groups in {region}: a subscription delivers within its region"
    )]
    OtherRegion {
        /// The destination ARN.
        arn: String,
        /// The destination's region.
        destination_region: String,
        /// The log groups' region.
        region: String,
    },
}

/// Checks what AWS would reject with a less helpful message: a Firehose or Kinesis destination
/// without a role, a destination in another region than the log groups (`region`, when known).
/// A CloudWatch Logs destination (`arn:…:logs:…:destination:…`, cross-account) and a Lambda
/// function need no role.
pub fn check_destination(
    arn: &str,
    role_arn: Option<&str>,
    region: Option<&str>,
) -> Result<(), DestinationError> {
    let parts: Vec<&str> = arn.splitn(6, ':').collect();
    let [
        scheme,
        _partition,
        service,
        destination_region,
        _account,
        resource,
    ] = parts[..]
    else {
        return Err(DestinationError::NotAnArn(arn.to_owned()));
    };
    if scheme != "arn" || service.is_empty() || resource.is_empty() {
        return Err(DestinationError::NotAnArn(arn.to_owned()));
    }
    let needs_role = match service {
        "firehose" => Some("Firehose"),
        "kinesis" => Some("Kinesis"),
        _ => None,
    };
    if let Some(service) = needs_role
        && role_arn.is_none_or(str::is_empty)
    {
        return Err(DestinationError::RoleRequired {
            arn: arn.to_owned(),
            service,
        });
    }
    if let Some(region) = region
        && !destination_region.is_empty()
        && destination_region != region
    {
        return Err(DestinationError::OtherRegion {
            arn: arn.to_owned(),
            destination_region: destination_region.to_owned(),
            region: region.to_owned(),
        });
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    const STREAM: &str = "arn:aws:firehose:us-east-1:111122223333:deliverystream/eks-audit";
    const OTHER_STREAM: &str = "arn:aws:firehose:us-east-1:111122223333:deliverystream/splunk";
    const ROLE: &str = "arn:aws:iam::111122223333:role/cwl-to-firehose";

    fn filter(name: &str, destination: &str) -> FilterSpec {
        FilterSpec {
            name: name.to_owned(),
            destination_arn: destination.to_owned(),
            role_arn: Some(ROLE.to_owned()),
            pattern: eks_audit_core::filter::DEFAULT_SUBSCRIPTION_PATTERN.to_owned(),
        }
    }

    fn desired() -> FilterSpec {
        filter(DEFAULT_FILTER_NAME, STREAM)
    }

    fn names(filters: &[FilterSpec]) -> Vec<&str> {
        filters.iter().map(|f| f.name.as_str()).collect()
    }

    #[test]
    fn an_empty_log_group_gets_our_filter() {
        assert_eq!(
            plan(&[], &desired()),
            Plan {
                action: Action::Create,
                others: vec![]
            }
        );
    }

    #[test]
    fn our_filter_as_wanted_is_unchanged() {
        let plan = plan(&[desired()], &desired());
        assert_eq!(plan.action, Action::Unchanged);
        assert!(plan.others.is_empty());
        assert!(!plan.action.puts());
    }

    #[test]
    fn our_filter_beside_a_foreign_one_is_unchanged_and_the_other_reported() {
        let splunk = filter("splunk", OTHER_STREAM);
        let plan = plan(&[splunk.clone(), desired()], &desired());
        assert_eq!(plan.action, Action::Unchanged);
        assert_eq!(plan.others, vec![splunk]);
    }

    #[test]
    fn our_filter_with_another_destination_is_updated_in_place() {
        let ours = filter(DEFAULT_FILTER_NAME, OTHER_STREAM);
        let plan = plan(&[ours], &desired());
        assert_eq!(
            plan.action,
            Action::Update {
                changed: vec![Field::Destination]
            }
        );
        assert!(plan.action.puts());
    }

    #[test]
    fn each_differing_setting_is_named() {
        let mut ours = filter(DEFAULT_FILTER_NAME, OTHER_STREAM);
        ours.pattern = String::new();
        ours.role_arn = None;
        let plan = plan(&[ours], &desired());
        assert_eq!(
            plan.action,
            Action::Update {
                changed: vec![Field::Destination, Field::Pattern, Field::Role]
            }
        );
    }

    #[test]
    fn our_filter_is_updated_even_when_both_slots_are_used() {
        // The update reuses our own slot, so a foreign filter in the other does not block it.
        let mut ours = desired();
        ours.pattern = "{ $.verb = \"create\" }".to_owned();
        let plan = plan(&[filter("splunk", OTHER_STREAM), ours], &desired());
        assert_eq!(
            plan.action,
            Action::Update {
                changed: vec![Field::Pattern]
            }
        );
        assert_eq!(names(&plan.others), ["splunk"]);
    }

    #[test]
    fn a_missing_role_equals_an_empty_one() {
        let mut wanted = desired();
        wanted.role_arn = None;
        let mut ours = desired();
        ours.role_arn = Some(String::new());
        assert_eq!(plan(&[ours], &wanted).action, Action::Unchanged);
    }

    #[test]
    fn a_foreign_filter_is_kept_and_ours_added_in_the_free_slot() {
        let splunk = filter("splunk", OTHER_STREAM);
        let plan = plan(std::slice::from_ref(&splunk), &desired());
        assert_eq!(plan.action, Action::Create);
        assert_eq!(plan.others, vec![splunk]);
    }

    #[test]
    fn two_foreign_filters_leave_no_free_slot() {
        let existing = [
            filter("splunk", OTHER_STREAM),
            filter(
                "datadog",
                "arn:aws:lambda:us-east-1:111122223333:function:dd",
            ),
        ];
        let plan = plan(&existing, &desired());
        assert_eq!(plan.action, Action::NoFreeSlot);
        assert_eq!(names(&plan.others), ["splunk", "datadog"]);
        assert!(!plan.action.is_subscribed());
        assert!(!plan.action.puts());
    }

    #[test]
    fn a_foreign_filter_to_our_destination_is_not_doubled() {
        // The SAM stack's filters have generated names: subscribing the same cluster again with
        // `subscribe` must not deliver every event twice.
        let stack = filter("eks-audit-FirehoseSubscriptionprod-1X2Y3Z", STREAM);
        let plan = plan(std::slice::from_ref(&stack), &desired());
        assert_eq!(
            plan.action,
            Action::AlreadyDelivered {
                by: stack.name.clone()
            }
        );
        assert!(plan.action.is_subscribed());
        assert!(!plan.action.puts());
    }

    #[test]
    fn a_foreign_filter_to_our_destination_wins_over_a_full_log_group() {
        let existing = [filter("splunk", OTHER_STREAM), filter("stack-made", STREAM)];
        assert_eq!(
            plan(&existing, &desired()).action,
            Action::AlreadyDelivered {
                by: "stack-made".to_owned()
            }
        );
    }

    #[test]
    fn our_name_decides_ours_even_with_a_foreign_filter_to_the_same_destination() {
        let existing = [filter("stack-made", STREAM), desired()];
        let plan = plan(&existing, &desired());
        assert_eq!(plan.action, Action::Unchanged);
        assert_eq!(names(&plan.others), ["stack-made"]);
    }

    #[test]
    fn a_firehose_or_kinesis_destination_needs_a_role() {
        assert_eq!(
            check_destination(STREAM, None, None),
            Err(DestinationError::RoleRequired {
                arn: STREAM.to_owned(),
                service: "Firehose"
            })
        );
        let kinesis = "arn:aws:kinesis:us-east-1:111122223333:stream/audit";
        assert!(matches!(
            check_destination(kinesis, Some(""), None),
            Err(DestinationError::RoleRequired { .. })
        ));
        assert_eq!(
            check_destination(STREAM, Some(ROLE), Some("us-east-1")),
            Ok(())
        );
    }

    #[test]
    fn a_lambda_or_logs_destination_needs_no_role() {
        assert_eq!(
            check_destination(
                "arn:aws:lambda:us-east-1:111122223333:function:fwd",
                None,
                Some("us-east-1")
            ),
            Ok(())
        );
        let cross_account = "arn:aws:logs:us-east-1:444455556666:destination:eks-audit";
        assert_eq!(
            check_destination(cross_account, None, Some("us-east-1")),
            Ok(())
        );
    }

    #[test]
    fn a_destination_in_another_region_is_refused() {
        assert!(matches!(
            check_destination(STREAM, Some(ROLE), Some("eu-west-1")),
            Err(DestinationError::OtherRegion { destination_region, .. }) if destination_region == "us-east-1"
        ));
    }

    #[test]
    fn a_destination_that_is_not_an_arn_is_refused() {
        for bad in [
            "eks-audit",
            "arn:aws:firehose",
            "urn:aws:lambda:us-east-1:1:function:f",
            "arn:aws::us-east-1:1:x",
        ] {
            assert_eq!(
                check_destination(bad, Some(ROLE), None),
                Err(DestinationError::NotAnArn(bad.to_owned())),
                "{bad}"
            );
        }
    }
}
