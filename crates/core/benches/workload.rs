//! Realistic Firehose transformation events for the benchmarks and the performance scripts.
//!
//! Shared by `benches/throughput.rs` (built in-process) and `examples/make-workload.rs` (writes
//! the event to a file for `scripts/bench-*.sh` and `scripts/compare-python.sh`).
//!
//! The audit events mimic the shapes of the real ones in `tests/fixtures/third-party/audit-events`
//! (`eks-security-immersion-day/log-insights-result-1.json` and
//! `kube-apiserver-audit-exporter/` for EKS controller and lease traffic, `falco-k8s_audit/` for
//! `RequestResponse` bodies, exec and pods, `audit2rbac/` for forbidden reads,
//! `stratus-red-team/` for the `aws-auth` ConfigMap) with Go's JSON encoding (`&`, `<`, `>` as
//! `\u0026`...). A seeded PRNG varies every UID, timestamp, IP, resourceVersion, name and value,
//! so gzip compresses them about as well as real audit logs (4–10x) instead of the 100x of
//! repeated text. The mix, by count:
//!
//! - controllers, kubelets and EKS components: lease updates, get/list/watch with small bodies,
//!   node status patches, `Event` creates (a few hundred bytes to a few KB);
//! - `RequestReceived` stage events and `/readyz`, `/livez`, `/healthz`, `/metrics` probes, which
//!   the default filter drops;
//! - IAM-mapped humans (`user.extra.arn`) creating and patching deployments and configmaps at
//!   `RequestResponse` level (5–300 KB), and listing pods (up to a few hundred KB);
//! - `kubectl exec`, forbidden secret reads, non-ASCII text in annotations, data and messages.
//!
//! Records are CloudWatch Logs subscription deliveries (one gzip `DATA_MESSAGE` each) from three
//! clusters' `/aws/eks/<cluster>/cluster` groups and `kube-apiserver-audit-<hex>` streams, plus
//! the `CONTROL_MESSAGE` a new subscription sends first.

#![allow(dead_code)]

use std::fmt::Write as _;
use std::io::Write as _;

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use flate2::Compression;
use flate2::write::GzEncoder;

/// The seed of every generated workload: the same size always gives the same bytes.
pub const SEED: u64 = 0x5eed_0e45_a0d1_7001;

/// How big a generated event is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Size {
    /// About this many bytes of record data (gzip) in all: Firehose's processor buffer counts these.
    Data(usize),
    /// The whole event JSON stays under this many bytes (Lambda's request limit is 6 MB).
    Request(usize),
}

impl Size {
    /// 1 MiB of record data: Firehose's default 1 MB processing buffer.
    pub const TYPICAL: Size = Size::Data(1 << 20);
    /// The largest request Firehose sends a transformation Lambda (6 MB, under 6,291,456 bytes).
    pub const MAX: Size = Size::Request(6_000_000);
    /// Small enough for benches in test mode (`cargo test --all-targets`).
    pub const SMALL: Size = Size::Data(24 << 10);

    /// `typical` or `1mb`, `max` or `6mb`, `small`, or `<N>kb` of record data.
    pub fn parse(text: &str) -> Result<Size, String> {
        match text.to_ascii_lowercase().as_str() {
            "typical" | "1mb" => Ok(Size::TYPICAL),
            "max" | "6mb" => Ok(Size::MAX),
            "small" => Ok(Size::SMALL),
            other => other
                .strip_suffix("kb")
                .and_then(|n| n.parse::<usize>().ok())
                .map(|kb| Size::Data(kb << 10))
                .ok_or_else(|| {
                    format!(
                        "unknown size {text:?}: expected typical, 1mb, max, 6mb, small or <N>kb"
                    )
                }),
        }
    }
}

/// A generated Firehose transformation event and what is inside it.
pub struct Workload {
    /// The event as the Lambda receives it.
    pub event: String,
    /// Each record's subscription message, decompressed (what `decompress` yields).
    pub payloads: Vec<Vec<u8>>,
    /// Each record's gzip bytes (what `decode_base64` yields).
    pub gzips: Vec<Vec<u8>>,
    pub log_events: usize,
    pub gzip_bytes: usize,
    pub decompressed_bytes: usize,
}

impl Workload {
    pub fn records(&self) -> usize {
        self.payloads.len()
    }

    pub fn compression_ratio(&self) -> f64 {
        self.decompressed_bytes as f64 / self.gzip_bytes.max(1) as f64
    }

    pub fn summary(&self) -> String {
        format!(
            "{} records, {} log events, event JSON {} bytes, record data {} bytes gzip -> {} bytes decompressed (compression ratio {:.1}x)",
            self.records(),
            self.log_events,
            self.event.len(),
            self.gzip_bytes,
            self.decompressed_bytes,
            self.compression_ratio()
        )
    }
}

pub const REGION: &str = "eu-west-1";
const STREAM_ARN: &str = "arn:aws:firehose:eu-west-1:111122223333:deliverystream/eks-audit";
/// Cluster, account, share of the records (of 10).
const CLUSTERS: [(&str, &str, u64); 3] = [
    ("prod-east", "111122223333", 5),
    ("prod-west", "111122223333", 3),
    ("staging", "444455556666", 2),
];
/// Bytes of event JSON around each record besides its data.
const RECORD_OVERHEAD: usize = 160;

/// Generates the event for `size` from [`SEED`].
pub fn generate(size: Size) -> Workload {
    let mut rng = Rng::new(SEED);
    let mut clock = Clock {
        micros: 1_716_285_600_000_000,
    }; // 2024-05-21T10:00:00Z
    let streams: Vec<(usize, String)> = (0..CLUSTERS.len())
        .flat_map(|c| [0, 1].map(|_| (c, format!("kube-apiserver-audit-{}", rng.hex(32)))))
        .collect();
    let mut sites: Vec<Site> = (0..CLUSTERS.len())
        .map(|c| Site::new(&mut rng, c))
        .collect();

    let mut payloads = vec![control_message(clock.millis()).into_bytes()];
    let mut gzips = vec![gzip(&payloads[0])];
    let mut log_events = 1;
    let head = format!(
        r#"{{"invocationId":"{}","deliveryStreamArn":"{STREAM_ARN}","region":"{REGION}","records":["#,
        rng.uuid()
    );
    let mut event_len = head.len() + b64_len(gzips[0].len()) + RECORD_OVERHEAD + 2;
    loop {
        let gzip_total: usize = gzips.iter().map(Vec::len).sum();
        // Record data this record may still take, in gzip bytes.
        let room = match size {
            Size::Data(limit) => limit.saturating_sub(gzip_total),
            Size::Request(limit) => limit.saturating_sub(event_len + RECORD_OVERHEAD) / 4 * 3,
        };
        if room < 2048 {
            break;
        }
        let (cluster, stream) = {
            let pick = rng.below(10);
            let cluster = CLUSTERS.iter().scan(0, |acc, c| {
                *acc += c.2;
                Some(*acc)
            });
            let cluster = cluster.take_while(|&acc| acc <= pick).count();
            let stream = &streams[cluster * 2 + rng.below(2) as usize].1;
            (cluster, stream.clone())
        };
        // CloudWatch Logs deliveries hold from a few KB to about a MB of log events.
        let mut budget = (16 << 10) + rng.below(700 << 10) as usize;
        let (payload, count, compressed) = loop {
            let saved = (rng.clone(), clock, sites[cluster].clone());
            let (payload, count) = data_message(
                &mut rng,
                &mut clock,
                &mut sites[cluster],
                cluster,
                &stream,
                budget.min(room * 12),
            );
            let compressed = gzip(&payload);
            if compressed.len() <= room || budget < 4096 {
                break (payload, count, compressed);
            }
            // Over the limit: generate the same events again with a smaller budget.
            (rng, clock, sites[cluster]) = saved;
            budget /= 2;
        };
        if compressed.len() > room {
            break;
        }
        event_len += b64_len(compressed.len()) + RECORD_OVERHEAD;
        log_events += count;
        payloads.push(payload);
        gzips.push(compressed);
    }

    let mut event = head;
    for (i, compressed) in gzips.iter().enumerate() {
        if i > 0 {
            event.push(',');
        }
        let record_id = format!("{}{:06}", rng.digits(56), i);
        write!(
            event,
            r#"{{"recordId":"{record_id}","approximateArrivalTimestamp":{},"data":"{}"}}"#,
            1_716_285_600_000_i64 + i as i64 * 37,
            STANDARD.encode(compressed)
        )
        .unwrap();
    }
    event.push_str("]}");
    if let Size::Request(limit) = size {
        assert!(
            event.len() <= limit,
            "event of {} bytes exceeds {limit}",
            event.len()
        );
    }
    Workload {
        gzip_bytes: gzips.iter().map(Vec::len).sum(),
        decompressed_bytes: payloads.iter().map(Vec::len).sum(),
        event,
        payloads,
        gzips,
        log_events,
    }
}

fn b64_len(bytes: usize) -> usize {
    bytes.div_ceil(3) * 4
}

fn gzip(bytes: &[u8]) -> Vec<u8> {
    let mut encoder = GzEncoder::new(Vec::new(), Compression::default());
    encoder.write_all(bytes).unwrap();
    encoder.finish().unwrap()
}

fn control_message(millis: i64) -> String {
    format!(
        r#"{{"messageType":"CONTROL_MESSAGE","owner":"CloudwatchLogs","logGroup":"","logStream":"","subscriptionFilters":[],"logEvents":[{{"id":"","timestamp":{millis},"message":"CWL CONTROL MESSAGE: Checking health of destination Firehose."}}]}}"#
    )
}

/// A `DATA_MESSAGE` of about `budget` bytes of audit events; returns it and its event count.
fn data_message(
    rng: &mut Rng,
    clock: &mut Clock,
    site: &mut Site,
    cluster: usize,
    stream: &str,
    budget: usize,
) -> (Vec<u8>, usize) {
    let (name, account, _) = CLUSTERS[cluster];
    let mut out = format!(
        r#"{{"messageType":"DATA_MESSAGE","owner":"{account}","logGroup":"/aws/eks/{name}/cluster","logStream":"{stream}","subscriptionFilters":["eks-audit-forwarder"],"logEvents":["#
    );
    let start = out.len();
    let mut count = 0;
    while out.len() - start < budget {
        let audit = audit_event(rng, clock, site);
        if count > 0 {
            out.push(',');
        }
        // CloudWatch stores the event a little after the API server's stage timestamp.
        let ingested = clock.millis() + 200 + rng.below(800) as i64;
        write!(
            out,
            r#"{{"id":"{}","timestamp":{ingested},"message":"#,
            rng.digits(56)
        )
        .unwrap();
        // The subscription message is JSON too: the audit JSON travels as an escaped string.
        out.push_str(&serde_json::to_string(&audit).unwrap());
        out.push('}');
        count += 1;
    }
    out.push_str("]}");
    (out.into_bytes(), count)
}

/// Microseconds since the epoch, advancing a few milliseconds per event.
#[derive(Debug, Clone, Copy)]
struct Clock {
    micros: i64,
}

impl Clock {
    fn millis(&self) -> i64 {
        self.micros / 1000
    }
}

/// RFC 3339 with microseconds, as the API server writes audit timestamps.
fn timestamp(micros: i64) -> String {
    let time = time::OffsetDateTime::from_unix_timestamp_nanos(i128::from(micros) * 1000).unwrap();
    let (h, m, s) = time.to_hms();
    format!(
        "{:04}-{:02}-{:02}T{h:02}:{m:02}:{s:02}.{:06}Z",
        time.year(),
        u8::from(time.month()),
        time.day(),
        time.microsecond()
    )
}

/// Creation times of objects: seconds precision, some days before the events.
fn creation_timestamp(rng: &mut Rng, clock: &Clock) -> String {
    let micros = clock.micros - (rng.below(90 * 86_400) as i64 + 60) * 1_000_000;
    let full = timestamp(micros);
    format!("{}Z", &full[..19])
}

/// The nodes, pods, namespaces and people of one cluster, so names recur as in real logs.
#[derive(Debug, Clone)]
struct Site {
    account: &'static str,
    nodes: Vec<String>,
    node_ips: Vec<String>,
    namespaces: Vec<&'static str>,
    deployments: Vec<(usize, String, String)>,
    /// Resource versions grow through the log, as etcd's revision does.
    resource_version: u64,
}

const NAMESPACES: [&str; 8] = [
    "default",
    "kube-system",
    "payments",
    "checkout",
    "monitoring",
    "ingress-nginx",
    "data-pipeline",
    "jobs",
];
const APPS: [&str; 14] = [
    "api-gateway",
    "payments-api",
    "ledger",
    "checkout-web",
    "cart",
    "inventory",
    "search",
    "recommender",
    "notifications",
    "fraud-scorer",
    "prometheus",
    "grafana",
    "ingest-worker",
    "batch-runner",
];
const PEOPLE: [&str; 6] = [
    "jane.doe",
    "akira.tanaka",
    "marta.nowak",
    "joão.silva",
    "ops-automation",
    "li.wei",
];
const ROLES: [&str; 4] = ["PlatformAdmin", "Developer", "ReadOnly", "DeployPipeline"];

impl Site {
    fn new(rng: &mut Rng, cluster: usize) -> Site {
        let account = CLUSTERS[cluster].1;
        let node_count = 6 + rng.below(10) as usize;
        let node_ips: Vec<String> = (0..node_count)
            .map(|_| {
                format!(
                    "10.{}.{}.{}",
                    rng.below(4),
                    rng.below(64) + 1,
                    rng.below(250) + 2
                )
            })
            .collect();
        let nodes = node_ips
            .iter()
            .map(|ip| format!("ip-{}.{REGION}.compute.internal", ip.replace('.', "-")))
            .collect();
        let deployments = APPS
            .iter()
            .enumerate()
            .map(|(i, app)| {
                (
                    2 + i % 6,
                    (*app).to_owned(),
                    format!("{}-{}", app, rng.alnum(10)),
                )
            })
            .collect();
        Site {
            account,
            nodes,
            node_ips,
            namespaces: NAMESPACES.to_vec(),
            deployments,
            resource_version: 48_000_000 + rng.below(9_000_000),
        }
    }

    fn next_rv(&mut self, rng: &mut Rng) -> String {
        self.resource_version += 1 + rng.below(40);
        self.resource_version.to_string()
    }
}

/// Who made a request.
struct Actor {
    username: String,
    uid: Option<String>,
    groups: Vec<String>,
    /// `user.extra` as JSON, for IAM-mapped users.
    extra: Option<String>,
    source_ip: String,
    user_agent: String,
}

fn controller(rng: &mut Rng, site: &Site, name: &str) -> Actor {
    let (username, groups) = if name.starts_with("system:") || name.starts_with("eks:") {
        (name.to_owned(), vec!["system:authenticated".to_owned()])
    } else {
        (
            format!("system:serviceaccount:kube-system:{name}"),
            vec![
                "system:serviceaccounts".into(),
                "system:serviceaccounts:kube-system".into(),
                "system:authenticated".into(),
            ],
        )
    };
    let agent = if name.starts_with("eks:") {
        format!(
            "{}/v0.0.0 (linux/amd64) kubernetes/$Format",
            name.trim_start_matches("eks:")
        )
    } else {
        format!(
            "kube-controller-manager/v1.29.4 (linux/amd64) kubernetes/{}/{name}",
            rng.hex(7)
        )
    };
    Actor {
        username,
        uid: Some(rng.uuid()),
        groups,
        extra: None,
        source_ip: format!("172.16.{}.{}", rng.below(64) + 16, rng.below(250) + 2),
        user_agent: agent,
    }
    .with_site(site)
}

fn kubelet(rng: &mut Rng, site: &Site) -> Actor {
    let i = rng.below(site.nodes.len() as u64) as usize;
    Actor {
        username: format!("system:node:{}", site.nodes[i]),
        uid: Some(format!(
            "aws-iam-authenticator:{}:AROA{}",
            site.account,
            rng.upper_alnum(17)
        )),
        groups: vec![
            "system:bootstrappers".into(),
            "system:nodes".into(),
            "system:authenticated".into(),
        ],
        extra: Some(format!(
            r#"{{"accessKeyId":["ASIA{}"],"arn":["arn:aws:sts::{}:assumed-role/eks-node-role/i-{}"],"canonicalArn":["arn:aws:iam::{}:role/eks-node-role"],"principalId":["AROA{}"],"sessionName":["i-{}"]}}"#,
            rng.upper_alnum(16),
            site.account,
            rng.hex(17),
            site.account,
            rng.upper_alnum(17),
            rng.hex(17)
        )),
        source_ip: site.node_ips[i].clone(),
        user_agent: format!(
            "kubelet/v1.29.3-eks-ae9a62a (linux/amd64) kubernetes/{}",
            rng.hex(7)
        ),
    }
}

fn human(rng: &mut Rng, site: &Site) -> Actor {
    let person = rng.pick(&PEOPLE);
    let role = rng.pick(&ROLES);
    // IAM session names are ASCII; the person's name is not always.
    let session: String = person
        .chars()
        .map(|c| if c.is_ascii() { c } else { 'a' })
        .collect();
    let arn = format!(
        "arn:aws:sts::{}:assumed-role/{role}/{session}",
        site.account
    );
    let principal = format!("AROA{}", rng.upper_alnum(17));
    Actor {
        username: arn.clone(),
        uid: Some(format!(
            "aws-iam-authenticator:{}:{principal}",
            site.account
        )),
        groups: if role == "PlatformAdmin" {
            vec!["system:masters".into(), "system:authenticated".into()]
        } else {
            vec![
                format!("eks-{}", role.to_lowercase()),
                "system:authenticated".into(),
            ]
        },
        extra: Some(format!(
            r#"{{"accessKeyId":["ASIA{}"],"arn":["{arn}"],"canonicalArn":["arn:aws:iam::{}:role/{role}"],"principalId":["{principal}"],"sessionName":["{session}"],"sigs.k8s.io/aws-iam-authenticator/principalId":["{principal}"]}}"#,
            rng.upper_alnum(16),
            site.account
        )),
        source_ip: format!(
            "{}.{}",
            rng.pick(&["203.0.113", "198.51.100", "192.0.2"]),
            rng.below(250) + 2
        ),
        user_agent: rng
            .pick(&[
                "kubectl/v1.29.3 (darwin/arm64) kubernetes/6813625",
                "kubectl/v1.30.1 (linux/amd64) kubernetes/6911225",
                "Helm/3.14.4",
                "argocd-application-controller/v0.0.0 (linux/amd64) kubernetes/$Format",
            ])
            .to_owned(),
    }
}

impl Actor {
    fn with_site(self, _site: &Site) -> Actor {
        self
    }
}

/// What the request was about.
#[derive(Default)]
struct Target {
    resource: &'static str,
    namespace: Option<String>,
    name: Option<String>,
    uid: Option<String>,
    api_group: Option<&'static str>,
    api_version: &'static str,
    resource_version: Option<String>,
    subresource: Option<&'static str>,
}

/// One audit event under construction; fields are written in the API server's order.
struct Audit {
    level: &'static str,
    stage: &'static str,
    request_uri: String,
    verb: &'static str,
    actor: Actor,
    impersonated: Option<String>,
    target: Option<Target>,
    /// `responseStatus` as JSON (absent at `RequestReceived`).
    status: Option<String>,
    request_object: Option<String>,
    response_object: Option<String>,
    received: i64,
    duration_us: i64,
    /// `authorization.k8s.io/decision` and `/reason`, plus other annotations as JSON members.
    decision: Option<(&'static str, String)>,
    extra_annotations: String,
}

impl Audit {
    fn new(
        level: &'static str,
        verb: &'static str,
        uri: String,
        actor: Actor,
        clock: &Clock,
    ) -> Audit {
        Audit {
            level,
            stage: "ResponseComplete",
            request_uri: uri,
            verb,
            actor,
            impersonated: None,
            target: None,
            status: Some(r#"{"metadata":{},"code":200}"#.to_owned()),
            request_object: None,
            response_object: None,
            received: clock.micros,
            duration_us: 1500,
            decision: None,
            extra_annotations: String::new(),
        }
    }

    fn render(&self, rng: &mut Rng) -> String {
        let mut o = Obj::start(String::with_capacity(1024));
        o.str("kind", "Event")
            .str("apiVersion", "audit.k8s.io/v1")
            .str("level", self.level);
        o.str("auditID", &rng.uuid())
            .str("stage", self.stage)
            .str("requestURI", &self.request_uri);
        o.str("verb", self.verb);
        let mut user = Obj::start(String::new());
        user.str("username", &self.actor.username);
        if let Some(uid) = &self.actor.uid {
            user.str("uid", uid);
        }
        user.strs("groups", &self.actor.groups);
        if let Some(extra) = &self.actor.extra {
            user.raw("extra", extra);
        }
        o.raw("user", &user.end());
        if let Some(name) = &self.impersonated {
            o.raw(
                "impersonatedUser",
                &format!(
                    r#"{{"username":{},"groups":["system:authenticated"]}}"#,
                    go_json(name)
                ),
            );
        }
        o.strs("sourceIPs", std::slice::from_ref(&self.actor.source_ip));
        o.str("userAgent", &self.actor.user_agent);
        if let Some(t) = &self.target {
            let mut r = Obj::start(String::new());
            r.str("resource", t.resource);
            if let Some(ns) = &t.namespace {
                r.str("namespace", ns);
            }
            if let Some(name) = &t.name {
                r.str("name", name);
            }
            if let Some(uid) = &t.uid {
                r.str("uid", uid);
            }
            if let Some(group) = t.api_group {
                r.str("apiGroup", group);
            }
            r.str("apiVersion", t.api_version);
            if let Some(rv) = &t.resource_version {
                r.str("resourceVersion", rv);
            }
            if let Some(sub) = t.subresource {
                r.str("subresource", sub);
            }
            o.raw("objectRef", &r.end());
        }
        if self.stage != "RequestReceived" {
            if let Some(status) = &self.status {
                o.raw("responseStatus", status);
            }
            if let Some(body) = &self.request_object {
                o.raw("requestObject", body);
            }
            if let Some(body) = &self.response_object {
                o.raw("responseObject", body);
            }
        } else if let Some(body) = &self.request_object {
            o.raw("requestObject", body);
        }
        o.str("requestReceivedTimestamp", &timestamp(self.received));
        let staged = if self.stage == "RequestReceived" {
            self.received
        } else {
            self.received + self.duration_us
        };
        o.str("stageTimestamp", &timestamp(staged));
        if let Some((decision, reason)) = self
            .decision
            .as_ref()
            .filter(|_| self.stage != "RequestReceived")
        {
            let mut a = Obj::start(String::new());
            a.str("authorization.k8s.io/decision", decision)
                .str("authorization.k8s.io/reason", reason);
            let mut annotations = a.end();
            if !self.extra_annotations.is_empty() {
                annotations.pop();
                annotations.push(',');
                annotations.push_str(&self.extra_annotations);
                annotations.push('}');
            }
            o.raw("annotations", &annotations);
        }
        o.end()
    }
}

fn rbac_allow(binding: &str, role: &str, subject: &str) -> (&'static str, String) {
    (
        "allow",
        format!(
            r#"RBAC: allowed by ClusterRoleBinding "{binding}" of ClusterRole "{role}" to {subject}"#
        ),
    )
}

/// One audit event, its kind drawn from the mix in the module docs.
fn audit_event(rng: &mut Rng, clock: &mut Clock, site: &mut Site) -> String {
    clock.micros += 200 + rng.below(3000) as i64;
    let roll = rng.below(1000);
    let mut audit = match roll {
        0..220 => lease_update(rng, clock, site),
        220..400 => component_read(rng, clock, site),
        400..450 => watch(rng, clock, site),
        450..510 => node_status_patch(rng, clock, site),
        510..590 => event_create(rng, clock, site),
        590..680 => probe(rng, clock, site),
        680..716 => human_write(rng, clock, site),
        716..722 => human_list_pods(rng, clock, site),
        722..742 => exec(rng, clock, site),
        742..772 => forbidden_secret(rng, clock, site),
        _ => human_read(rng, clock, site),
    };
    // About one in six events is the RequestReceived half of a request, which the filter drops.
    if rng.below(6) == 0 {
        audit.stage = "RequestReceived";
        audit.response_object = None;
    }
    audit.render(rng)
}

fn namespaced_uri(
    group: Option<&str>,
    version: &str,
    ns: &str,
    resource: &str,
    name: Option<&str>,
) -> String {
    let base = match group {
        Some(g) => format!("/apis/{g}/{version}"),
        None => format!("/api/{version}"),
    };
    match name {
        Some(n) => format!("{base}/namespaces/{ns}/{resource}/{n}"),
        None => format!("{base}/namespaces/{ns}/{resource}"),
    }
}

fn lease_update(rng: &mut Rng, clock: &Clock, site: &mut Site) -> Audit {
    let node = rng.below(site.nodes.len() as u64) as usize;
    let (actor, ns, name) = if rng.below(3) == 0 {
        let who = rng.pick(&[
            "system:kube-controller-manager",
            "system:kube-scheduler",
            "eks:cloud-controller-manager",
        ]);
        let lease = who.rsplit(':').next().unwrap_or(who).to_owned();
        (controller(rng, site, who), "kube-system", lease)
    } else {
        let mut actor = kubelet(rng, site);
        actor.username = format!("system:node:{}", site.nodes[node]);
        actor.source_ip = site.node_ips[node].clone();
        (actor, "kube-node-lease", site.nodes[node].clone())
    };
    let uri = format!("/apis/coordination.k8s.io/v1/namespaces/{ns}/leases/{name}?timeout=10s");
    let subject = format!("User \"{}\"", actor.username);
    let mut audit = Audit::new("Metadata", "update", uri, actor, clock);
    audit.target = Some(Target {
        resource: "leases",
        namespace: Some(ns.into()),
        name: Some(name),
        uid: Some(rng.uuid()),
        api_group: Some("coordination.k8s.io"),
        api_version: "v1",
        resource_version: Some(site.next_rv(rng)),
        ..Target::default()
    });
    audit.decision = Some(if ns == "kube-node-lease" {
        ("allow", String::new())
    } else {
        rbac_allow(
            "system:kube-controller-manager",
            "system:kube-controller-manager",
            &subject,
        )
    });
    audit.duration_us = 900 + rng.below(6000) as i64;
    audit
}

fn component_read(rng: &mut Rng, clock: &Clock, site: &mut Site) -> Audit {
    let who = rng.pick(&[
        "eks:k8s-metrics",
        "eks:addon-manager",
        "system:kube-controller-manager",
        "coredns",
        "aws-node",
        "eks:pod-identity-mutating-webhook",
        "cluster-autoscaler",
    ]);
    let actor = if rng.below(4) == 0 {
        kubelet(rng, site)
    } else {
        controller(rng, site, who)
    };
    let (resource, group, version) = rng.pick(&[
        ("configmaps", None, "v1"),
        ("endpoints", None, "v1"),
        ("pods", None, "v1"),
        ("services", None, "v1"),
        ("secrets", None, "v1"),
        ("deployments", Some("apps"), "v1"),
        ("endpointslices", Some("discovery.k8s.io"), "v1"),
        ("nodes", None, "v1"),
    ]);
    let ns = rng.pick(&site.namespaces);
    let list = rng.below(3) == 0;
    let name = (!list).then(|| match resource {
        "nodes" => site.nodes[rng.below(site.nodes.len() as u64) as usize].clone(),
        "configmaps" => rng
            .pick(&[
                "kube-root-ca.crt",
                "aws-auth",
                "coredns",
                "amazon-vpc-cni",
                "kube-proxy-config",
            ])
            .to_owned(),
        _ => site.deployments[rng.below(site.deployments.len() as u64) as usize]
            .1
            .clone(),
    });
    let mut uri = if resource == "nodes" {
        format!("/api/v1/nodes/{}", name.as_deref().unwrap_or_default())
    } else {
        namespaced_uri(group, version, ns, resource, name.as_deref())
    };
    if list {
        write!(
            uri,
            "?labelSelector=app%3D{}&limit=500&resourceVersion=0",
            rng.pick(&APPS)
        )
        .unwrap();
    }
    let subject = format!("User \"{}\"", actor.username);
    let level = if rng.below(3) == 0 {
        "Request"
    } else {
        "Metadata"
    };
    let mut audit = Audit::new(level, if list { "list" } else { "get" }, uri, actor, clock);
    audit.target = Some(Target {
        resource,
        namespace: (resource != "nodes").then(|| ns.to_owned()),
        name,
        api_group: group,
        api_version: version,
        ..Target::default()
    });
    audit.decision = Some(rbac_allow(who, who, &subject));
    audit.duration_us = 300 + rng.below(20_000) as i64;
    audit
}

fn watch(rng: &mut Rng, clock: &Clock, site: &mut Site) -> Audit {
    let who = rng.pick(&[
        "system:kube-scheduler",
        "system:apiserver",
        "eks:fargate-manager",
        "karpenter",
        "coredns",
    ]);
    let actor = controller(rng, site, who);
    let (resource, group) = rng.pick(&[
        ("pods", None),
        ("persistentvolumes", None),
        ("csinodes", Some("storage.k8s.io")),
        ("poddisruptionbudgets", Some("policy")),
        ("flowschemas", Some("flowcontrol.apiserver.k8s.io")),
    ]);
    let timeout = 300 + rng.below(300);
    let base = match group {
        Some(g) => format!("/apis/{g}/v1/{resource}"),
        None => format!("/api/v1/{resource}"),
    };
    let uri = format!(
        "{base}?allowWatchBookmarks=true&resourceVersion={}&timeout={}m{}s&timeoutSeconds={timeout}&watch=true",
        site.next_rv(rng),
        timeout / 60,
        timeout % 60
    );
    let subject = format!("User \"{}\"", actor.username);
    let mut audit = Audit::new("Metadata", "watch", uri, actor, clock);
    audit.target = Some(Target {
        resource,
        api_group: group,
        api_version: "v1",
        ..Target::default()
    });
    audit.decision = Some(rbac_allow(who, who, &subject));
    audit.received = clock.micros - timeout as i64 * 1_000_000;
    audit.duration_us = timeout as i64 * 1_000_000 - rng.below(1000) as i64;
    audit
}

fn node_status_patch(rng: &mut Rng, clock: &Clock, site: &mut Site) -> Audit {
    let node = rng.below(site.nodes.len() as u64) as usize;
    let mut actor = kubelet(rng, site);
    actor.username = format!("system:node:{}", site.nodes[node]);
    actor.source_ip = site.node_ips[node].clone();
    let name = site.nodes[node].clone();
    let mut patch = Obj::start(String::new());
    let mut conditions = String::from("[");
    for (i, kind) in ["MemoryPressure", "DiskPressure", "PIDPressure", "Ready"]
        .iter()
        .enumerate()
    {
        if i > 0 {
            conditions.push(',');
        }
        let ready = *kind == "Ready";
        write!(
            conditions,
            r#"{{"lastHeartbeatTime":"{}","type":"{kind}","status":"{}","reason":"{}","message":"{}"}}"#,
            creation_timestamp(rng, clock),
            if ready { "True" } else { "False" },
            if ready { "KubeletReady" } else { "KubeletHasSufficientMemory" },
            if ready { "kubelet is posting ready status" } else { "kubelet has sufficient memory available" }
        )
        .unwrap();
    }
    conditions.push(']');
    let images: Vec<String> = (0..3 + rng.below(8))
        .map(|_| {
            format!(
                r#"{{"names":["{}.dkr.ecr.{REGION}.amazonaws.com/{}@sha256:{}"],"sizeBytes":{}}}"#,
                site.account,
                rng.pick(&APPS),
                rng.hex(64),
                20_000_000 + rng.below(400_000_000)
            )
        })
        .collect();
    patch.raw(
        "status",
        &format!(r#"{{"$setElementOrder/conditions":[{{"type":"MemoryPressure"}},{{"type":"DiskPressure"}},{{"type":"PIDPressure"}},{{"type":"Ready"}}],"conditions":{conditions},"images":[{}]}}"#, images.join(",")),
    );
    let uri = format!("/api/v1/nodes/{name}/status?timeout=10s");
    let mut audit = Audit::new("Request", "patch", uri, actor, clock);
    audit.target = Some(Target {
        resource: "nodes",
        name: Some(name),
        api_version: "v1",
        subresource: Some("status"),
        ..Target::default()
    });
    audit.request_object = Some(patch.end());
    audit.decision = Some(("allow", String::new()));
    audit.duration_us = 2000 + rng.below(9000) as i64;
    audit
}

const EVENT_MESSAGES: [&str; 6] = [
    "Successfully pulled image \"{img}\" in 1.2s (1.2s including waiting)",
    "Back-off restarting failed container {c} in pod {p}",
    "Readiness probe failed: HTTP probe failed with statuscode: 503",
    "Scaled up replica set {p} to 3 — Überprüfung abgeschlossen",
    "0/9 nodes are available: 9 Insufficient cpu. preemption: 0/9 nodes are available",
    "Created container {c} ✓ (コンテナ作成)",
];

fn event_create(rng: &mut Rng, clock: &Clock, site: &mut Site) -> Audit {
    let actor = if rng.below(2) == 0 {
        kubelet(rng, site)
    } else {
        controller(rng, site, "deployment-controller")
    };
    let ns = rng.pick(&site.namespaces);
    let (_, app, rs) = site.deployments[rng.below(site.deployments.len() as u64) as usize].clone();
    let pod = format!("{rs}-{}", rng.alnum(5));
    let name = format!("{pod}.{}", rng.hex(16));
    let message = rng
        .pick(&EVENT_MESSAGES)
        .replace("{c}", &app)
        .replace("{p}", &pod)
        .replace(
            "{img}",
            &format!(
                "{}.dkr.ecr.{REGION}.amazonaws.com/{app}:{}",
                site.account,
                rng.hex(7)
            ),
        );
    let mut body = Obj::start(String::new());
    body.str("kind", "Event").str("apiVersion", "v1");
    body.raw(
        "metadata",
        &format!(r#"{{"name":"{name}","namespace":"{ns}","creationTimestamp":null}}"#),
    );
    body.raw(
        "involvedObject",
        &format!(
            r#"{{"kind":"Pod","namespace":"{ns}","name":"{pod}","uid":"{}","apiVersion":"v1","resourceVersion":"{}","fieldPath":"spec.containers{{{app}}}"}}"#,
            rng.uuid(),
            site.next_rv(rng)
        ),
    );
    body.str(
        "reason",
        rng.pick(&[
            "Pulled",
            "BackOff",
            "Unhealthy",
            "ScalingReplicaSet",
            "FailedScheduling",
            "Created",
        ]),
    );
    body.str("message", &message);
    body.raw(
        "source",
        &format!(r#"{{"component":"kubelet","host":"{}"}}"#, site.nodes[0]),
    );
    let first = creation_timestamp(rng, clock);
    body.str("firstTimestamp", &first)
        .str("lastTimestamp", &first);
    body.num("count", 1 + rng.below(40))
        .str("type", rng.pick(&["Normal", "Warning"]));
    body.raw("eventTime", "null")
        .str("reportingComponent", "kubelet")
        .str("reportingInstance", &site.nodes[0]);
    let uri = format!("/api/v1/namespaces/{ns}/events");
    let mut audit = Audit::new("Request", "create", uri, actor, clock);
    audit.target = Some(Target {
        resource: "events",
        namespace: Some(ns.to_owned()),
        name: Some(name),
        api_version: "v1",
        ..Target::default()
    });
    audit.request_object = Some(body.end());
    audit.status = Some(r#"{"metadata":{},"code":201}"#.to_owned());
    audit.decision = Some(("allow", String::new()));
    audit
}

fn probe(rng: &mut Rng, clock: &Clock, site: &mut Site) -> Audit {
    let uri = rng
        .pick(&[
            "/readyz",
            "/livez",
            "/healthz",
            "/readyz?verbose",
            "/livez?exclude=etcd",
            "/metrics",
            "/version",
        ])
        .to_owned();
    let actor = if rng.below(2) == 0 {
        Actor {
            username: "system:anonymous".into(),
            uid: None,
            groups: vec!["system:unauthenticated".into()],
            extra: None,
            source_ip: format!(
                "10.{}.{}.{}",
                rng.below(4),
                rng.below(64),
                rng.below(250) + 2
            ),
            user_agent: "kube-probe/1.29+".into(),
        }
    } else {
        controller(rng, site, "system:apiserver")
    };
    let mut audit = Audit::new("Metadata", "get", uri, actor, clock);
    audit.decision = Some(("allow", r#"RBAC: allowed by ClusterRoleBinding "system:public-info-viewer" of ClusterRole "system:public-info-viewer" to Group "system:unauthenticated""#.to_owned()));
    audit.duration_us = 100 + rng.below(900) as i64;
    audit
}

fn human_write(rng: &mut Rng, clock: &Clock, site: &mut Site) -> Audit {
    let actor = human(rng, site);
    let subject = format!("User \"{}\"", actor.username);
    let (ns_index, app, _) =
        site.deployments[rng.below(site.deployments.len() as u64) as usize].clone();
    let ns = site.namespaces[ns_index].to_owned();
    let verb = rng.pick(&["create", "patch", "patch", "update"]);
    let configmap = rng.below(2) == 0;
    let uid = rng.uuid();
    let rv = site.next_rv(rng);
    let (resource, group, name, request, response) = if configmap {
        let name = format!("{app}-config");
        let large = rng.below(8) == 0;
        let size = (2 << 10) + rng.below(if large { 300 << 10 } else { 24 << 10 }) as usize;
        let data = config_data(rng, size);
        let body = configmap_object(rng, clock, site, &ns, &name, &uid, &rv, &data);
        let request = if verb == "patch" {
            format!(r#"{{"data":{data}}}"#)
        } else {
            body.clone()
        };
        ("configmaps", None, name, request, body)
    } else {
        let containers = 1 + rng.below(4) as usize;
        let body = deployment(rng, clock, site, &ns, &app, &uid, &rv, containers);
        let request = if verb == "patch" {
            format!(
                r#"{{"spec":{{"template":{{"metadata":{{"annotations":{{"kubectl.kubernetes.io/restartedAt":"{}"}}}}}}}}}}"#,
                timestamp(clock.micros)
            )
        } else {
            body.clone()
        };
        ("deployments", Some("apps"), app.clone(), request, body)
    };
    let uri = namespaced_uri(
        group,
        "v1",
        &ns,
        resource,
        (verb != "create").then_some(&name),
    );
    let uri = if verb == "create" {
        format!("{uri}?fieldManager=kubectl-client-side-apply&fieldValidation=Strict")
    } else {
        uri
    };
    let mut audit = Audit::new("RequestResponse", verb, uri, actor, clock);
    audit.target = Some(Target {
        resource,
        namespace: Some(ns),
        name: Some(name),
        uid: (verb != "create").then_some(uid),
        api_group: group,
        api_version: "v1",
        resource_version: (verb != "create").then_some(rv),
        ..Target::default()
    });
    audit.status = Some(format!(
        r#"{{"metadata":{{}},"code":{}}}"#,
        if verb == "create" { 201 } else { 200 }
    ));
    audit.request_object = Some(request);
    audit.response_object = Some(response);
    audit.decision = Some(rbac_allow("eks-platform-admins", "cluster-admin", &subject));
    audit.extra_annotations = r#""mutation.webhook.admission.k8s.io/round_0_index_0":"{\"configuration\":\"pod-identity-webhook\",\"webhook\":\"iam-for-pods.amazonaws.com\",\"mutated\":false}""#.to_owned();
    audit.duration_us = 4000 + rng.below(40_000) as i64;
    audit
}

fn human_list_pods(rng: &mut Rng, clock: &Clock, site: &mut Site) -> Audit {
    let actor = human(rng, site);
    let subject = format!("User \"{}\"", actor.username);
    let ns = rng.pick(&site.namespaces).to_owned();
    let many = rng.below(4) == 0;
    let count = 5 + rng.below(if many { 90 } else { 25 }) as usize;
    let items: Vec<String> = (0..count)
        .map(|_| pod_object(rng, clock, site, &ns))
        .collect();
    let body = format!(
        r#"{{"kind":"PodList","apiVersion":"v1","metadata":{{"resourceVersion":"{}"}},"items":[{}]}}"#,
        site.next_rv(rng),
        items.join(",")
    );
    let uri = format!("/api/v1/namespaces/{ns}/pods?limit=500");
    let mut audit = Audit::new("RequestResponse", "list", uri, actor, clock);
    audit.target = Some(Target {
        resource: "pods",
        namespace: Some(ns),
        api_version: "v1",
        ..Target::default()
    });
    audit.response_object = Some(body);
    audit.decision = Some(rbac_allow("eks-developers", "view", &subject));
    audit.duration_us = 8000 + rng.below(90_000) as i64;
    audit
}

fn human_read(rng: &mut Rng, clock: &Clock, site: &mut Site) -> Audit {
    let actor = human(rng, site);
    let subject = format!("User \"{}\"", actor.username);
    let ns = rng.pick(&site.namespaces).to_owned();
    let (resource, group) = rng.pick(&[
        ("pods", None),
        ("deployments", Some("apps")),
        ("services", None),
        ("ingresses", Some("networking.k8s.io")),
    ]);
    let name = format!("{}-{}", rng.pick(&APPS), rng.alnum(5));
    let uri = namespaced_uri(group, "v1", &ns, resource, Some(&name));
    let mut audit = Audit::new("Request", "get", uri, actor, clock);
    if rng.below(10) == 0 {
        audit.impersonated = Some(format!("system:serviceaccount:{ns}:{}", rng.pick(&APPS)));
    }
    audit.target = Some(Target {
        resource,
        namespace: Some(ns),
        name: Some(name),
        api_group: group,
        api_version: "v1",
        ..Target::default()
    });
    audit.decision = Some(rbac_allow("eks-developers", "view", &subject));
    audit
}

fn exec(rng: &mut Rng, clock: &Clock, site: &mut Site) -> Audit {
    let actor = human(rng, site);
    let subject = format!("User \"{}\"", actor.username);
    let (ns_index, app, rs) =
        site.deployments[rng.below(site.deployments.len() as u64) as usize].clone();
    let ns = site.namespaces[ns_index].to_owned();
    let pod = format!("{rs}-{}", rng.alnum(5));
    let uri = format!(
        "/api/v1/namespaces/{ns}/pods/{pod}/exec?command=%2Fbin%2Fsh&command=-c&command=cat+%2Fetc%2Fos-release&container={app}&stdin=true&stdout=true&tty=true"
    );
    let mut audit = Audit::new("Metadata", "create", uri, actor, clock);
    audit.target = Some(Target {
        resource: "pods",
        namespace: Some(ns),
        name: Some(pod),
        api_version: "v1",
        subresource: Some("exec"),
        ..Target::default()
    });
    audit.status = Some(r#"{"metadata":{},"code":101}"#.to_owned());
    audit.decision = Some(rbac_allow("eks-platform-admins", "cluster-admin", &subject));
    audit.extra_annotations =
        r#""pod-security.kubernetes.io/enforce-policy":"baseline:latest""#.to_owned();
    audit.duration_us = 2_000_000 + rng.below(60_000_000) as i64;
    audit
}

fn forbidden_secret(rng: &mut Rng, clock: &Clock, site: &mut Site) -> Audit {
    let actor = human(rng, site);
    let ns = rng.pick(&site.namespaces).to_owned();
    let name = format!(
        "{}-{}",
        rng.pick(&[
            "db-password",
            "stripe-api-key",
            "tls-cert",
            "registry-creds"
        ]),
        rng.alnum(4)
    );
    let message = format!(
        r#"secrets "{name}" is forbidden: User "{}" cannot get resource "secrets" in API group "" in the namespace "{ns}""#,
        actor.username
    );
    let uri = format!("/api/v1/namespaces/{ns}/secrets/{name}");
    let mut audit = Audit::new("Metadata", "get", uri, actor, clock);
    audit.target = Some(Target {
        resource: "secrets",
        namespace: Some(ns),
        name: Some(name.clone()),
        api_version: "v1",
        ..Target::default()
    });
    audit.status = Some(format!(
        r#"{{"metadata":{{}},"status":"Failure","message":{},"reason":"Forbidden","details":{{"name":{},"kind":"secrets"}},"code":403}}"#,
        go_json(&message),
        go_json(&name)
    ));
    audit.decision = Some(("forbid", String::new()));
    audit
}

const WORDS: [&str; 40] = [
    "timeout",
    "retry",
    "endpoint",
    "enabled",
    "replicas",
    "cache",
    "ttl",
    "region",
    "bucket",
    "queue",
    "worker",
    "threshold",
    "maxConnections",
    "pool",
    "level",
    "debug",
    "info",
    "warn",
    "payments",
    "ledger",
    "https",
    "internal",
    "service",
    "cluster",
    "local",
    "true",
    "false",
    "Grüße",
    "Zahlung",
    "überfällig",
    "Größe",
    "支払い",
    "確認",
    "東京",
    "zażółć",
    "gęślą",
    "ошибка",
    "€",
    "✓",
    "🚀",
];

/// ConfigMap `data` of about `size` bytes: files of `key: value` lines.
fn config_data(rng: &mut Rng, size: usize) -> String {
    let mut files = Obj::start(String::with_capacity(size + 256));
    let mut written = 0;
    let mut n = 0;
    while written < size {
        let mut text = String::new();
        let lines = 10 + rng.below(200);
        for _ in 0..lines {
            let key = format!("{}.{}", rng.pick(&WORDS[..27]), rng.pick(&WORDS));
            let value = match rng.below(5) {
                0 => rng.below(100_000).to_string(),
                1 => format!(
                    "https://{}.{}.svc.cluster.local:{}/{}",
                    rng.pick(&APPS),
                    rng.pick(&NAMESPACES),
                    8000 + rng.below(1000),
                    rng.alnum(6)
                ),
                2 => {
                    let n = 8 + rng.below(40) as usize;
                    rng.hex(n)
                }
                _ => (0..1 + rng.below(8))
                    .map(|_| rng.pick(&WORDS))
                    .collect::<Vec<_>>()
                    .join(" "),
            };
            writeln!(text, "{key}: {value}").unwrap();
        }
        written += text.len();
        let file = format!(
            "{}-{n}.{}",
            rng.pick(&APPS),
            rng.pick(&["yaml", "properties", "conf", "json"])
        );
        files.str(&file, &text);
        n += 1;
    }
    files.end()
}

#[allow(clippy::too_many_arguments)]
fn configmap_object(
    rng: &mut Rng,
    clock: &Clock,
    site: &Site,
    ns: &str,
    name: &str,
    uid: &str,
    rv: &str,
    data: &str,
) -> String {
    let _ = site;
    let mut o = Obj::start(String::with_capacity(data.len() + 1024));
    o.str("kind", "ConfigMap").str("apiVersion", "v1");
    let mut m = Obj::start(String::new());
    m.str("name", name)
        .str("namespace", ns)
        .str("uid", uid)
        .str("resourceVersion", rv);
    m.str("creationTimestamp", &creation_timestamp(rng, clock));
    m.raw(
        "labels",
        &format!(r#"{{"app.kubernetes.io/name":"{name}","app.kubernetes.io/managed-by":"Helm"}}"#),
    );
    m.raw(
        "annotations",
        &format!(
            r#"{{"meta.helm.sh/release-name":"{name}","meta.helm.sh/release-namespace":"{ns}","description":{}}}"#,
            go_json("Konfiguration für Zahlungsdienst – nicht manuell ändern <owner: team-payments>")
        ),
    );
    m.raw("managedFields", &managed_fields(rng, clock, "helm", r#"{"f:data":{".":{}},"f:metadata":{"f:annotations":{".":{},"f:meta.helm.sh/release-name":{},"f:meta.helm.sh/release-namespace":{}},"f:labels":{".":{},"f:app.kubernetes.io/managed-by":{}}}}"#));
    o.raw("metadata", &m.end());
    o.raw("data", data);
    o.end()
}

fn managed_fields(rng: &mut Rng, clock: &Clock, manager: &str, fields: &str) -> String {
    format!(
        r#"[{{"manager":"{manager}","operation":"Update","apiVersion":"v1","time":"{}","fieldsType":"FieldsV1","fieldsV1":{fields}}}]"#,
        creation_timestamp(rng, clock)
    )
}

fn container(rng: &mut Rng, site: &Site, app: &str, i: usize) -> String {
    let mut c = Obj::start(String::new());
    c.str(
        "name",
        &if i == 0 {
            app.to_owned()
        } else {
            format!("{}-sidecar-{i}", rng.pick(&["envoy", "fluent-bit", "otel"]))
        },
    );
    c.str(
        "image",
        &format!(
            "{}.dkr.ecr.{REGION}.amazonaws.com/{app}:{}",
            site.account,
            rng.hex(12)
        ),
    );
    c.raw(
        "ports",
        &format!(
            r#"[{{"name":"http","containerPort":{},"protocol":"TCP"}}]"#,
            8000 + rng.below(1000)
        ),
    );
    let env: Vec<String> = (0..3 + rng.below(14))
        .map(|_| {
            let name = format!("{}_{}", rng.pick(&WORDS[..27]).to_uppercase(), rng.below(100));
            match rng.below(4) {
                0 => format!(
                    r#"{{"name":"{name}","valueFrom":{{"secretKeyRef":{{"name":"{app}-secrets","key":"{}"}}}}}}"#,
                    rng.alnum(8)
                ),
                1 => format!(r#"{{"name":"{name}","value":"{}"}}"#, rng.hex(24)),
                _ => format!(r#"{{"name":"{name}","value":{}}}"#, go_json(&format!("{}-{}", rng.pick(&WORDS), rng.below(10_000)))),
            }
        })
        .collect();
    c.raw("env", &format!("[{}]", env.join(",")));
    c.raw(
        "resources",
        &format!(
            r#"{{"limits":{{"cpu":"{}m","memory":"{}Mi"}},"requests":{{"cpu":"{}m","memory":"{}Mi"}}}}"#,
            250 * (1 + rng.below(8)),
            128 * (1 + rng.below(16)),
            50 * (1 + rng.below(10)),
            64 * (1 + rng.below(16))
        ),
    );
    c.raw("volumeMounts", r#"[{"name":"kube-api-access","readOnly":true,"mountPath":"/var/run/secrets/kubernetes.io/serviceaccount"},{"name":"aws-iam-token","readOnly":true,"mountPath":"/var/run/secrets/eks.amazonaws.com/serviceaccount"}]"#);
    c.raw("livenessProbe", &format!(r#"{{"httpGet":{{"path":"/healthz","port":{},"scheme":"HTTP"}},"initialDelaySeconds":{},"timeoutSeconds":1,"periodSeconds":10,"successThreshold":1,"failureThreshold":3}}"#, 8000 + rng.below(1000), rng.below(30)));
    c.raw("readinessProbe", &format!(r#"{{"httpGet":{{"path":"/ready","port":{},"scheme":"HTTP"}},"timeoutSeconds":1,"periodSeconds":5,"successThreshold":1,"failureThreshold":3}}"#, 8000 + rng.below(1000)));
    c.str("terminationMessagePath", "/dev/termination-log")
        .str("terminationMessagePolicy", "File");
    c.str("imagePullPolicy", "IfNotPresent");
    c.raw("securityContext", r#"{"capabilities":{"drop":["ALL"]},"runAsNonRoot":true,"readOnlyRootFilesystem":true,"allowPrivilegeEscalation":false}"#);
    c.end()
}

#[allow(clippy::too_many_arguments)]
fn deployment(
    rng: &mut Rng,
    clock: &Clock,
    site: &Site,
    ns: &str,
    app: &str,
    uid: &str,
    rv: &str,
    containers: usize,
) -> String {
    let containers: Vec<String> = (0..containers)
        .map(|i| container(rng, site, app, i))
        .collect();
    let pod_spec = format!(
        r#"{{"volumes":[{{"name":"aws-iam-token","projected":{{"sources":[{{"serviceAccountToken":{{"audience":"sts.amazonaws.com","expirationSeconds":86400,"path":"token"}}}}],"defaultMode":420}}}}],"containers":[{}],"restartPolicy":"Always","terminationGracePeriodSeconds":30,"dnsPolicy":"ClusterFirst","serviceAccountName":"{app}","serviceAccount":"{app}","securityContext":{{"fsGroup":65534}},"affinity":{{"podAntiAffinity":{{"preferredDuringSchedulingIgnoredDuringExecution":[{{"weight":100,"podAffinityTerm":{{"labelSelector":{{"matchLabels":{{"app":"{app}"}}}},"topologyKey":"topology.kubernetes.io/zone"}}}}]}}}},"schedulerName":"default-scheduler"}}"#,
        containers.join(",")
    );
    let spec = format!(
        r#"{{"replicas":{},"selector":{{"matchLabels":{{"app":"{app}"}}}},"template":{{"metadata":{{"creationTimestamp":null,"labels":{{"app":"{app}","version":"{}"}}}},"spec":{pod_spec}}},"strategy":{{"type":"RollingUpdate","rollingUpdate":{{"maxUnavailable":"25%","maxSurge":"25%"}}}},"revisionHistoryLimit":10,"progressDeadlineSeconds":600}}"#,
        1 + rng.below(12),
        rng.hex(7)
    );
    let last_applied = format!(
        r#"{{"apiVersion":"apps/v1","kind":"Deployment","metadata":{{"annotations":{{}},"name":"{app}","namespace":"{ns}"}},"spec":{spec}}}"#
    );
    let mut m = Obj::start(String::new());
    m.str("name", app)
        .str("namespace", ns)
        .str("uid", uid)
        .str("resourceVersion", rv);
    m.num("generation", 1 + rng.below(300))
        .str("creationTimestamp", &creation_timestamp(rng, clock));
    m.raw(
        "labels",
        &format!(
            r#"{{"app":"{app}","team":"{}"}}"#,
            rng.pick(&["payments", "platform", "data", "web"])
        ),
    );
    m.raw(
        "annotations",
        &format!(
            r#"{{"deployment.kubernetes.io/revision":"{}","kubectl.kubernetes.io/last-applied-configuration":{},"owner":{}}}"#,
            1 + rng.below(90),
            go_json(&format!("{last_applied}\n")),
            go_json("Équipe paiements — Zahlungsteam — 決済チーム")
        ),
    );
    m.raw("managedFields", &managed_fields(rng, clock, "kubectl-client-side-apply", r#"{"f:metadata":{"f:annotations":{".":{},"f:kubectl.kubernetes.io/last-applied-configuration":{}},"f:labels":{".":{},"f:app":{},"f:team":{}}},"f:spec":{"f:progressDeadlineSeconds":{},"f:replicas":{},"f:revisionHistoryLimit":{},"f:selector":{},"f:strategy":{"f:rollingUpdate":{".":{},"f:maxSurge":{},"f:maxUnavailable":{}},"f:type":{}},"f:template":{"f:metadata":{"f:labels":{".":{},"f:app":{}}},"f:spec":{"f:containers":{},"f:dnsPolicy":{},"f:restartPolicy":{},"f:schedulerName":{},"f:securityContext":{},"f:terminationGracePeriodSeconds":{}}}}}"#));
    format!(
        r#"{{"kind":"Deployment","apiVersion":"apps/v1","metadata":{},"spec":{spec},"status":{{"observedGeneration":{},"replicas":3,"updatedReplicas":3,"readyReplicas":3,"availableReplicas":3,"conditions":[{{"type":"Available","status":"True","lastUpdateTime":"{}","lastTransitionTime":"{}","reason":"MinimumReplicasAvailable","message":"Deployment has minimum availability."}}]}}}}"#,
        m.end(),
        rng.below(300),
        creation_timestamp(rng, clock),
        creation_timestamp(rng, clock)
    )
}

fn pod_object(rng: &mut Rng, clock: &Clock, site: &mut Site, ns: &str) -> String {
    let (_, app, rs) = site.deployments[rng.below(site.deployments.len() as u64) as usize].clone();
    let name = format!("{rs}-{}", rng.alnum(5));
    let node = rng.below(site.nodes.len() as u64) as usize;
    let containers: Vec<String> = (0..1 + rng.below(2) as usize)
        .map(|i| container(rng, site, &app, i))
        .collect();
    let started = creation_timestamp(rng, clock);
    let statuses: Vec<String> = (0..containers.len())
        .map(|_| {
            format!(
                r#"{{"name":"{app}","state":{{"running":{{"startedAt":"{started}"}}}},"lastState":{{}},"ready":true,"restartCount":{},"image":"{}.dkr.ecr.{REGION}.amazonaws.com/{app}:{}","imageID":"{}.dkr.ecr.{REGION}.amazonaws.com/{app}@sha256:{}","containerID":"containerd://{}","started":true}}"#,
                rng.below(4),
                site.account,
                rng.hex(12),
                site.account,
                rng.hex(64),
                rng.hex(64)
            )
        })
        .collect();
    let pod_ip = format!(
        "10.{}.{}.{}",
        rng.below(4),
        64 + rng.below(64),
        rng.below(250) + 2
    );
    format!(
        r#"{{"metadata":{{"name":"{name}","generateName":"{rs}-","namespace":"{ns}","uid":"{}","resourceVersion":"{}","creationTimestamp":"{started}","labels":{{"app":"{app}","pod-template-hash":"{}"}},"annotations":{{"kubernetes.io/psp":"eks.privileged","prometheus.io/scrape":"true"}},"ownerReferences":[{{"apiVersion":"apps/v1","kind":"ReplicaSet","name":"{rs}","uid":"{}","controller":true,"blockOwnerDeletion":true}}]}},"spec":{{"containers":[{}],"restartPolicy":"Always","terminationGracePeriodSeconds":30,"dnsPolicy":"ClusterFirst","serviceAccountName":"{app}","nodeName":"{}","securityContext":{{}},"schedulerName":"default-scheduler","tolerations":[{{"key":"node.kubernetes.io/not-ready","operator":"Exists","effect":"NoExecute","tolerationSeconds":300}},{{"key":"node.kubernetes.io/unreachable","operator":"Exists","effect":"NoExecute","tolerationSeconds":300}}],"priority":0,"enableServiceLinks":true,"preemptionPolicy":"PreemptLowerPriority"}},"status":{{"phase":"Running","conditions":[{{"type":"Initialized","status":"True","lastProbeTime":null,"lastTransitionTime":"{started}"}},{{"type":"Ready","status":"True","lastProbeTime":null,"lastTransitionTime":"{started}"}},{{"type":"ContainersReady","status":"True","lastProbeTime":null,"lastTransitionTime":"{started}"}},{{"type":"PodScheduled","status":"True","lastProbeTime":null,"lastTransitionTime":"{started}"}}],"hostIP":"{}","podIP":"{pod_ip}","podIPs":[{{"ip":"{pod_ip}"}}],"startTime":"{started}","containerStatuses":[{}],"qosClass":"Burstable"}}}}"#,
        rng.uuid(),
        site.next_rv(rng),
        rng.alnum(10),
        rng.uuid(),
        containers.join(","),
        site.nodes[node],
        site.node_ips[node],
        statuses.join(",")
    )
}

/// A JSON object written member by member, keeping the order given.
struct Obj {
    out: String,
    empty: bool,
}

impl Obj {
    fn start(mut out: String) -> Obj {
        out.push('{');
        Obj { out, empty: true }
    }

    fn key(&mut self, key: &str) {
        if !self.empty {
            self.out.push(',');
        }
        self.empty = false;
        go_escape(key, &mut self.out);
        self.out.push(':');
    }

    fn str(&mut self, key: &str, value: &str) -> &mut Obj {
        self.key(key);
        go_escape(value, &mut self.out);
        self
    }

    fn strs(&mut self, key: &str, values: &[String]) -> &mut Obj {
        self.key(key);
        self.out.push('[');
        for (i, v) in values.iter().enumerate() {
            if i > 0 {
                self.out.push(',');
            }
            go_escape(v, &mut self.out);
        }
        self.out.push(']');
        self
    }

    fn num(&mut self, key: &str, value: u64) -> &mut Obj {
        self.key(key);
        write!(self.out, "{value}").unwrap();
        self
    }

    /// `value` is already JSON.
    fn raw(&mut self, key: &str, value: &str) -> &mut Obj {
        self.key(key);
        self.out.push_str(value);
        self
    }

    fn end(mut self) -> String {
        self.out.push('}');
        self.out
    }
}

fn go_json(text: &str) -> String {
    let mut out = String::with_capacity(text.len() + 2);
    go_escape(text, &mut out);
    out
}

/// A JSON string as Go's `encoding/json` (and so the API server) writes it: `<`, `>` and `&`
/// as `\u003c`, `\u003e`, `\u0026`; other non-ASCII text as UTF-8.
fn go_escape(text: &str, out: &mut String) {
    out.push('"');
    for c in text.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            '<' | '>' | '&' | '\u{2028}' | '\u{2029}' => {
                write!(out, "\\u{:04x}", c as u32).unwrap()
            }
            c if (c as u32) < 0x20 => write!(out, "\\u{:04x}", c as u32).unwrap(),
            c => out.push(c),
        }
    }
    out.push('"');
}

/// SplitMix64: small, fast, and the same numbers on every platform.
#[derive(Debug, Clone)]
pub struct Rng(u64);

impl Rng {
    pub fn new(seed: u64) -> Rng {
        Rng(seed)
    }

    pub fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }

    /// Uniform in `0..n` (n > 0); the modulo bias is irrelevant here.
    pub fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }

    fn pick<T: Copy>(&mut self, items: &[T]) -> T {
        items[self.below(items.len() as u64) as usize]
    }

    fn chars(&mut self, n: usize, alphabet: &[u8]) -> String {
        (0..n)
            .map(|_| alphabet[self.below(alphabet.len() as u64) as usize] as char)
            .collect()
    }

    fn hex(&mut self, n: usize) -> String {
        self.chars(n, b"0123456789abcdef")
    }

    fn digits(&mut self, n: usize) -> String {
        self.chars(n, b"0123456789")
    }

    fn alnum(&mut self, n: usize) -> String {
        self.chars(n, b"bcdfghjklmnpqrstvwxz2456789")
    }

    fn upper_alnum(&mut self, n: usize) -> String {
        self.chars(n, b"ABCDEFGHIJKLMNOPQRSTUVWXYZ234567")
    }

    fn uuid(&mut self) -> String {
        format!(
            "{}-{}-4{}-{}{}-{}",
            self.hex(8),
            self.hex(4),
            self.hex(3),
            self.pick(&['8', '9', 'a', 'b']),
            self.hex(3),
            self.hex(12)
        )
    }
}
