//! The enumerations of OCSF 1.1.0 API Activity (6003) that are derived from the audit event:
//! the activity from the Kubernetes verb, the status from the HTTP response code.
//!
//! The public ocsf/examples mapping gets these wrong (its verb table misses `list`, `deletecollection`
//! and every verb outside it; it has no status at all), so they are spelled out here once, as
//! contract §5 states them.

/// `class_uid` of API Activity.
pub const CLASS_UID: i64 = 6003;
/// `class_name` of API Activity.
pub const CLASS_NAME: &str = "API Activity";
/// `category_uid` of Application Activity.
pub const CATEGORY_UID: i64 = 6;
/// `category_name` of Application Activity.
pub const CATEGORY_NAME: &str = "Application Activity";

/// `activity_id`: what the API call did, from the Kubernetes verb.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Activity {
    /// 1: `create`.
    Create,
    /// 2: `get`, `list`, `watch`.
    Read,
    /// 3: `update`, `patch`.
    Update,
    /// 4: `delete`, `deletecollection`.
    Delete,
    /// Any verb outside the CRUD ones: `impersonate`, `escalate`, `bind`, `approve`, `use`,
    /// non-resource methods such as `head`, and custom verbs.
    Other,
}

impl Activity {
    /// `create`→Create; `get`, `list`, `watch`→Read; `update`, `patch`→Update;
    /// `delete`, `deletecollection`→Delete; anything else→Other. Verbs are lowercase in audit
    /// events, and matched exactly.
    pub fn from_verb(verb: &str) -> Activity {
        match verb {
            "create" => Activity::Create,
            "get" | "list" | "watch" => Activity::Read,
            "update" | "patch" => Activity::Update,
            "delete" | "deletecollection" => Activity::Delete,
            _ => Activity::Other,
        }
    }

    /// `activity_id`: 1–4, or 99 for Other.
    pub fn id(self) -> i64 {
        match self {
            Activity::Create => 1,
            Activity::Read => 2,
            Activity::Update => 3,
            Activity::Delete => 4,
            Activity::Other => 99,
        }
    }

    /// `activity_name`, the caption of [`Activity::id`].
    pub fn name(self) -> &'static str {
        match self {
            Activity::Create => "Create",
            Activity::Read => "Read",
            Activity::Update => "Update",
            Activity::Delete => "Delete",
            Activity::Other => "Other",
        }
    }

    /// `type_uid` = `class_uid` × 100 + `activity_id`.
    pub fn type_uid(self) -> i64 {
        CLASS_UID * 100 + self.id()
    }

    /// `type_name` = `"<class name>: <activity name>"`.
    pub fn type_name(self) -> String {
        format!("{CLASS_NAME}: {}", self.name())
    }
}

/// `status_id`: whether the API call succeeded, from `responseStatus.code`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Status {
    /// No code, or one outside 100–599.
    Unknown,
    /// 100–399: informational, success and redirection (101 Switching Protocols is how
    /// `exec`, `attach` and `port-forward` start).
    Success,
    /// 400–599: client and server errors.
    Failure,
}

impl Status {
    /// The status of `responseStatus.code`; no code, or one outside 100–599, is Unknown.
    pub fn from_code(code: Option<i64>) -> Status {
        match code {
            Some(100..=399) => Status::Success,
            Some(400..=599) => Status::Failure,
            _ => Status::Unknown,
        }
    }

    /// `status_id`: 0 Unknown, 1 Success, 2 Failure.
    pub fn id(self) -> i64 {
        match self {
            Status::Unknown => 0,
            Status::Success => 1,
            Status::Failure => 2,
        }
    }

    /// `status`, the caption of [`Status::id`].
    pub fn name(self) -> &'static str {
        match self {
            Status::Unknown => "Unknown",
            Status::Success => "Success",
            Status::Failure => "Failure",
        }
    }
}

/// `severity_id` 1, Informational: an audit record says what happened, not how bad it is;
/// rating it is the job of the detections that read it (and what Security Lake's source does).
pub const SEVERITY_ID: i64 = 1;
/// `severity`, the caption of [`SEVERITY_ID`].
pub const SEVERITY: &str = "Informational";

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_kubernetes_verb_has_its_activity() {
        let table = [
            ("create", 1, "Create"),
            ("get", 2, "Read"),
            ("list", 2, "Read"),
            ("watch", 2, "Read"),
            ("update", 3, "Update"),
            ("patch", 3, "Update"),
            ("delete", 4, "Delete"),
            ("deletecollection", 4, "Delete"),
            ("impersonate", 99, "Other"),
            ("head", 99, "Other"),
            ("CREATE", 99, "Other"),
        ];
        for (verb, id, name) in table {
            let activity = Activity::from_verb(verb);
            assert_eq!((activity.id(), activity.name()), (id, name), "verb {verb}");
            assert_eq!(activity.type_uid(), 600_300 + id, "verb {verb}");
            assert_eq!(
                activity.type_name(),
                format!("API Activity: {name}"),
                "verb {verb}"
            );
        }
    }

    #[test]
    fn status_follows_the_http_code_class() {
        let table = [
            (Some(101), Status::Success),
            (Some(200), Status::Success),
            (Some(304), Status::Success),
            (Some(399), Status::Success),
            (Some(400), Status::Failure),
            (Some(403), Status::Failure),
            (Some(500), Status::Failure),
            (Some(599), Status::Failure),
            (Some(0), Status::Unknown),
            (Some(600), Status::Unknown),
            (None, Status::Unknown),
        ];
        for (code, status) in table {
            assert_eq!(Status::from_code(code), status, "code {code:?}");
        }
        assert_eq!(
            (
                Status::Unknown.id(),
                Status::Success.id(),
                Status::Failure.id()
            ),
            (0, 1, 2)
        );
    }
}
