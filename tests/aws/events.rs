//! Inputs for the emulator tests: the sample events of `events/`, read back the way a reader
//! of the contract would, and generated audit traffic that looks like a busy EKS cluster.

use std::collections::BTreeMap;

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use serde_json::{Value, json};

use crate::common::repo_file;

pub fn sample(name: &str) -> String {
    let path = repo_file(&format!("events/{name}"));
    std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("cannot read {}: {e}", path.display()))
}

/// The subscription message inside an `awslogs` event.
pub fn awslogs_message(event: &str) -> Value {
    let event: Value = serde_json::from_str(event).unwrap();
    let gzip = STANDARD
        .decode(event["awslogs"]["data"].as_str().unwrap())
        .unwrap();
    let json = eks_audit_core::batch::objects::gunzip(&gzip).unwrap();
    serde_json::from_slice(&json).unwrap()
}

/// The object keys contract §6 promises for a direct-mode message under the default filter,
/// worked out from the message itself: cluster from the log group, date and hour from each
/// kept event's `requestReceivedTimestamp`, one object per hour named by its first event id.
/// Maps each key to the ids of its events, in order.
pub fn expected_objects(message: &Value, prefix: &str) -> BTreeMap<String, Vec<String>> {
    let cluster = message["logGroup"]
        .as_str()
        .unwrap()
        .split('/')
        .nth(3)
        .unwrap();
    let stream = message["logStream"].as_str().unwrap();
    let mut hours: Vec<(String, Vec<String>)> = Vec::new();
    for event in message["logEvents"].as_array().unwrap() {
        let audit: Value = serde_json::from_str(event["message"].as_str().unwrap()).unwrap();
        if audit["stage"] != "ResponseComplete" {
            continue;
        }
        let time = audit["requestReceivedTimestamp"].as_str().unwrap();
        let hour = format!("dt={}/hour={}", &time[..10], &time[11..13]);
        let id = event["id"].as_str().unwrap().to_owned();
        match hours.iter_mut().find(|(h, _)| *h == hour) {
            Some((_, ids)) => ids.push(id),
            None => hours.push((hour, vec![id])),
        }
    }
    hours
        .into_iter()
        .map(|(hour, ids)| {
            (
                format!(
                    "{prefix}/cluster={cluster}/{hour}/{stream}-{}.json.gz",
                    ids[0]
                ),
                ids,
            )
        })
        .collect()
}

/// A deterministic pseudo-random sequence, so generated traffic is varied but reproducible.
pub struct Random(u64);

impl Random {
    pub fn new(seed: u64) -> Random {
        Random(seed.wrapping_mul(0x9e37_79b9_7f4a_7c15) | 1)
    }

    pub fn next(&mut self) -> u64 {
        self.0 = self
            .0
            .wrapping_mul(6_364_136_223_846_793_005)
            .wrapping_add(1_442_695_040_888_963_407);
        self.0 >> 33
    }

    pub fn below(&mut self, n: usize) -> usize {
        (self.next() % n as u64) as usize
    }

    pub fn pick<'a>(&mut self, items: &[&'a str]) -> &'a str {
        items[self.below(items.len())]
    }

    pub fn hex(&mut self, len: usize) -> String {
        (0..len)
            .map(|_| char::from(b"0123456789abcdef"[self.below(16)]))
            .collect()
    }
}

/// Generated EKS audit traffic: the mix a cluster sends (controllers watching and updating
/// leases, operators creating pods and secrets, people running `kubectl`), with request and
/// response bodies on writes, as an audit policy at `RequestResponse` level produces. About
/// one event in eight is at the `RequestReceived` stage, which the default filter drops.
pub struct Traffic {
    random: Random,
    next_id: u64,
    pub stream: String,
    /// Writes log their request and response bodies (`RequestResponse` level); without,
    /// every event is at `Metadata` level, as most audit policies log most requests.
    bodies: bool,
}

/// One generated CloudWatch log event, and whether the default filter keeps it.
pub struct LogEvent {
    pub id: String,
    pub kept: bool,
    pub value: Value,
}

const NAMESPACES: &[&str] = &[
    "default",
    "kube-system",
    "payments",
    "checkout",
    "monitoring",
    "argocd",
    "team-data",
];
const VERBS: &[&str] = &[
    "get", "list", "watch", "create", "update", "patch", "delete",
];
const RESOURCES: &[&str] = &[
    "pods",
    "deployments",
    "configmaps",
    "secrets",
    "leases",
    "services",
    "events",
    "replicasets",
];
const ENV_NAMES: &[&str] = &[
    "AWS_REGION",
    "AWS_ROLE_ARN",
    "AWS_WEB_IDENTITY_TOKEN_FILE",
    "LOG_LEVEL",
    "PORT",
    "DB_HOST",
    "FEATURE_FLAGS",
];
const ENV_VALUES: &[&str] = &[
    "eu-west-1",
    "arn:aws:iam::111122223333:role/payments-api",
    "/var/run/secrets/eks.amazonaws.com/serviceaccount/token",
    "info",
    "8080",
    "payments.cluster-abc123.eu-west-1.rds.amazonaws.com",
    "checkout-v2,fast-path",
];
const AGENTS: &[&str] = &[
    "kubectl/v1.29.3 (linux/amd64) kubernetes/6813625",
    "kube-controller-manager/v1.29.3 (linux/amd64) kubernetes/6813625/leader-election",
    "argocd-application-controller/v2.10.4",
    "Go-http-client/2.0",
    "eks-pod-identity-agent/v0.1.6",
];

impl Traffic {
    pub fn new(seed: u64) -> Traffic {
        let mut random = Random::new(seed);
        let stream = format!("kube-apiserver-audit-{}", random.hex(32));
        Traffic {
            random,
            next_id: 38_000_000_000_000_000 + seed * 1_000_000,
            stream,
            bodies: true,
        }
    }

    /// Traffic logged at `Metadata` level only.
    pub fn metadata_only(seed: u64) -> Traffic {
        Traffic {
            bodies: false,
            ..Traffic::new(seed)
        }
    }

    pub fn events(&mut self, count: usize) -> Vec<LogEvent> {
        (0..count).map(|_| self.event()).collect()
    }

    fn event(&mut self) -> LogEvent {
        let r = &mut self.random;
        let verb = r.pick(VERBS);
        let resource = r.pick(RESOURCES);
        let namespace = r.pick(NAMESPACES);
        let name = format!(
            "{}-{}-{}",
            resource.trim_end_matches('s'),
            r.hex(10),
            r.hex(5)
        );
        let stage = if r.below(8) == 0 {
            "RequestReceived"
        } else {
            "ResponseComplete"
        };
        let second = r.below(3600);
        let time = format!(
            "2024-05-21T10:{:02}:{:02}.{:06}Z",
            second / 60,
            second % 60,
            r.below(1_000_000)
        );
        let (user, groups, extra) = match r.below(3) {
            0 => (
                format!(
                    "system:serviceaccount:{namespace}:{}-controller",
                    r.pick(&["argocd", "karpenter", "cert-manager"])
                ),
                json!([
                    "system:serviceaccounts",
                    format!("system:serviceaccounts:{namespace}"),
                    "system:authenticated"
                ]),
                json!({}),
            ),
            1 => (
                "kubernetes-admin".to_owned(),
                json!(["system:masters", "system:authenticated"]),
                json!({"arn": [format!("arn:aws:sts::111122223333:assumed-role/EKSAdmin/{}", r.hex(8))],
                       "canonicalArn": ["arn:aws:iam::111122223333:role/EKSAdmin"],
                       "sessionName": [r.hex(8)], "accessKeyId": [format!("ASIA{}", r.hex(16).to_uppercase())]}),
            ),
            _ => (
                "system:kube-controller-manager".to_owned(),
                json!(["system:authenticated"]),
                json!({}),
            ),
        };
        let named = !matches!(verb, "list" | "watch" | "create");
        let uri = match (named, resource) {
            (true, _) => format!("/api/v1/namespaces/{namespace}/{resource}/{name}"),
            (false, _) => format!(
                "/api/v1/namespaces/{namespace}/{resource}?limit=500&resourceVersion={}",
                r.below(9_999_999)
            ),
        };
        let code = [200, 200, 200, 200, 201, 404, 403, 409][r.below(8)];
        let mut event = json!({
            "kind": "Event", "apiVersion": "audit.k8s.io/v1",
            "level": if self.bodies && matches!(verb, "create" | "update" | "patch") { "RequestResponse" } else { "Metadata" },
            "auditID": format!("{}-{}-4{}-8{}-{}", r.hex(8), r.hex(4), r.hex(3), r.hex(3), r.hex(12)),
            "stage": stage, "requestURI": uri, "verb": verb,
            "user": {"username": user, "uid": format!("aws-iam-authenticator:111122223333:{}", r.hex(21).to_uppercase()), "groups": groups, "extra": extra},
            "sourceIPs": [format!("10.{}.{}.{}", r.below(256), r.below(256), r.below(256))],
            "userAgent": r.pick(AGENTS),
            "objectRef": {"resource": resource, "namespace": namespace, "name": if named { name.clone() } else { String::new() }, "apiVersion": "v1"},
            "requestReceivedTimestamp": time, "stageTimestamp": time,
            "annotations": {"authorization.k8s.io/decision": if code == 403 { "forbid" } else { "allow" },
                            "authorization.k8s.io/reason": format!("RBAC: allowed by ClusterRoleBinding \"{}\" of ClusterRole \"{}\"",
                                r.pick(&["system:controller:deployment-controller", "argocd-application-controller", "eks:k8s-metrics", "cluster-admin"]),
                                r.pick(&["system:controller:deployment-controller", "argocd-application-controller", "eks:k8s-metrics", "cluster-admin"]))},
        });
        if stage == "ResponseComplete" {
            event["responseStatus"] = json!({"metadata": {}, "code": code});
        }
        if event["level"] == "RequestResponse" {
            let body = self.pod_body(namespace, &name);
            event["requestObject"] = body.clone();
            event["responseObject"] = body;
        }
        self.next_id += 1 + self.random.below(1000) as u64;
        let id = format!("{:056}", self.next_id);
        let kept = stage == "ResponseComplete";
        let value = json!({"id": id, "timestamp": 1_716_285_600_000_i64 + second as i64 * 1000, "message": event.to_string()});
        LogEvent { id, kept, value }
    }

    /// A pod as `kubectl apply` sends it: labels, a container or two, env, resources.
    fn pod_body(&mut self, namespace: &str, name: &str) -> Value {
        let r = &mut self.random;
        let containers: Vec<Value> = (0..1 + r.below(2))
            .map(|c| {
                json!({"name": format!("app-{c}"), "image": format!("111122223333.dkr.ecr.eu-west-1.amazonaws.com/{}:{}", r.pick(&["api", "worker", "web"]), r.hex(12)),
                       "env": (0..2 + r.below(5)).map(|_| json!({"name": r.pick(ENV_NAMES), "value": r.pick(ENV_VALUES)})).collect::<Vec<_>>(),
                       "resources": {"requests": {"cpu": format!("{}m", 100 + r.below(900)), "memory": format!("{}Mi", 128 + r.below(900))}},
                       "ports": [{"containerPort": 8000 + r.below(1000), "protocol": "TCP"}]})
            })
            .collect();
        let spec = json!({"containers": containers, "serviceAccountName": "default"});
        let applied = json!({"apiVersion": "v1", "kind": "Pod", "metadata": {"name": name, "namespace": namespace}, "spec": spec});
        let mut spec = spec;
        spec["nodeName"] = json!(format!(
            "ip-10-0-{}-{}.eu-west-1.compute.internal",
            r.below(256),
            r.below(256)
        ));
        json!({"kind": "Pod", "apiVersion": "v1",
               "metadata": {"name": name, "namespace": namespace, "uid": format!("{}-{}-{}", r.hex(8), r.hex(4), r.hex(12)),
                            "labels": {"app": name.split('-').next().unwrap_or("app"), "pod-template-hash": r.hex(10)},
                            "annotations": {"kubectl.kubernetes.io/last-applied-configuration": applied.to_string()}},
               "spec": spec})
    }

    /// A DATA_MESSAGE of this stream holding `events`.
    pub fn message(&self, events: &[LogEvent]) -> Value {
        json!({
            "messageType": "DATA_MESSAGE", "owner": crate::common::ACCOUNT, "logGroup": crate::common::GROUP,
            "logStream": self.stream, "subscriptionFilters": ["eks-audit"],
            "logEvents": events.iter().map(|e| e.value.clone()).collect::<Vec<_>>(),
        })
    }
}
