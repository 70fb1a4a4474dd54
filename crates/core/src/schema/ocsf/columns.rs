//! The Arrow schema of the OCSF events [`super::write`] produces, with the column types of
//! Amazon Security Lake's OCSF tables: OCSF integers as `int32`, `long_t` (`type_uid` and the
//! epoch-millisecond times) as `int64`, `*_dt` as timestamps in UTC, objects as structs, lists
//! of objects as lists of structs, and `unmapped` as `map<string,string>`.
//!
//! It names exactly the attributes the writer can emit, so a JSON line decodes into it without
//! losing a field (`tests/security_lake.rs` reads Parquet back and compares with the JSON).
//! Every column is nullable: absent attributes are left out of the JSON and become nulls.

use std::sync::Arc;

use arrow_schema::{DataType, Field, Fields, Schema, SchemaRef, TimeUnit};

fn text(name: &str) -> Field {
    Field::new(name, DataType::Utf8, true)
}

fn int(name: &str) -> Field {
    Field::new(name, DataType::Int32, true)
}

fn long(name: &str) -> Field {
    Field::new(name, DataType::Int64, true)
}

/// `*_dt`: the datetime profile's RFC 3339 strings, stored as timestamps with the microsecond
/// precision of Kubernetes audit times. The zone is written as the offset `+00:00`, which
/// Arrow resolves without a time-zone database; Parquet stores it as adjusted to UTC.
fn datetime(name: &str) -> Field {
    Field::new(
        name,
        DataType::Timestamp(TimeUnit::Microsecond, Some("+00:00".into())),
        true,
    )
}

fn object(name: &str, fields: Vec<Field>) -> Field {
    Field::new(name, DataType::Struct(Fields::from(fields)), true)
}

fn list(name: &str, item: DataType) -> Field {
    Field::new(
        name,
        DataType::List(Arc::new(Field::new("element", item, true))),
        true,
    )
}

fn list_of(name: &str, fields: Vec<Field>) -> Field {
    list(name, DataType::Struct(Fields::from(fields)))
}

fn named(name: &str) -> Field {
    object(name, vec![text("name")])
}

/// The schema of one OCSF API Activity event as written by this crate.
pub fn schema() -> SchemaRef {
    let metadata = object(
        "metadata",
        vec![
            text("version"),
            list("profiles", DataType::Utf8),
            object(
                "product",
                vec![
                    text("name"),
                    text("vendor_name"),
                    named("feature"),
                    text("version"),
                ],
            ),
            text("uid"),
            text("log_level"),
            text("log_name"),
            text("log_provider"),
            long("logged_time"),
            datetime("logged_time_dt"),
        ],
    );
    let cloud = object(
        "cloud",
        vec![
            text("provider"),
            text("region"),
            object("account", vec![text("uid")]),
        ],
    );
    let actor = object(
        "actor",
        vec![
            object(
                "user",
                vec![
                    text("name"),
                    text("uid"),
                    text("uid_alt"),
                    int("type_id"),
                    list_of("groups", vec![text("name")]),
                ],
            ),
            object(
                "session",
                vec![text("credential_uid"), text("issuer"), text("uid")],
            ),
            list_of("authorizations", vec![text("decision"), named("policy")]),
        ],
    );
    let api = object(
        "api",
        vec![
            text("operation"),
            text("version"),
            named("group"),
            object("request", vec![text("uid"), text("data")]),
            object(
                "response",
                vec![
                    int("code"),
                    text("error"),
                    text("error_message"),
                    text("message"),
                    text("data"),
                ],
            ),
        ],
    );
    let http_request = object(
        "http_request",
        vec![
            object("url", vec![text("path"), text("query_string")]),
            text("user_agent"),
        ],
    );
    let src_endpoint = object(
        "src_endpoint",
        vec![text("ip"), list("intermediate_ips", DataType::Utf8)],
    );
    let resources = list_of(
        "resources",
        vec![
            text("name"),
            text("uid"),
            text("type"),
            text("namespace"),
            text("version"),
        ],
    );
    let unmapped = Field::new_map(
        "unmapped",
        "key_value",
        Field::new("key", DataType::Utf8, false),
        Field::new("value", DataType::Utf8, true),
        false,
        true,
    );
    Arc::new(Schema::new(vec![
        int("class_uid"),
        text("class_name"),
        int("category_uid"),
        text("category_name"),
        int("activity_id"),
        text("activity_name"),
        long("type_uid"),
        text("type_name"),
        int("severity_id"),
        text("severity"),
        int("status_id"),
        text("status"),
        text("status_code"),
        long("time"),
        datetime("time_dt"),
        long("start_time"),
        datetime("start_time_dt"),
        text("message"),
        metadata,
        cloud,
        actor,
        api,
        http_request,
        src_endpoint,
        resources,
        unmapped,
    ]))
}
