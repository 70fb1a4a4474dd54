//! `--format ocsf` (contract §5): every event the forwarder writes validates against the OCSF 1.1.0
//! API Activity schema (cloud + datetime profiles), and the values users query are the ones
//! worked out by hand from the input events.

use std::path::{Path, PathBuf};

use eks_audit_core::Format;
use eks_audit_core::ProcessOptions;
use eks_audit_core::filter::{Filter, StageFilter};
use eks_audit_core::transform::{Transformed, transform};
use eks_audit_forwarder::config::Settings;
use serde_json::{Value, json};

fn fixtures() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures")
}

fn corpus(path: &str) -> PathBuf {
    fixtures().join("third-party").join(path)
}

/// Every stage and every URI, so that every event of the input comes out.
fn settings(format: Format) -> Settings {
    let filter = Filter {
        stages: StageFilter::All,
        exclude_uris: Vec::new(),
    };
    Settings {
        process: ProcessOptions {
            format,
            filter,
            ..ProcessOptions::default()
        },
        ..Settings::default()
    }
}

fn run(input: &[u8], format: Format) -> Transformed {
    transform(input.to_vec(), &settings(format).process, Some("eu-west-1")).expect("input is JSON")
}

fn lines(transformed: &Transformed) -> Vec<Value> {
    let text = std::str::from_utf8(&transformed.ndjson).expect("output is UTF-8");
    assert!(
        text.is_empty() || text.ends_with('\n'),
        "every line ends in a line break"
    );
    text.lines()
        .map(|line| serde_json::from_str(line).expect("each line is one JSON object"))
        .collect()
}

/// The OCSF events of one audit event given as JSON text.
fn ocsf_of(event: &str) -> Vec<Value> {
    lines(&run(event.as_bytes(), Format::Ocsf))
}

fn single(event: &str) -> Value {
    let mut events = ocsf_of(event);
    assert_eq!(events.len(), 1, "one audit event in, one OCSF event out");
    events.remove(0)
}

fn corpus_text(path: &str) -> String {
    std::fs::read_to_string(corpus(path)).unwrap_or_else(|e| panic!("{path}: {e}"))
}

fn corpus_line(path: &str, number: usize) -> String {
    corpus_text(path)
        .lines()
        .nth(number - 1)
        .unwrap_or_else(|| panic!("{path} has a line {number}"))
        .to_owned()
}

fn validator() -> jsonschema::Validator {
    let path = fixtures().join("ocsf/api_activity-6003-cloud-datetime-1.1.0.schema.json");
    let schema: Value =
        serde_json::from_str(&std::fs::read_to_string(&path).expect("schema is readable"))
            .expect("schema is JSON");
    jsonschema::draft202012::new(&schema).expect("schema compiles, regexes included")
}

fn errors(validator: &jsonschema::Validator, event: &Value) -> Vec<String> {
    validator
        .iter_errors(event)
        .map(|e| format!("{} at {}", e, e.instance_path()))
        .collect()
}

fn files_under(dir: &Path, found: &mut Vec<PathBuf>) {
    let mut entries: Vec<PathBuf> = std::fs::read_dir(dir)
        .expect("corpus directory is readable")
        .map(|e| e.expect("entry").path())
        .collect();
    entries.sort();
    for path in entries {
        if path.is_dir() {
            files_under(&path, found);
        } else {
            found.push(path);
        }
    }
}

/// Corpus events that OCSF cannot represent, and why (see `SOURCES.md` for the files):
/// no verb, user or source IP, or a source "IP" that is not one.
const NOT_REPRESENTABLE: [(&str, &str); 4] = [
    ("aws-samples-serverless-patterns/base-json.json", "no verb"),
    ("falco-k8s_audit/fal_01_003.json", "no verb"),
    (
        "openshift-cluster-logging-operator/test__functional__filters__apiaudit__vrl__log5607_sample.json",
        "sourceIPs[0]",
    ),
    (
        "stratus-red-team/eks.persistence.backdoor-aws-auth-configmap.snippet.json",
        "no user",
    ),
];

#[test]
fn every_corpus_event_validates_or_is_quarantined_for_a_stated_reason() {
    let validator = validator();
    let mut files = Vec::new();
    files_under(&corpus("audit-events"), &mut files);
    let mut validated = 0;
    for file in &files {
        let name = file
            .strip_prefix(corpus("audit-events"))
            .expect("under audit-events")
            .to_string_lossy()
            .into_owned();
        let input = std::fs::read(file).expect("corpus file is readable");
        if name.ends_with(".yaml") {
            // An audit policy kept next to the events it filtered, not events.
            assert!(
                transform(input, &settings(Format::Ocsf).process, None).is_err(),
                "{name} is not JSON"
            );
            continue;
        }
        let ocsf = run(&input, Format::Ocsf);
        let flat = run(&input, Format::Flat);
        let expected_problem = NOT_REPRESENTABLE
            .iter()
            .find(|(file, _)| *file == name)
            .map(|(_, why)| *why);
        match expected_problem {
            Some(why) => {
                assert_eq!(ocsf.tally.quarantined, flat.tally.quarantined + 1, "{name}");
                assert!(
                    ocsf.problems
                        .iter()
                        .any(|p| p.contains("OCSF") && p.contains(why)),
                    "{name}: {:?}",
                    ocsf.problems
                );
            }
            None => assert_eq!(
                ocsf.tally.quarantined, flat.tally.quarantined,
                "{name}: {:?}",
                ocsf.problems
            ),
        }
        // Nothing is lost: OCSF keeps what the flat schema keeps, less what it quarantines.
        assert_eq!(
            ocsf.tally.kept + ocsf.tally.quarantined,
            flat.tally.kept + flat.tally.quarantined,
            "{name}"
        );
        for event in lines(&ocsf) {
            assert_eq!(
                errors(&validator, &event),
                Vec::<String>::new(),
                "{name}: {event}"
            );
            validated += 1;
        }
    }
    // 47 falco files, audit2rbac's 37 lines, audit_in.log's 100 lines and the rest: well over
    // 200 events, so a broken reader cannot pass by producing nothing.
    assert!(validated > 200, "only {validated} events validated");
}

#[test]
fn every_sample_lambda_event_validates() {
    let validator = validator();
    let mut files = Vec::new();
    files_under(
        &Path::new(env!("CARGO_MANIFEST_DIR")).join("events"),
        &mut files,
    );
    let mut validated = 0;
    // events/eventbridge/ holds the auto-subscriber's EventBridge events, which carry no audit
    // event (tests/aws/auto_subscribe.rs runs them).
    let eventbridge = Path::new(env!("CARGO_MANIFEST_DIR")).join("events/eventbridge");
    for file in files
        .iter()
        .filter(|f| f.extension().is_some_and(|e| e == "json") && !f.starts_with(&eventbridge))
    {
        let input = std::fs::read(file).expect("sample event is readable");
        let ocsf = run(&input, Format::Ocsf);
        let flat = run(&input, Format::Flat);
        // The samples hold only representable audit events: OCSF keeps exactly what flat keeps.
        assert_eq!(ocsf.tally, flat.tally, "{}", file.display());
        for event in lines(&ocsf) {
            assert_eq!(
                errors(&validator, &event),
                Vec::<String>::new(),
                "{}: {event}",
                file.display()
            );
            validated += 1;
        }
    }
    // events/README.md: firehose 4+1+1+1+1 (with every stage and URI: 6+1+1+1+1 = 10),
    // awslogs 5, malformed awslogs 2 (the good event and the truncated one, salvaged),
    // malformed firehose 1.
    assert_eq!(validated, 18);
}

#[test]
fn the_validator_rejects_what_ocsf_forbids() {
    let validator = validator();
    let good = single(&corpus_text("audit-events/falco-k8s_audit/exec_pod.json"));
    assert!(errors(&validator, &good).is_empty());
    let mut with_null = good.clone();
    with_null["message"] = Value::Null;
    assert!(
        !errors(&validator, &with_null).is_empty(),
        "null is rejected"
    );
    let mut patch = good.clone();
    patch["http_request"]["http_method"] = json!("PATCH");
    assert!(
        !errors(&validator, &patch).is_empty(),
        "PATCH is not an OCSF 1.1.0 http_method"
    );
    let mut string_time = good.clone();
    string_time["time"] = json!("1540561114902");
    assert!(
        !errors(&validator, &string_time).is_empty(),
        "time is an integer"
    );
    let mut no_endpoint = good;
    no_endpoint
        .as_object_mut()
        .expect("object")
        .remove("src_endpoint");
    assert!(
        !errors(&validator, &no_endpoint).is_empty(),
        "src_endpoint is required"
    );
}

#[test]
fn activity_comes_from_the_verb_for_every_verb() {
    // openshift's audit_in.log has create, get, list, watch, update, patch and delete.
    let events = ocsf_of(&corpus_text(
        "audit-events/openshift-cluster-logging-operator/test__functional__filters__apiaudit__vrl__testdata__audit_in.log",
    ));
    let expected = |verb: &str| match verb {
        "create" => (1, "Create"),
        "get" | "list" | "watch" => (2, "Read"),
        "update" | "patch" => (3, "Update"),
        "delete" | "deletecollection" => (4, "Delete"),
        _ => (99, "Other"),
    };
    let mut seen = Vec::new();
    for event in &events {
        let verb = event["api"]["operation"]
            .as_str()
            .expect("operation is the verb");
        let (id, name) = expected(verb);
        assert_eq!(event["activity_id"], json!(id), "{verb}");
        assert_eq!(event["activity_name"], json!(name), "{verb}");
        if !seen.contains(&verb) {
            seen.push(verb);
        }
    }
    for verb in [
        "create", "get", "list", "watch", "update", "patch", "delete",
    ] {
        assert!(seen.contains(&verb), "audit_in.log has a {verb}");
    }
    // No corpus event has these verbs: small events built here.
    for (verb, id) in [("deletecollection", 4), ("impersonate", 99), ("head", 99)] {
        let event = single(&format!(
            r#"{{"kind":"Event","verb":"{verb}","auditID":"a","user":{{"username":"u"}},"sourceIPs":["10.0.0.1"],"stageTimestamp":"2024-05-21T10:00:00Z"}}"#
        ));
        assert_eq!(event["activity_id"], json!(id), "{verb}");
        assert_eq!(event["type_uid"], json!(600_300 + id), "{verb}");
    }
}

#[test]
fn type_uid_and_type_name_agree_with_the_activity_everywhere() {
    let mut files = Vec::new();
    files_under(&corpus("audit-events"), &mut files);
    for file in files
        .iter()
        .filter(|f| f.extension().is_some_and(|e| e != "yaml"))
    {
        for event in lines(&run(&std::fs::read(file).expect("readable"), Format::Ocsf)) {
            let id = event["activity_id"].as_i64().expect("activity_id");
            let name = event["activity_name"].as_str().expect("activity_name");
            assert_eq!(event["class_uid"], json!(6003));
            assert_eq!(event["category_uid"], json!(6));
            assert_eq!(
                event["type_uid"],
                json!(6003 * 100 + id),
                "{}",
                file.display()
            );
            assert_eq!(
                event["type_name"],
                json!(format!("API Activity: {name}")),
                "{}",
                file.display()
            );
        }
    }
}

#[test]
fn status_comes_from_the_response_code() {
    // falco exec_pod.json: `kubectl exec` answered with 101 Switching Protocols.
    let exec = single(&corpus_text("audit-events/falco-k8s_audit/exec_pod.json"));
    assert_eq!(
        (&exec["status_id"], &exec["status"], &exec["status_code"]),
        (&json!(1), &json!("Success"), &json!("101"))
    );
    assert_eq!(exec["api"]["response"]["code"], json!(101));
    // Line 1 of the exporter's lines: the lease update, 200.
    let lease = single(&corpus_line(
        "audit-events/kube-apiserver-audit-exporter/audit_test.go.exampleLines.ndjson",
        1,
    ));
    assert_eq!(
        (&lease["status_id"], &lease["status"]),
        (&json!(1), &json!("Success"))
    );
    // Line 2: the same update at RequestReceived, before any response: no code, Unknown.
    let received = single(&corpus_line(
        "audit-events/kube-apiserver-audit-exporter/audit_test.go.exampleLines.ndjson",
        2,
    ));
    assert_eq!(
        (&received["status_id"], &received["status"]),
        (&json!(0), &json!("Unknown"))
    );
    assert!(received.get("status_code").is_none());
    assert!(received["api"].get("response").is_none());
    // The anonymous `HEAD /`, 403 Forbidden.
    let anonymous = single(&corpus_text(
        "audit-events/openshift-cluster-logging-operator/hack__logsamples__raw_audit_oauth-apiserver.json",
    ));
    assert_eq!(
        (&anonymous["status_id"], &anonymous["status"]),
        (&json!(2), &json!("Failure"))
    );
    assert_eq!(
        anonymous["api"]["response"],
        json!({
            "code": 403,
            "error": "Forbidden",
            "error_message": "Failure",
            "message": "forbidden: User \"system:anonymous\" cannot head path \"/\""
        })
    );
    // No corpus event has a 5xx: a small one built here.
    let server_error = single(
        r#"{"verb":"get","auditID":"a","user":{"username":"u"},"sourceIPs":["10.0.0.1"],"stageTimestamp":"2024-05-21T10:00:00Z","responseStatus":{"code":500}}"#,
    );
    assert_eq!(
        (&server_error["status_id"], &server_error["status"]),
        (&json!(2), &json!("Failure"))
    );
}

#[test]
fn times_are_epoch_milliseconds_with_datetime_strings() {
    // falco exec_pod.json: requestReceivedTimestamp 2018-10-26T13:38:34.867116Z,
    // stageTimestamp 2018-10-26T13:38:34.902914Z. By hand: 1970-01-01 to 2018-01-01 is 48 years
    // with 12 leap days (1972..2016) = 17,532 days; Jan-Sep 2018 = 273 days, plus 25 to Oct 26
    // = 17,830 days = 1,540,512,000 s; 13:38:34 adds 49,114 s: 1,540,561,114 s. The fractions
    // add 867 and 902 whole milliseconds.
    let exec = single(&corpus_text("audit-events/falco-k8s_audit/exec_pod.json"));
    assert_eq!(exec["start_time"], json!(1_540_561_114_867_i64));
    assert_eq!(exec["start_time_dt"], json!("2018-10-26T13:38:34.867116Z"));
    assert_eq!(exec["time"], json!(1_540_561_114_902_i64));
    assert_eq!(exec["time_dt"], json!("2018-10-26T13:38:34.902914Z"));
    // audit2rbac line 1 has only the legacy `timestamp` 2017-09-11T19:55:05Z. By hand: 47 years
    // with 12 leap days = 17,167 days; Jan-Aug 2017 = 243 days, plus 10 to Sep 11 = 17,420 days
    // = 1,505,088,000 s; 19:55:05 adds 71,705 s: 1,505,159,705 s.
    let legacy = single(&corpus_line("audit-events/audit2rbac/demo.log.ndjson", 1));
    assert_eq!(legacy["time"], json!(1_505_159_705_000_i64));
    assert_eq!(legacy["time_dt"], json!("2017-09-11T19:55:05.000000Z"));
    assert!(
        legacy.get("start_time").is_none(),
        "no requestReceivedTimestamp, no start_time"
    );
}

#[test]
fn cloudwatch_time_is_the_logged_time_and_the_last_resort() {
    // A subscription message whose event has no time of its own: `time` is the CloudWatch
    // timestamp, 1716285600000 ms = 2024-05-21T10:00:00Z (19,864 days: 54 years with 13 leap
    // days = 19,723, plus Jan-Apr 2024 = 121 and 20 to May 21; 19,864 × 86,400 = 1,716,249,600
    // s, and 10 h = 36,000 s more).
    let message = json!({
        "messageType": "DATA_MESSAGE", "owner": "111122223333", "logGroup": "/aws/eks/prod-east/cluster",
        "logStream": "kube-apiserver-audit-0", "subscriptionFilters": ["f"],
        "logEvents": [{"id": "1", "timestamp": 1_716_285_600_000_i64,
            "message": r#"{"verb":"get","auditID":"a","user":{"username":"u"},"sourceIPs":["10.0.0.1"]}"#}]
    });
    let event = single(&message.to_string());
    assert_eq!(event["time"], json!(1_716_285_600_000_i64));
    assert_eq!(event["time_dt"], json!("2024-05-21T10:00:00.000000Z"));
    assert_eq!(
        event["metadata"]["logged_time"],
        json!(1_716_285_600_000_i64)
    );
    assert_eq!(
        event["metadata"]["logged_time_dt"],
        json!("2024-05-21T10:00:00.000000Z")
    );
}

#[test]
fn first_source_ip_is_the_endpoint_and_the_rest_are_intermediate() {
    // No corpus event has more than one source IP: the client, then two proxies (one IPv6),
    // and a value that is not an IP, which OCSF cannot take and `unmapped` keeps in place.
    let event = single(
        r#"{"verb":"get","auditID":"a","user":{"username":"u"},"stageTimestamp":"2024-05-21T10:00:00Z",
            "sourceIPs":["203.0.113.7","10.0.0.5","not-an-ip","2001:db8::1"]}"#,
    );
    assert_eq!(
        event["src_endpoint"],
        json!({"ip": "203.0.113.7", "intermediate_ips": ["10.0.0.5", "2001:db8::1"]})
    );
    assert_eq!(
        event["unmapped"]["sourceIPs[]"],
        json!("203.0.113.7,10.0.0.5,not-an-ip,2001:db8::1")
    );
    // audit2rbac's events come from localhost over IPv6: one IP, no intermediates.
    let local = single(&corpus_line("audit-events/audit2rbac/demo.log.ndjson", 1));
    assert_eq!(local["src_endpoint"], json!({"ip": "::1"}));
}

#[test]
fn account_region_and_cluster_come_from_the_envelope() {
    // events/firehose-eks-audit.json: account 111122223333, region eu-west-1 (the Firehose
    // event's `region`), log group /aws/eks/prod-east/cluster (events/README.md).
    let input =
        std::fs::read(Path::new(env!("CARGO_MANIFEST_DIR")).join("events/firehose-eks-audit.json"))
            .expect("sample");
    let transformed =
        transform(input, &settings(Format::Ocsf).process, Some("us-east-1")).expect("JSON");
    let events = lines(&transformed);
    assert!(!events.is_empty());
    for event in &events {
        assert_eq!(
            event["cloud"],
            json!({"provider": "AWS", "region": "eu-west-1", "account": {"uid": "111122223333"}})
        );
        assert_eq!(
            event["metadata"]["log_name"],
            json!("/aws/eks/prod-east/cluster")
        );
        assert_eq!(event["unmapped"]["eks_cluster_name"], json!("prod-east"));
        assert!(
            event["unmapped"]["cloudwatch.log_stream"]
                .as_str()
                .is_some_and(|s| s.starts_with("kube-apiserver-audit-"))
        );
    }
}

#[test]
fn iam_identity_and_authorization_decision_are_mapped() {
    // Record 3 of events/firehose-eks-audit.json: an IAM role (EKSDeveloper, session jdoe)
    // mapped by an EKS access entry reads secret default/example-secret and is forbidden
    // (scripts/make-events.py, `forbidden_secret_get` and `eks_iam_user`).
    let input =
        std::fs::read(Path::new(env!("CARGO_MANIFEST_DIR")).join("events/firehose-eks-audit.json"))
            .expect("sample");
    let events = lines(&run(&input, Format::Ocsf));
    let secret = events
        .iter()
        .find(|e| {
            e["resources"][0]["type"] == json!("secrets") && e["api"]["operation"] == json!("get")
        })
        .expect("the forbidden secret read");
    let arn = "arn:aws:sts::111122223333:assumed-role/EKSDeveloper/jdoe";
    assert_eq!(secret["actor"]["user"]["name"], json!(arn));
    assert_eq!(
        secret["actor"]["user"]["uid"],
        json!("aws-iam-authenticator:111122223333:AROAYEXAMPLEDEVROLE01")
    );
    assert_eq!(
        secret["actor"]["user"]["uid_alt"],
        json!("AROAYEXAMPLEDEVROLE01")
    );
    assert_eq!(
        secret["actor"]["user"]["groups"],
        json!([{"name": "system:authenticated"}])
    );
    assert_eq!(
        secret["actor"]["session"],
        json!({"credential_uid": "ASIAYEXAMPLEKEY00002", "issuer": "arn:aws:iam::111122223333:role/EKSDeveloper", "uid": "jdoe"})
    );
    // The reason is empty in the source event, so there is no policy to name.
    assert_eq!(
        secret["actor"]["authorizations"],
        json!([{"decision": "forbid"}])
    );
    assert_eq!(
        secret["unmapped"]["annotations.authorization.k8s.io/decision"],
        json!("forbid")
    );
    assert_eq!(secret["unmapped"]["user.extra.arn[]"], json!(arn));
    assert_eq!(
        secret["resources"],
        json!([{"name": "example-secret", "type": "secrets", "namespace": "default"}])
    );
    assert_eq!(secret["status_id"], json!(2));
}

#[test]
fn requests_on_collections_name_the_collection_and_keep_the_impersonated_user() {
    // audit2rbac line 1: system:admin, impersonating bob, lists pods in default (403).
    let event = single(&corpus_line("audit-events/audit2rbac/demo.log.ndjson", 1));
    assert_eq!(
        event["resources"],
        json!([{"name": "pods", "type": "pods", "namespace": "default"}])
    );
    assert_eq!(event["actor"]["user"]["name"], json!("system:admin"));
    assert_eq!(event["unmapped"]["impersonatedUser.username"], json!("bob"));
    assert_eq!(
        event["unmapped"]["impersonatedUser.groups[]"],
        json!("system:authenticated")
    );
    assert_eq!(
        event["http_request"]["url"],
        json!({"path": "/api/v1/namespaces/default/pods"})
    );
    assert_eq!(event["api"]["version"], json!("v1"));
    assert!(
        event["api"].get("group").is_none(),
        "the core API group is empty"
    );
    // exec: the subresource joins the resource type; the query string is split from the path.
    let exec = single(&corpus_text("audit-events/falco-k8s_audit/exec_pod.json"));
    assert_eq!(exec["resources"][0]["type"], json!("pods/exec"));
    assert_eq!(
        exec["resources"][0]["name"],
        json!("nginx-deployment-7998647bdf-phvq7")
    );
    assert_eq!(
        exec["http_request"]["url"]["query_string"],
        json!("command=bash&container=nginx1&container=nginx1&stdin=true&stdout=true&tty=true")
    );
    assert_eq!(exec["message"], json!("ResponseStarted"));
}

#[test]
fn bodies_are_embedded_as_json_text_and_metadata_names_the_product() {
    // falco create_configmap.json: RequestResponse level, so both bodies are in the event.
    let text = corpus_text("audit-events/falco-k8s_audit/create_configmap.json");
    let original: Value = serde_json::from_str(&text).expect("JSON");
    let event = single(&text);
    let request: Value =
        serde_json::from_str(event["api"]["request"]["data"].as_str().expect("a string"))
            .expect("JSON text");
    let response: Value =
        serde_json::from_str(event["api"]["response"]["data"].as_str().expect("a string"))
            .expect("JSON text");
    assert_eq!(request, original["requestObject"]);
    assert_eq!(response, original["responseObject"]);
    assert_eq!(event["api"]["request"]["uid"], original["auditID"]);
    assert_eq!(event["metadata"]["uid"], original["auditID"]);
    assert_eq!(event["metadata"]["log_level"], json!("RequestResponse"));
    assert_eq!(event["metadata"]["version"], json!("1.1.0"));
    assert_eq!(event["metadata"]["profiles"], json!(["cloud", "datetime"]));
    assert_eq!(
        event["metadata"]["product"],
        json!({"name": "Amazon EKS", "vendor_name": "AWS", "feature": {"name": "Elastic Kubernetes Service"}})
    );
    assert!(
        event.get("raw_data").is_none(),
        "the original event is not repeated"
    );
    assert_eq!(
        (&event["severity_id"], &event["severity"]),
        (&json!(1), &json!("Informational"))
    );
}

#[test]
fn strings_too_long_for_ocsf_move_to_unmapped() {
    // A client chooses its User-Agent; kube-apiserver logs it whole. OCSF strings hold at most
    // 65,535 characters, so 70,000 of them go to `unmapped` under the attribute's path.
    let agent = "a".repeat(70_000);
    let event = single(&format!(
        r#"{{"verb":"get","auditID":"a","user":{{"username":"u"}},"sourceIPs":["10.0.0.1"],"stageTimestamp":"2024-05-21T10:00:00Z","requestURI":"/api","userAgent":"{agent}"}}"#
    ));
    assert!(errors(&validator(), &event).is_empty());
    assert_eq!(event["http_request"], json!({"url": {"path": "/api"}}));
    assert_eq!(
        event["unmapped"]["http_request.user_agent"]
            .as_str()
            .map(str::len),
        Some(70_000)
    );
    // A verb that long cannot be the operation: the event is quarantined, not cut.
    let verb = "v".repeat(70_000);
    let transformed = run(
        format!(r#"{{"verb":"{verb}","user":{{"username":"u"}},"sourceIPs":["10.0.0.1"],"stageTimestamp":"2024-05-21T10:00:00Z"}}"#)
            .as_bytes(),
        Format::Ocsf,
    );
    assert_eq!(
        (transformed.tally.kept, transformed.tally.quarantined),
        (0, 1)
    );
    assert!(
        transformed.problems[0].contains("longer than OCSF allows"),
        "{:?}",
        transformed.problems
    );
}
