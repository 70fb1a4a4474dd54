#!/usr/bin/env python3
"""Write the audit events that the Sigma rules are tested with.

    python3 scripts/make-rule-tests.py           # (re)write the files
    python3 scripts/make-rule-tests.py --check   # exit 1 if a file is missing, stale or extra

Outputs (run from the repository root):

* rules/tests/<rule stem>/fires*.json: events rules/<rule stem>.yml must match;
  rules/tests/<rule stem>/misses*.json: near misses it must not match. `misses.json`
  changes one relevant thing of `fires.json`; other misses-<what>.json files exercise a
  filter of the rule.
* tests/fixtures/sigma-tests/<SigmaHQ rule stem>/{fires,misses}.json: the same for the 16
  SigmaHQ Kubernetes audit rules, matched after rules/pipelines/sigmahq-kubernetes.yml.

Every file holds one `audit.k8s.io/v1` Event as EKS writes it to CloudWatch Logs (stage
ResponseComplete, which is the only stage the forwarder evaluates), except the tests of a
correlation rule: each holds a JSON array of such events, one invocation's worth, in order, at
the offsets the case gives from a start derived from the path (so a case says plainly how far
apart its events are). The events are written
for this project; their shapes follow the real EKS events of the third-party corpus
(`eks:k8s-metrics`'s list, the `aws-iam-authenticator` identities of
tests/fixtures/third-party) and Kubernetes' audit types. Identifiers are deterministic:
auditID is a UUID (version 4 layout) derived from the output path, and the timestamps are
spread over 2026-11-29 by the same hash, so regenerating changes nothing.
"""

import copy
import hashlib
import json
import sys
import uuid
from datetime import datetime, timedelta, timezone
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
RULE_TESTS = ROOT / "rules" / "tests"
SIGMA_TESTS = ROOT / "tests" / "fixtures" / "sigma-tests"

ACCOUNT = "111122223333"
K8S = "v1.31.2"
EKS_BUILD = "v1.31.2-eks-7f9249a"
KUBECTL = f"kubectl/{K8S} (linux/amd64) kubernetes/5864a46"
KUBECTL_MAC = f"kubectl/{K8S} (darwin/arm64) kubernetes/5864a46"
KUBELET = f"kubelet/{EKS_BUILD} (linux/amd64) kubernetes/7f9249a"


def kcm_agent(controller):
    return (f"kube-controller-manager/{EKS_BUILD} (linux/amd64) kubernetes/7f9249a/"
            f"system:serviceaccount:kube-system:{controller}")


# ---------------------------------------------------------------------------------------
# Identities, as EKS authenticates them.

def iam_user(username, role, session, principal_id, key_id, groups):
    """An IAM role session, mapped by an access entry or aws-auth."""
    return {
        "username": username,
        "uid": f"aws-iam-authenticator:{ACCOUNT}:{principal_id}",
        "groups": groups,
        "extra": {
            "accessKeyId": [key_id],
            "arn": [f"arn:aws:sts::{ACCOUNT}:assumed-role/{role}/{session}"],
            "canonicalArn": [f"arn:aws:iam::{ACCOUNT}:role/{role}"],
            "principalId": [principal_id],
            "sessionName": [session],
        },
    }


def service_account(namespace, name, pod, node="ip-10-0-12-41.eu-west-1.compute.internal"):
    """A pod's projected service account token (Kubernetes 1.30+ adds the pod and node)."""
    digest = hashlib.sha256(f"{namespace}/{name}/{pod}".encode()).hexdigest()
    return {
        "username": f"system:serviceaccount:{namespace}:{name}",
        "uid": str(uuid.UUID(digest[:32], version=4)),
        "groups": ["system:serviceaccounts", f"system:serviceaccounts:{namespace}",
                   "system:authenticated"],
        "extra": {
            "authentication.kubernetes.io/credential-id": [f"JTI={uuid.UUID(digest[32:], version=4)}"],
            "authentication.kubernetes.io/node-name": [node],
            "authentication.kubernetes.io/node-uid": ["5b0e5a3c-1f2d-4c6e-9a8b-7d6c5e4f3a21"],
            "authentication.kubernetes.io/pod-name": [pod],
            "authentication.kubernetes.io/pod-uid": ["e2a1c9d4-6b3f-4f7a-8c2e-1d0b9a8f7e65"],
        },
    }


def controller(name):
    digest = hashlib.sha256(name.encode()).hexdigest()
    return {
        "username": f"system:serviceaccount:kube-system:{name}",
        "uid": str(uuid.UUID(digest[:32], version=4)),
        "groups": ["system:serviceaccounts", "system:serviceaccounts:kube-system",
                   "system:authenticated"],
    }


# aws-auth mapped administrator in system:masters (RBAC is bypassed: the reason is empty).
ADMIN = iam_user("kubernetes-admin", "EKSClusterAdmin", "alice", "AROAYEXAMPLEADMINR001",
                 "ASIAYEXAMPLEKEY00001", ["system:masters", "system:authenticated"])
ADMIN_REASON = ""
# Access entry with the AmazonEKSClusterAdminPolicy access policy.
AE_ADMIN = iam_user(f"arn:aws:sts::{ACCOUNT}:assumed-role/PlatformAdmin/carol", "PlatformAdmin",
                    "carol", "AROAYEXAMPLEPLATF003", "ASIAYEXAMPLEKEY00003", ["system:authenticated"])
AE_ADMIN_REASON = (
    "EKS Access Policy: allowed by ClusterRoleBinding "
    f"\"arn:aws:iam::{ACCOUNT}:role/PlatformAdmin+arn:aws:eks::aws:cluster-access-policy/"
    "AmazonEKSClusterAdminPolicy\" of ClusterRole \"arn:aws:eks::aws:cluster-access-policy/"
    f"AmazonEKSClusterAdminPolicy\" to User \"arn:aws:sts::{ACCOUNT}:assumed-role/PlatformAdmin/carol\"")
# Access entry mapped to the Kubernetes group platform-devs, bound to edit through RBAC.
DEV = iam_user(f"arn:aws:sts::{ACCOUNT}:assumed-role/PlatformDeveloper/bob", "PlatformDeveloper",
               "bob", "AROAYEXAMPLEDEVEL002", "ASIAYEXAMPLEKEY00002",
               ["platform-devs", "system:authenticated"])
DEV_REASON = ('RBAC: allowed by ClusterRoleBinding "platform-devs-edit" of ClusterRole "edit" '
              'to Group "platform-devs"')
# A workload's service account (the usual stolen credential).
APP_SA = service_account("payments", "api", "api-7c9d8b5f4-x2x9z")
APP_SA_REASON = ('RBAC: allowed by RoleBinding "api-ops/payments" of ClusterRole "admin" '
                 'to ServiceAccount "api/payments"')
NODE_NAME = "ip-10-0-12-41.eu-west-1.compute.internal"
NODE = {
    "username": f"system:node:{NODE_NAME}",
    "uid": f"aws-iam-authenticator:{ACCOUNT}:AROAYEXAMPLENODER004",
    "groups": ["system:bootstrappers", "system:nodes", "system:authenticated"],
    "extra": {
        "accessKeyId": ["ASIAYEXAMPLEKEY00004"],
        "arn": [f"arn:aws:sts::{ACCOUNT}:assumed-role/eks-node-group-role/i-0a1b2c3d4e5f60718"],
        "canonicalArn": [f"arn:aws:iam::{ACCOUNT}:role/eks-node-group-role"],
        "principalId": ["AROAYEXAMPLENODER004"],
        "sessionName": ["i-0a1b2c3d4e5f60718"],
    },
}
ANONYMOUS = {"username": "system:anonymous", "groups": ["system:unauthenticated"]}
APISERVER = {"username": "system:apiserver", "uid": "4f1c2d3e-5a6b-4c7d-8e9f-0a1b2c3d4e5f",
             "groups": ["system:authenticated"]}
ADDON_MANAGER = {"username": "eks:addon-manager", "groups": ["system:authenticated"]}

LAPTOP = ["203.0.113.24"]      # an administrator's or developer's public address
ATTACKER = ["198.51.100.77"]    # an address nobody recognises
POD_IP = ["10.0.12.187"]
NODE_IP = ["10.0.12.41"]
CONTROL_PLANE = ["172.16.34.112"]


def rbac_reason(kind, binding, role, subject_kind, subject, namespace=None):
    where = f"{binding}/{namespace}" if namespace else binding
    return (f'RBAC: allowed by {kind} "{where}" of ClusterRole "{role}" to '
            f'{subject_kind} "{subject}"')


# ---------------------------------------------------------------------------------------
# The event.

BASE = datetime(2026, 11, 29, 0, 0, 0, tzinfo=timezone.utc)


def _digest(key):
    return hashlib.sha256(key.encode()).digest()


def _stamp(t):
    return t.strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def event(*, verb, uri, user, object_ref, code, reason, level="Request", request=None,
          agent=KUBECTL, source=LAPTOP, decision="allow", annotations=None, failure=None):
    """One audit event; auditID and times are filled in when it is written."""
    status = {"metadata": {}, "code": code}
    if failure:
        status = {"metadata": {}, "status": "Failure", "message": failure[1],
                  "reason": failure[0], "details": failure[2], "code": code}
    ev = {
        "kind": "Event",
        "apiVersion": "audit.k8s.io/v1",
        "level": level,
        "auditID": None,
        "stage": "ResponseComplete",
        "requestURI": uri,
        "verb": verb,
        "user": copy.deepcopy(user),
        "sourceIPs": list(source),
        "userAgent": agent,
        "objectRef": dict(object_ref),
        "responseStatus": status,
    }
    if request is not None:
        ev["requestObject"] = request
    ev["requestReceivedTimestamp"] = None
    ev["stageTimestamp"] = None
    ann = {"authorization.k8s.io/decision": decision, "authorization.k8s.io/reason": reason}
    ann.update(annotations or {})
    ev["annotations"] = ann
    return ev


def forbidden(ev, resource, name=None):
    """The same request refused by RBAC: 403, decision forbid, no reason."""
    ev = copy.deepcopy(ev)
    who = ev["user"]["username"]
    ns = ev["objectRef"].get("namespace")
    group = ev["objectRef"].get("apiGroup", "")
    where = f' in the namespace "{ns}"' if ns else " at the cluster scope"
    what = f'{resource} "{name}"' if name else resource
    msg = (f'{what} is forbidden: User "{who}" cannot {ev["verb"]} resource "{resource}" '
           f'in API group "{group}"{where}')
    details = {"kind": resource.split("/")[0]}
    if name:
        details["name"] = name
    ev["responseStatus"] = {"metadata": {}, "status": "Failure", "message": msg,
                            "reason": "Forbidden", "details": details, "code": 403}
    ev["annotations"] = {"authorization.k8s.io/decision": "forbid",
                         "authorization.k8s.io/reason": ""}
    ev.pop("requestObject", None)
    return ev


def finish(ev, key):
    """Fill in the deterministic auditID and timestamps."""
    ev = copy.deepcopy(ev)
    d = _digest(key)
    ev["auditID"] = str(uuid.UUID(bytes=d[:16], version=4))
    start = BASE + timedelta(seconds=int.from_bytes(d[16:20], "big") % 86000,
                             microseconds=int.from_bytes(d[20:23], "big") % 1000000)
    took = timedelta(microseconds=2000 + int.from_bytes(d[23:26], "big") % 40000)
    if ev.get("objectRef", {}).get("subresource") in ("exec", "attach", "portforward") and \
            ev["responseStatus"]["code"] == 101:
        took = timedelta(seconds=20 + d[26] % 200, microseconds=int.from_bytes(d[27:30], "big") % 1000000)
    ev["requestReceivedTimestamp"] = _stamp(start)
    ev["stageTimestamp"] = _stamp(start + took)
    return ev


# ---------------------------------------------------------------------------------------
# Objects.

def container(name, image, security_context=None, mounts=None, **extra):
    c = {"name": name, "image": image, **extra}
    c.setdefault("resources", {"requests": {"cpu": "100m", "memory": "128Mi"}})
    if mounts:
        c["volumeMounts"] = mounts
    if security_context is not None:
        c["securityContext"] = security_context
    return c


def app_spec():
    """An ordinary, unprivileged payments API pod spec."""
    return {
        "serviceAccountName": "api",
        "containers": [container(
            "api", f"{ACCOUNT}.dkr.ecr.eu-west-1.amazonaws.com/payments-api:2.14.0",
            {"allowPrivilegeEscalation": False, "runAsNonRoot": True,
             "capabilities": {"drop": ["ALL"]}},
            ports=[{"containerPort": 8080, "name": "http", "protocol": "TCP"}])],
    }


def pod(name, namespace, spec, labels=None, generate_name=None):
    meta = {"namespace": namespace, "labels": labels or {"app": name.split("-")[0]}}
    if generate_name:
        meta = {"generateName": generate_name, **meta}
    else:
        meta = {"name": name, **meta}
    return {"kind": "Pod", "apiVersion": "v1", "metadata": meta, "spec": spec}


WORKLOADS = {
    # kind: (resource, api group, version, URI prefix)
    "Deployment": ("deployments", "apps", "v1", "/apis/apps/v1"),
    "DaemonSet": ("daemonsets", "apps", "v1", "/apis/apps/v1"),
    "StatefulSet": ("statefulsets", "apps", "v1", "/apis/apps/v1"),
    "ReplicaSet": ("replicasets", "apps", "v1", "/apis/apps/v1"),
    "ReplicationController": ("replicationcontrollers", None, "v1", "/api/v1"),
    "Job": ("jobs", "batch", "v1", "/apis/batch/v1"),
    "CronJob": ("cronjobs", "batch", "v1", "/apis/batch/v1"),
}


def workload(kind, name, namespace, spec):
    labels = {"app": name}
    template = {"metadata": {"labels": labels}, "spec": spec}
    if kind == "CronJob":
        body = {"schedule": "*/15 * * * *", "concurrencyPolicy": "Forbid",
                "jobTemplate": {"spec": {"backoffLimit": 0,
                                         "template": {"metadata": {"labels": labels},
                                                      "spec": {**spec, "restartPolicy": "Never"}}}}}
    elif kind == "Job":
        body = {"backoffLimit": 0, "template": {"metadata": {"labels": labels},
                                                "spec": {**spec, "restartPolicy": "Never"}}}
    elif kind == "ReplicationController":
        body = {"replicas": 1, "selector": labels, "template": template}
    else:
        body = {"selector": {"matchLabels": labels}, "template": template}
        if kind in ("Deployment", "ReplicaSet", "StatefulSet"):
            body = {"replicas": 1, **body}
        if kind == "StatefulSet":
            body["serviceName"] = name
    group = WORKLOADS[kind][1]
    api_version = f"{group}/v1" if group else "v1"
    return {"kind": kind, "apiVersion": api_version,
            "metadata": {"name": name, "namespace": namespace, "labels": labels}, "spec": body}


def create_pod(obj, user, reason, agent=KUBECTL, source=LAPTOP, name_in_ref=True):
    ns = obj["metadata"]["namespace"]
    ref = {"resource": "pods", "namespace": ns, "apiVersion": "v1"}
    if name_in_ref and "name" in obj["metadata"]:
        ref["name"] = obj["metadata"]["name"]
    return event(verb="create", uri=f"/api/v1/namespaces/{ns}/pods", user=user, object_ref=ref,
                 code=201, reason=reason, request=obj, agent=agent, source=source,
                 annotations={"pod-security.kubernetes.io/enforce-policy": "privileged:latest"})


def create_workload(obj, user, reason, verb="create", agent=KUBECTL, source=LAPTOP):
    kind = obj["kind"]
    resource, group, version, prefix = WORKLOADS[kind]
    ns, name = obj["metadata"]["namespace"], obj["metadata"]["name"]
    ref = {"resource": resource, "namespace": ns, "name": name}
    if group:
        ref["apiGroup"] = group
    ref["apiVersion"] = version
    uri = f"{prefix}/namespaces/{ns}/{resource}"
    if verb != "create":
        uri += f"/{name}"
    code = 201 if verb == "create" else 200
    return event(verb=verb, uri=uri, user=user, object_ref=ref, code=code, reason=reason,
                 request=obj, agent=agent, source=source)


# ---------------------------------------------------------------------------------------
# Pod-spec rules: every place a pod spec can be written.

def pod_spec_cases(stem, apply, *, containers_level, misses_apply, variants=None):
    """fires for a pod, its init/ephemeral containers and every workload kind; misses for
    the same pod without the feature, a kube-system controller's pod and a status write.

    apply(spec, shape) turns the feature on in a pod spec; misses_apply(spec) writes the
    harmless neighbour of the feature."""
    out = {}
    variants = variants or {}

    def spec_with(shape):
        spec = app_spec()
        apply(spec, shape)
        return spec

    out["fires.json"] = create_pod(pod("api-debug", "payments", spec_with("pod")), DEV, DEV_REASON)
    if containers_level:
        spec = app_spec()
        spec["initContainers"] = [container("init-net", "public.ecr.aws/docker/library/busybox:1.36",
                                            command=["sh", "-c", "sysctl -w net.core.somaxconn=4096"])]
        apply(spec, "init")
        out["fires-initcontainer.json"] = create_pod(pod("api-tuned", "payments", spec), DEV, DEV_REASON)
        eph = {"name": "debugger-k7x2p", "image": "public.ecr.aws/docker/library/busybox:1.36",
               "resources": {}, "stdin": True, "targetContainerName": "api",
               "terminationMessagePolicy": "File", "tty": True}
        holder = {"containers": [eph]}
        apply(holder, "ephemeral")
        body = {"spec": {"ephemeralContainers": holder["containers"]}}
        name = "api-7c9d8b5f4-x2x9z"
        out["fires-ephemeral.json"] = event(
            verb="patch", uri=f"/api/v1/namespaces/payments/pods/{name}/ephemeralcontainers",
            user=DEV, reason=DEV_REASON, code=200, request=body,
            object_ref={"resource": "pods", "namespace": "payments", "name": name,
                        "apiVersion": "v1", "subresource": "ephemeralcontainers"})
    for kind, file_kind, name, ns in (
            ("Deployment", "deployment", "metrics-agent", "monitoring"),
            ("DaemonSet", "daemonset", "node-agent", "monitoring"),
            ("StatefulSet", "statefulset", "ledger", "payments"),
            ("ReplicaSet", "replicaset", "api-canary", "payments"),
            ("ReplicationController", "replicationcontroller", "legacy-worker", "payments"),
            ("Job", "job", "db-migrate", "payments"),
            ("CronJob", "cronjob", "nightly-report", "payments")):
        obj = workload(kind, name, ns, spec_with(file_kind))
        out[f"fires-{file_kind}.json"] = create_workload(obj, ADMIN, ADMIN_REASON)

    spec = app_spec()
    misses_apply(spec)
    out["misses.json"] = create_pod(pod("api-debug", "payments", spec), DEV, DEV_REASON)

    # EKS's own DaemonSet pod, created by the DaemonSet controller in kube-system.
    spec = spec_with("kube-system")
    spec["serviceAccountName"] = "kube-proxy"
    spec["containers"][0]["name"] = "kube-proxy"
    spec["containers"][0]["image"] = ("602401143452.dkr.ecr.eu-west-1.amazonaws.com/eks/"
                                      "kube-proxy:v1.31.2-minimal-eksbuild.3")
    spec["nodeName"] = NODE_NAME
    obj = pod(None, "kube-system", spec, labels={"k8s-app": "kube-proxy"},
              generate_name="kube-proxy-")
    obj["metadata"]["ownerReferences"] = [{"apiVersion": "apps/v1", "kind": "DaemonSet",
                                           "name": "kube-proxy", "controller": True,
                                           "blockOwnerDeletion": True,
                                           "uid": "0c6f3d2a-9b8e-4a7d-8c5b-3e2f1a0d9c8b"}]
    out["misses-kube-system-controller.json"] = create_pod(
        obj, controller("daemon-set-controller"),
        rbac_reason("ClusterRoleBinding", "system:controller:daemon-set-controller",
                    "system:controller:daemon-set-controller", "ServiceAccount",
                    "daemon-set-controller/kube-system"),
        agent=kcm_agent("daemon-set-controller"), source=CONTROL_PLANE, name_in_ref=False)

    # The Deployment controller writing status: the spec is echoed, not changed.
    obj = workload("Deployment", "metrics-agent", "monitoring", spec_with("deployment"))
    obj["metadata"].update({"generation": 3, "resourceVersion": "48213377",
                            "uid": "9d8c7b6a-5f4e-4d3c-8b2a-1f0e9d8c7b6a"})
    obj["status"] = {"observedGeneration": 3, "replicas": 1, "readyReplicas": 1,
                     "availableReplicas": 1, "updatedReplicas": 1}
    ev = create_workload(obj, controller("deployment-controller"),
                         rbac_reason("ClusterRoleBinding", "system:controller:deployment-controller",
                                     "system:controller:deployment-controller", "ServiceAccount",
                                     "deployment-controller/kube-system"),
                         verb="update", agent=kcm_agent("deployment-controller"), source=CONTROL_PLANE)
    ev["objectRef"]["subresource"] = "status"
    ev["requestURI"] += "/status"
    out["misses-status.json"] = ev
    return {stem: out}


def privileged(spec, shape):
    target = spec["initContainers"][0] if shape == "init" else spec["containers"][0]
    target["securityContext"] = {"privileged": True}


def not_privileged(spec):
    spec["containers"][0]["securityContext"] = {"privileged": False,
                                                "allowPrivilegeEscalation": False,
                                                "runAsNonRoot": True}


CAPS_BY_SHAPE = {"pod": ["SYS_ADMIN"], "init": ["NET_ADMIN"], "ephemeral": ["SYS_PTRACE"],
                 "deployment": ["BPF", "PERFMON"], "daemonset": ["SYS_MODULE"],
                 "statefulset": ["DAC_READ_SEARCH"], "replicaset": ["ALL"],
                 "replicationcontroller": ["SYS_RAWIO"], "job": ["SYS_ADMIN"],
                 "cronjob": ["SYS_PTRACE"], "kube-system": ["NET_ADMIN"]}


def add_caps(spec, shape):
    target = spec["initContainers"][0] if shape == "init" else spec["containers"][0]
    sc = target.setdefault("securityContext", {})
    sc.pop("capabilities", None)
    sc.pop("runAsNonRoot", None)
    sc["capabilities"] = {"add": CAPS_BY_SHAPE[shape]}


def harmless_caps(spec):
    spec["containers"][0]["securityContext"] = {
        "allowPrivilegeEscalation": False,
        "capabilities": {"add": ["NET_BIND_SERVICE"], "drop": ["ALL"]}}


def host_flag(flag):
    def apply(spec, shape):
        spec[flag] = True
    return apply


def host_flag_off(flag):
    def apply(spec):
        spec[flag] = False
    return apply


def mount(spec, path, name="host"):
    spec.setdefault("volumes", []).append({"name": name, "hostPath": {"path": path,
                                                                      "type": "Directory"}})
    spec["containers"][0].setdefault("volumeMounts", []).append(
        {"name": name, "mountPath": "/host" + (path if path != "/" else ""), "readOnly": True})


PATH_BY_SHAPE = {"pod": "/", "deployment": "/etc", "daemonset": "/var/lib/kubelet",
                 "statefulset": "/proc", "replicaset": "/run/containerd",
                 "replicationcontroller": "/home", "job": "/root",
                 "cronjob": "/var/run/docker.sock", "kube-system": "/var/lib/kubelet"}


def sensitive_mount(spec, shape):
    mount(spec, PATH_BY_SHAPE[shape])
    if shape == "cronjob":
        spec["volumes"][-1]["hostPath"]["type"] = "Socket"


def any_host_mount(spec, shape):
    mount(spec, "/var/log/pods" if shape != "pod" else "/var/log")


def empty_dir(spec):
    spec["volumes"] = [{"name": "scratch", "emptyDir": {}}]
    spec["containers"][0]["volumeMounts"] = [{"name": "scratch", "mountPath": "/scratch"}]


def not_sensitive_mount(spec):
    mount(spec, "/var/log")


def pod_spec_rules():
    out = {}
    out.update(pod_spec_cases("privileged_container", privileged, containers_level=True,
                              misses_apply=not_privileged))
    out.update(pod_spec_cases("dangerous_capabilities", add_caps, containers_level=True,
                              misses_apply=harmless_caps))
    out.update(pod_spec_cases("hostpath_volume", any_host_mount, containers_level=False,
                              misses_apply=empty_dir))
    out.update(pod_spec_cases("sensitive_hostpath_mount", sensitive_mount,
                              containers_level=False, misses_apply=not_sensitive_mount))
    for stem, flag in (("host_network_pod", "hostNetwork"), ("host_pid_pod", "hostPID"),
                       ("host_ipc_pod", "hostIPC")):
        out.update(pod_spec_cases(stem, host_flag(flag), containers_level=False,
                                  misses_apply=host_flag_off(flag)))
    return out


# ---------------------------------------------------------------------------------------
# Sessions: exec, attach, port-forward.

APP_POD = "api-7c9d8b5f4-x2x9z"


def session(sub, query, *, namespace="payments", pod_name=APP_POD, verb="create", user=DEV,
            reason=DEV_REASON, source=LAPTOP, agent=KUBECTL):
    uri = f"/api/v1/namespaces/{namespace}/pods/{pod_name}/{sub}"
    if query:
        uri += "?" + query
    return event(verb=verb, uri=uri, user=user, reason=reason, code=101, level="Metadata",
                 source=source, agent=agent,
                 object_ref={"resource": "pods", "namespace": namespace, "name": pod_name,
                             "apiVersion": "v1", "subresource": sub})


def session_rules():
    sh = "command=sh&container=api&stdin=true&stdout=true&tty=true"
    out = {}
    exec_ev = session("exec", sh)
    out["pod_exec"] = {
        "fires.json": exec_ev,
        "fires-websocket.json": session("exec", sh, verb="get"),
        "misses.json": forbidden(exec_ev, "pods/exec", APP_POD),
    }
    attach_q = "container=api&stdin=true&stdout=true&tty=true"
    out["pod_attach"] = {
        "fires.json": session("attach", attach_q),
        "fires-websocket.json": session("attach", attach_q, verb="get"),
        "misses.json": session("exec", sh),
    }
    pf = session("portforward", "ports=5432", pod_name="ledger-0")
    out["pod_portforward"] = {
        "fires.json": pf,
        "fires-websocket.json": session("portforward", "ports=5432", pod_name="ledger-0", verb="get"),
        "misses.json": forbidden(pf, "pods/portforward", "ledger-0"),
    }
    cp_out = ("command=tar&command=cf&command=-&command=%2Fapp%2Fconfig"
              "&container=api&stderr=true&stdout=true")
    cp_in = ("command=tar&command=--no-same-permissions&command=--no-same-owner&command=-xmf"
             "&command=-&command=-C&command=%2Ftmp&container=api&stderr=true&stdin=true&stdout=true")
    out["kubectl_cp"] = {
        "fires.json": session("exec", cp_out),
        "fires-copy-in.json": session("exec", cp_in, verb="get"),
        "misses.json": session("exec", "command=sh&command=-c&command=ls+-la+%2Fapp%2Fconfig"
                                       "&container=api&stderr=true&stdout=true"),
    }
    aws_node = "aws-node-9xk2w"
    ks = session("exec", "command=bash&container=aws-node&stdin=true&stdout=true&tty=true",
                 namespace="kube-system", pod_name=aws_node, user=ADMIN, reason=ADMIN_REASON)
    out["pod_exec_kube_system"] = {
        "fires.json": ks,
        "fires-websocket.json": session("exec", "command=sh&container=kube-proxy&stdin=true&stdout=true&tty=true",
                                        namespace="kube-system", pod_name="kube-proxy-4mz8d", verb="get",
                                        user=APP_SA, reason=APP_SA_REASON, source=ATTACKER),
        "misses.json": session("exec", "command=bash&container=aws-node&stdin=true&stdout=true&tty=true",
                               namespace="payments", pod_name=aws_node, user=ADMIN, reason=ADMIN_REASON),
    }
    token = "command=cat&command=%2Fvar%2Frun%2Fsecrets%2Fkubernetes.io%2Fserviceaccount%2Ftoken"
    irsa = "command=cat&command=%2Fvar%2Frun%2Fsecrets%2Feks.amazonaws.com%2Fserviceaccount%2Ftoken"
    podid = ("command=sh&command=-c&command=cat+%2Fvar%2Frun%2Fsecrets%2Fpods.eks.amazonaws.com"
             "%2Fserviceaccount%2Feks-pod-identity-token")
    out["exec_reads_serviceaccount_token"] = {
        "fires.json": session("exec", token + "&container=api&stderr=true&stdout=true",
                              user=APP_SA, reason=APP_SA_REASON, source=ATTACKER),
        "fires-irsa.json": session("exec", irsa + "&container=api&stderr=true&stdout=true"),
        "fires-pod-identity.json": session("exec", podid + "&container=api&stderr=true&stdout=true",
                                           verb="get"),
        "misses.json": session("exec", "command=cat&command=%2Fetc%2Fhostname"
                                       "&container=api&stderr=true&stdout=true",
                               user=APP_SA, reason=APP_SA_REASON, source=ATTACKER),
    }
    return out


# ---------------------------------------------------------------------------------------
# RBAC.

RBAC = "rbac.authorization.k8s.io"


def rbac_write(kind, name, body, *, namespace=None, verb="create", user=ADMIN, reason=ADMIN_REASON,
               source=LAPTOP, agent=KUBECTL):
    resource = {"ClusterRole": "clusterroles", "Role": "roles",
                "ClusterRoleBinding": "clusterrolebindings", "RoleBinding": "rolebindings"}[kind]
    meta = {"name": name}
    if namespace:
        meta["namespace"] = namespace
    obj = {"kind": kind, "apiVersion": f"{RBAC}/v1", "metadata": meta, **(body or {})}
    uri = f"/apis/{RBAC}/v1" + (f"/namespaces/{namespace}" if namespace else "") + f"/{resource}"
    if verb != "create":
        uri += f"/{name}"
    ref = {"resource": resource}
    if namespace:
        ref["namespace"] = namespace
    ref.update({"name": name, "apiGroup": RBAC, "apiVersion": "v1"})
    if verb == "patch":
        obj = body
    return event(verb=verb, uri=uri, user=user, reason=reason, object_ref=ref,
                 code=201 if verb == "create" else 200, request=obj if verb != "delete" else None,
                 source=source, agent=agent)


def rules_body(*rules):
    return {"rules": [dict(zip(("apiGroups", "resources", "verbs"), r)) for r in rules]}


def binding_body(role_kind, role, *subjects):
    subs = []
    for kind, name, *ns in subjects:
        s = {"kind": kind, "name": name}
        if kind == "ServiceAccount":
            s["namespace"] = ns[0]
        else:
            s["apiGroup"] = RBAC
        subs.append(s)
    return {"roleRef": {"apiGroup": RBAC, "kind": role_kind, "name": role}, "subjects": subs}


AGG = controller("clusterrole-aggregation-controller")


def rbac_rules():
    out = {}
    alice = f"arn:aws:sts::{ACCOUNT}:assumed-role/EKSClusterAdmin/alice"
    out["cluster_admin_binding"] = {
        "fires.json": rbac_write("ClusterRoleBinding", "ops-break-glass",
                                 binding_body("ClusterRole", "cluster-admin", ("Group", "ops-oncall"))),
        "fires-rolebinding.json": rbac_write(
            "RoleBinding", "api-admin", binding_body("ClusterRole", "cluster-admin",
                                                     ("ServiceAccount", "api", "payments")),
            namespace="payments", user=APP_SA, reason=APP_SA_REASON, source=ATTACKER),
        "misses.json": rbac_write("ClusterRoleBinding", "ops-break-glass",
                                  binding_body("ClusterRole", "view", ("Group", "ops-oncall"))),
    }
    nonres = {"nonResourceURLs": ["/metrics"], "verbs": ["get"]}
    out["wildcard_role"] = {
        "fires.json": rbac_write("ClusterRole", "ci-deployer",
                                 rules_body(([""], ["pods", "services"], ["*"]),
                                            (["apps"], ["deployments"], ["get", "list", "patch"]))),
        "fires-resources.json": rbac_write("Role", "payments-operator",
                                           rules_body((["", "apps"], ["*"], ["get", "list", "watch"])),
                                           namespace="payments", user=AE_ADMIN, reason=AE_ADMIN_REASON),
        "misses.json": rbac_write("ClusterRole", "ci-deployer",
                                  rules_body(([""], ["pods", "services"], ["get", "list", "create", "update"]),
                                             (["apps"], ["deployments"], ["get", "list", "patch"]))),
        "misses-apiserver.json": _apiserver_reconcile(
            "cluster-admin", rules_body((["*"], ["*"], ["*"])), "71"),
    }

    out["role_grants_pod_exec"] = {
        "fires.json": rbac_write("Role", "oncall-debug",
                                 rules_body(([""], ["pods", "pods/log"], ["get", "list"]),
                                            ([""], ["pods/exec"], ["create", "get"])),
                                 namespace="payments"),
        "misses.json": rbac_write("Role", "oncall-debug",
                                  rules_body(([""], ["pods", "pods/log"], ["get", "list"])),
                                  namespace="payments"),
    }
    out["role_grants_nodes_proxy"] = {
        "fires.json": rbac_write("ClusterRole", "node-inspector",
                                 rules_body(([""], ["nodes"], ["get", "list"]),
                                            ([""], ["nodes/proxy"], ["get", "create"])),
                                 user=APP_SA, reason=APP_SA_REASON, source=ATTACKER),
        "misses.json": rbac_write("ClusterRole", "node-inspector",
                                  rules_body(([""], ["nodes"], ["get", "list"]),
                                             ([""], ["nodes/metrics"], ["get"])),
                                  user=APP_SA, reason=APP_SA_REASON, source=ATTACKER),
    }
    out["role_grants_secrets_read"] = {
        "fires.json": rbac_write("Role", "config-reader",
                                 rules_body(([""], ["configmaps", "secrets"], ["get", "list", "watch"])),
                                 namespace="payments"),
        "misses.json": rbac_write("Role", "config-reader",
                                  rules_body(([""], ["configmaps"], ["get", "list", "watch"])),
                                  namespace="payments"),
    }
    out["anonymous_access_granted"] = {
        "fires.json": rbac_write("ClusterRoleBinding", "anonymous-view",
                                 binding_body("ClusterRole", "view", ("User", "system:anonymous"))),
        "fires-group.json": rbac_write(
            "RoleBinding", "public-status", binding_body("ClusterRole", "view",
                                                         ("Group", "system:unauthenticated")),
            namespace="payments", user=AE_ADMIN, reason=AE_ADMIN_REASON),
        "misses.json": rbac_write("ClusterRoleBinding", "anonymous-view",
                                  binding_body("ClusterRole", "view", ("Group", "system:authenticated"))),
    }
    out["default_serviceaccount_admin"] = {
        "fires.json": rbac_write("ClusterRoleBinding", "default-admin",
                                 binding_body("ClusterRole", "cluster-admin",
                                              ("ServiceAccount", "default", "payments")),
                                 user=APP_SA, reason=APP_SA_REASON, source=ATTACKER),
        "fires-all-serviceaccounts.json": rbac_write(
            "RoleBinding", "all-sa-edit", binding_body("ClusterRole", "edit",
                                                       ("Group", "system:serviceaccounts:payments")),
            namespace="payments"),
        "misses.json": rbac_write("ClusterRoleBinding", "default-admin",
                                  binding_body("ClusterRole", "cluster-admin",
                                               ("ServiceAccount", "deployer", "payments")),
                                  user=APP_SA, reason=APP_SA_REASON, source=ATTACKER),
    }
    widened = [{"op": "add", "path": "/rules/-",
                "value": {"apiGroups": [""], "resources": ["secrets"], "verbs": ["get", "list"]}}]
    scheduler_patch = rbac_write("ClusterRole", "system:kube-scheduler", None, verb="patch",
                                 user=APP_SA, reason=APP_SA_REASON, source=ATTACKER)
    scheduler_patch["requestObject"] = widened
    custom_patch = copy.deepcopy(scheduler_patch)
    custom_patch["objectRef"]["name"] = "payments-reader"
    custom_patch["requestURI"] = custom_patch["requestURI"].replace("system:kube-scheduler",
                                                                    "payments-reader")
    out["system_clusterrole_modified"] = {
        "fires.json": scheduler_patch,
        "fires-delete.json": rbac_write("ClusterRole", "eks:node-manager", None, verb="delete"),
        "misses.json": custom_patch,
        "misses-apiserver.json": _apiserver_reconcile(
            "system:kube-scheduler",
            rules_body((["", "events.k8s.io"], ["events"], ["create", "patch", "update"]),
                       ([""], ["pods/binding", "bindings"], ["create"])), "88"),
    }
    return out


def _apiserver_reconcile(name, rules, resource_version):
    """The API server reconciling a built-in role at start-up (a PUT of the whole object)."""
    ev = rbac_write("ClusterRole", name, rules, verb="update", user=APISERVER, reason="",
                    source=["::1"], agent=f"kube-apiserver/{EKS_BUILD} (linux/amd64) kubernetes/7f9249a")
    ev["requestObject"]["metadata"].update(
        {"labels": {"kubernetes.io/bootstrapping": "rbac-defaults"},
         "annotations": {"rbac.authorization.kubernetes.io/autoupdate": "true"},
         "resourceVersion": resource_version})
    return ev


# ---------------------------------------------------------------------------------------
# Identity, credentials, configuration.

def simple(verb, uri, ref, code, user=ADMIN, reason=ADMIN_REASON, request=None, level="Request",
           source=LAPTOP, agent=KUBECTL):
    return event(verb=verb, uri=uri, user=user, reason=reason, object_ref=ref, code=code,
                 request=request, level=level, source=source, agent=agent)


def identity_rules():
    out = {}
    anon_list = simple("list", "/api/v1/pods?limit=500", {"resource": "pods", "apiVersion": "v1"},
                       200, user=ANONYMOUS, level="Metadata", source=ATTACKER,
                       agent="python-requests/2.32.3",
                       reason=rbac_reason("ClusterRoleBinding", "anonymous-view", "view", "User",
                                          "system:anonymous"))
    version = simple("get", "/version", {}, 200, user=ANONYMOUS, level="Metadata", source=ATTACKER,
                     agent="python-requests/2.32.3",
                     reason=rbac_reason("ClusterRoleBinding", "system:public-info-viewer",
                                        "system:public-info-viewer", "Group", "system:unauthenticated"))
    del version["objectRef"]
    out["anonymous_request_succeeded"] = {
        "fires.json": anon_list,
        "misses.json": forbidden(anon_list, "pods"),
        "misses-version.json": version,
    }
    aws_auth_ref = {"resource": "configmaps", "namespace": "kube-system", "name": "aws-auth",
                    "apiVersion": "v1"}
    backdoor = {"data": {"mapRoles": (
        f"- groups:\n  - system:bootstrappers\n  - system:nodes\n  rolearn: arn:aws:iam::{ACCOUNT}:role/eks-node-group-role\n"
        "  username: system:node:{{EC2PrivateDNSName}}\n"
        f"- groups:\n  - system:masters\n  rolearn: arn:aws:iam::{ACCOUNT}:role/ci-runner\n  username: ci-runner\n")}}
    coredns_ref = dict(aws_auth_ref, name="coredns")
    out["aws_auth_configmap_changed"] = {
        "fires.json": simple("patch", "/api/v1/namespaces/kube-system/configmaps/aws-auth",
                             aws_auth_ref, 200, request=backdoor, source=ATTACKER),
        "fires-delete.json": simple("delete", "/api/v1/namespaces/kube-system/configmaps/aws-auth",
                                    aws_auth_ref, 200, user=AE_ADMIN, reason=AE_ADMIN_REASON,
                                    level="Metadata"),
        "misses.json": simple("patch", "/api/v1/namespaces/kube-system/configmaps/coredns",
                              coredns_ref, 200,
                              request={"data": {"Corefile": ".:53 {\n    errors\n    health\n    kubernetes cluster.local in-addr.arpa ip6.arpa {\n      pods insecure\n      fallthrough in-addr.arpa ip6.arpa\n    }\n    forward . /etc/resolv.conf\n    cache 30\n}\n"}},
                              source=ATTACKER),
    }

    def token_request(user, reason, sa, ns, source, agent, seconds=3600):
        return simple("create", f"/api/v1/namespaces/{ns}/serviceaccounts/{sa}/token",
                      {"resource": "serviceaccounts", "namespace": ns, "name": sa,
                       "apiVersion": "v1", "subresource": "token"}, 201, user=user, reason=reason,
                      source=source, agent=agent,
                      request={"kind": "TokenRequest", "apiVersion": "authentication.k8s.io/v1",
                               "metadata": {"creationTimestamp": None},
                               "spec": {"audiences": None, "expirationSeconds": seconds,
                                        "boundObjectRef": None}, "status": {"token": "", "expirationTimestamp": None}})
    kubelet_req = token_request(NODE, "", "api", "payments", NODE_IP, KUBELET, seconds=3607)
    kubelet_req["requestObject"]["spec"]["audiences"] = ["https://kubernetes.default.svc"]
    kubelet_req["requestObject"]["spec"]["boundObjectRef"] = {
        "kind": "Pod", "apiVersion": "v1", "name": APP_POD,
        "uid": "e2a1c9d4-6b3f-4f7a-8c2e-1d0b9a8f7e65"}
    out["serviceaccount_token_requested"] = {
        "fires.json": token_request(ADMIN, ADMIN_REASON, "api", "payments", LAPTOP, KUBECTL,
                                    seconds=31536000),
        "fires-serviceaccount.json": token_request(
            APP_SA, APP_SA_REASON, "deployer", "payments", ATTACKER, KUBECTL),
        "misses.json": kubelet_req,
    }

    def csr(user, reason, name, signer, usages, source, agent):
        return simple("create", "/apis/certificates.k8s.io/v1/certificatesigningrequests",
                      {"resource": "certificatesigningrequests", "name": name,
                       "apiGroup": "certificates.k8s.io", "apiVersion": "v1"}, 201,
                      user=user, reason=reason, source=source, agent=agent,
                      request={"kind": "CertificateSigningRequest",
                               "apiVersion": "certificates.k8s.io/v1",
                               "metadata": {"name": name},
                               "spec": {"request": "LS0tLS1CRUdJTiBDRVJUSUZJQ0FURSBSRVFVRVNULS0tLS0K",
                                        "signerName": signer, "usages": usages,
                                        "expirationSeconds": 31536000}, "status": {}})
    node_reason = ('RBAC: allowed by ClusterRoleBinding "eks:node-bootstrapper" of ClusterRole '
                   '"eks:node-bootstrapper" to Group "system:bootstrappers"')
    out["csr_created"] = {
        "fires.json": csr(APP_SA, APP_SA_REASON, "ops-admin-client", "kubernetes.io/kube-apiserver-client",
                          ["client auth"], ATTACKER, KUBECTL),
        "misses.json": csr(NODE, node_reason, "csr-7xq2m", "kubernetes.io/kubelet-serving",
                           ["digital signature", "key encipherment", "server auth"], NODE_IP, KUBELET),
    }
    approval = {"kind": "CertificateSigningRequest", "apiVersion": "certificates.k8s.io/v1",
                "metadata": {"name": "ops-admin-client", "resourceVersion": "50331265"},
                "spec": {"request": "LS0tLS1CRUdJTiBDRVJUSUZJQ0FURSBSRVFVRVNULS0tLS0K",
                         "signerName": "kubernetes.io/kube-apiserver-client",
                         "usages": ["client auth"], "username": APP_SA["username"],
                         "groups": APP_SA["groups"]},
                "status": {"conditions": [{"type": "Approved", "status": "True",
                                           "reason": "KubectlApprove",
                                           "message": "This CSR was approved by kubectl certificate approve.",
                                           "lastUpdateTime": None}]}}
    approve_ref = {"resource": "certificatesigningrequests", "name": "ops-admin-client",
                   "apiGroup": "certificates.k8s.io", "apiVersion": "v1", "subresource": "approval"}
    auto = copy.deepcopy(approval)
    auto["metadata"]["name"] = "csr-7xq2m"
    auto["spec"].update({"signerName": "kubernetes.io/kube-apiserver-client-kubelet",
                         "username": NODE["username"], "groups": NODE["groups"]})
    auto["status"]["conditions"][0].update({"reason": "AutoApproved",
                                            "message": "Auto approving kubelet client certificate after SubjectAccessReview."})
    out["csr_approved"] = {
        "fires.json": simple("update",
                             "/apis/certificates.k8s.io/v1/certificatesigningrequests/ops-admin-client/approval",
                             approve_ref, 200, request=approval, source=ATTACKER),
        "misses.json": simple("update",
                              "/apis/certificates.k8s.io/v1/certificatesigningrequests/csr-7xq2m/approval",
                              dict(approve_ref, name="csr-7xq2m"), 200,
                              user=controller("certificate-controller"),
                              reason=rbac_reason("ClusterRoleBinding", "system:controller:certificate-controller",
                                                 "system:controller:certificate-controller",
                                                 "ServiceAccount", "certificate-controller/kube-system"),
                              request=auto, source=CONTROL_PLANE, agent=kcm_agent("certificate-controller")),
    }
    dump = simple("list", "/api/v1/secrets?limit=500", {"resource": "secrets", "apiVersion": "v1"}, 200,
                  user=APP_SA, reason=rbac_reason("ClusterRoleBinding", "api-secrets-reader",
                                                  "secrets-reader", "ServiceAccount", "api/payments"),
                  level="Metadata", source=ATTACKER)
    ns_list = copy.deepcopy(dump)
    ns_list["requestURI"] = "/api/v1/namespaces/payments/secrets?limit=500"
    ns_list["objectRef"] = {"resource": "secrets", "namespace": "payments", "apiVersion": "v1"}
    out["secrets_listed_all_namespaces"] = {"fires.json": dump, "misses.json": ns_list}

    adm = "admissionregistration.k8s.io"
    hook = {"kind": "MutatingWebhookConfiguration", "apiVersion": f"{adm}/v1",
            "metadata": {"name": "pod-defaults"},
            "webhooks": [{"name": "pod-defaults.payments.example.com",
                          "clientConfig": {"url": "https://hooks.example.net/mutate"},
                          "rules": [{"operations": ["CREATE", "UPDATE"], "apiGroups": ["*"],
                                     "apiVersions": ["*"], "resources": ["pods", "secrets"]}],
                          "failurePolicy": "Ignore", "sideEffects": "None",
                          "admissionReviewVersions": ["v1"]}]}
    mref = {"resource": "mutatingwebhookconfigurations", "name": "pod-defaults", "apiGroup": adm,
            "apiVersion": "v1"}
    created = simple("create", f"/apis/{adm}/v1/mutatingwebhookconfigurations", mref, 201,
                     request=hook, user=APP_SA, reason=APP_SA_REASON, source=ATTACKER)
    got = simple("get", f"/apis/{adm}/v1/mutatingwebhookconfigurations/pod-defaults", mref, 200,
                 user=APP_SA, reason=APP_SA_REASON, source=ATTACKER)
    eks_hook = copy.deepcopy(created)
    eks_hook["user"] = copy.deepcopy(ADDON_MANAGER)
    eks_hook["sourceIPs"] = list(CONTROL_PLANE)
    eks_hook["userAgent"] = "eks-addon-manager/v0.0.0 (linux/amd64) kubernetes/$Format"
    eks_hook["annotations"]["authorization.k8s.io/reason"] = rbac_reason(
        "ClusterRoleBinding", "eks:addon-manager", "eks:addon-manager", "User", "eks:addon-manager")
    out["admission_webhook_changed"] = {
        "fires.json": created,
        "fires-delete-validating.json": simple(
            "delete", f"/apis/{adm}/v1/validatingwebhookconfigurations/kyverno-resource-validating-webhook-cfg",
            {"resource": "validatingwebhookconfigurations", "name": "kyverno-resource-validating-webhook-cfg",
             "apiGroup": adm, "apiVersion": "v1"}, 200, level="Metadata", source=ATTACKER),
        "misses.json": got,
        "misses-eks.json": eks_hook,
    }

    events_ref = {"resource": "events", "namespace": "payments", "name": "api-7c9d8b5f4-x2x9z.17f3a9c2d4e5b601",
                  "apiVersion": "v1"}
    collection = simple("deletecollection", "/api/v1/namespaces/payments/events",
                        {"resource": "events", "namespace": "payments", "apiVersion": "v1"}, 200,
                        user=APP_SA, reason=APP_SA_REASON, level="Metadata", source=ATTACKER)
    ns_ctrl = copy.deepcopy(collection)
    ns_ctrl["user"] = controller("namespace-controller")
    ns_ctrl["sourceIPs"] = list(CONTROL_PLANE)
    ns_ctrl["userAgent"] = kcm_agent("namespace-controller")
    ns_ctrl["annotations"]["authorization.k8s.io/reason"] = rbac_reason(
        "ClusterRoleBinding", "system:controller:namespace-controller",
        "system:controller:namespace-controller", "ServiceAccount", "namespace-controller/kube-system")
    out["kube_events_deleted"] = {
        "fires.json": simple("delete", f"/api/v1/namespaces/payments/events/{events_ref['name']}",
                             events_ref, 200, user=APP_SA, reason=APP_SA_REASON, level="Metadata",
                             source=ATTACKER),
        "fires-deletecollection.json": collection,
        "misses.json": simple("list", "/api/v1/namespaces/payments/events?limit=500",
                              {"resource": "events", "namespace": "payments", "apiVersion": "v1"}, 200,
                              user=APP_SA, reason=APP_SA_REASON, level="Metadata", source=ATTACKER),
        "misses-namespace-controller.json": ns_ctrl,
    }
    return out


# ---------------------------------------------------------------------------------------
# kube-system and services.

def service(name, namespace, type_, ports, selector):
    spec = {"type": type_, "selector": selector, "ports": ports}
    return {"kind": "Service", "apiVersion": "v1",
            "metadata": {"name": name, "namespace": namespace}, "spec": spec}


def write_service(obj, verb="create", user=ADMIN, reason=ADMIN_REASON, body=None, source=LAPTOP):
    ns, name = obj["metadata"]["namespace"], obj["metadata"]["name"]
    uri = f"/api/v1/namespaces/{ns}/services" + ("" if verb == "create" else f"/{name}")
    return simple(verb, uri, {"resource": "services", "namespace": ns, "name": name,
                              "apiVersion": "v1"}, 201 if verb == "create" else 200,
                  user=user, reason=reason, request=body if body is not None else obj, source=source)


def placement_rules():
    out = {}
    backdoor = {"containers": [container(
        "kube-proxy", "198.51.100.77:5000/kube-proxy:v1.31.2",
        {"privileged": False}, command=["/bin/sh", "-c", "sleep infinity"])],
        "serviceAccountName": "aws-node", "tolerations": [{"operator": "Exists"}]}
    bd_pod = pod("kube-proxy-x7k2q", "kube-system", backdoor, labels={"k8s-app": "kube-proxy"})
    coredns = {"containers": [container(
        "coredns", "602401143452.dkr.ecr.eu-west-1.amazonaws.com/eks/coredns:v1.11.3-eksbuild.2",
        {"allowPrivilegeEscalation": False, "readOnlyRootFilesystem": True,
         "capabilities": {"add": ["NET_BIND_SERVICE"], "drop": ["ALL"]}},
        args=["-conf", "/etc/coredns/Corefile"])], "serviceAccountName": "coredns",
        "priorityClassName": "system-cluster-critical"}
    cd_pod = pod(None, "kube-system", coredns, labels={"k8s-app": "kube-dns"},
                 generate_name="coredns-6b9575c64c-")
    out["pod_created_in_kube_system"] = {
        "fires.json": create_pod(bd_pod, AE_ADMIN, AE_ADMIN_REASON, source=ATTACKER),
        "fires-serviceaccount.json": create_pod(bd_pod, APP_SA, APP_SA_REASON, source=ATTACKER),
        "misses.json": create_pod(cd_pod, controller("replicaset-controller"),
                                  rbac_reason("ClusterRoleBinding", "system:controller:replicaset-controller",
                                              "system:controller:replicaset-controller", "ServiceAccount",
                                              "replicaset-controller/kube-system"),
                                  agent=kcm_agent("replicaset-controller"), source=CONTROL_PLANE,
                                  name_in_ref=False),
        "misses-eviction.json": simple(
            "create", "/api/v1/namespaces/kube-system/pods/coredns-6b9575c64c-8fd2k/eviction",
            {"resource": "pods", "namespace": "kube-system", "name": "coredns-6b9575c64c-8fd2k",
             "apiVersion": "v1", "subresource": "eviction"}, 201, user=AE_ADMIN, reason=AE_ADMIN_REASON,
            request={"kind": "Eviction", "apiVersion": "policy/v1",
                     "metadata": {"name": "coredns-6b9575c64c-8fd2k", "namespace": "kube-system"}}),
    }

    def new_sa(ns, name):
        return simple("create", f"/api/v1/namespaces/{ns}/serviceaccounts",
                      {"resource": "serviceaccounts", "namespace": ns, "name": name, "apiVersion": "v1"},
                      201, request={"kind": "ServiceAccount", "apiVersion": "v1",
                                    "metadata": {"name": name, "namespace": ns}}, source=ATTACKER)
    out["serviceaccount_created_in_kube_system"] = {
        "fires.json": new_sa("kube-system", "replicaset-controler"),
        "misses.json": new_sa("payments", "replicaset-controler"),
    }
    http = [{"name": "http", "port": 80, "targetPort": 8080, "protocol": "TCP"}]
    np = service("api-debug", "payments", "NodePort", [dict(http[0], nodePort=30080)], {"app": "api"})
    out["nodeport_service"] = {
        "fires.json": write_service(np),
        "fires-patch.json": write_service(np, verb="patch", body={"spec": {"type": "NodePort"}},
                                          user=APP_SA, reason=APP_SA_REASON, source=ATTACKER),
        "misses.json": write_service(service("api-debug", "payments", "ClusterIP", http, {"app": "api"})),
    }
    lb = service("api-public", "payments", "LoadBalancer", http, {"app": "api"})
    lb["metadata"]["annotations"] = {"service.beta.kubernetes.io/aws-load-balancer-type": "external",
                                     "service.beta.kubernetes.io/aws-load-balancer-scheme": "internet-facing"}
    cip = copy.deepcopy(lb)
    cip["spec"]["type"] = "ClusterIP"
    out["loadbalancer_service"] = {"fires.json": write_service(lb), "misses.json": write_service(cip)}

    dash_ports = [{"port": 443, "targetPort": 8443, "protocol": "TCP"}]
    dash = service("kubernetes-dashboard", "kubernetes-dashboard", "LoadBalancer", dash_ports,
                   {"k8s-app": "kubernetes-dashboard"})
    kong = service("kubernetes-dashboard-kong-proxy", "kubernetes-dashboard", "NodePort",
                   [{"name": "kong-proxy-tls", "port": 443, "targetPort": 8443, "protocol": "TCP",
                     "nodePort": 30443}],
                   {"app.kubernetes.io/component": "app", "app.kubernetes.io/instance": "kubernetes-dashboard",
                    "app.kubernetes.io/name": "kong"})
    kubeflow = service("centraldashboard", "kubeflow", "LoadBalancer",
                       [{"name": "http", "port": 80, "targetPort": 8082, "protocol": "TCP"}],
                       {"app": "centraldashboard"})
    out["dashboard_exposed"] = {
        "fires.json": write_service(dash, verb="patch", body={"spec": {"type": "LoadBalancer"}},
                                    source=ATTACKER),
        "fires-helm-nodeport.json": write_service(kong),
        "fires-kubeflow.json": write_service(kubeflow, user=AE_ADMIN, reason=AE_ADMIN_REASON),
        "misses.json": write_service(dash, verb="patch", body={"spec": {"type": "ClusterIP"}},
                                     source=ATTACKER),
    }
    return out


# ---------------------------------------------------------------------------------------
# SigmaHQ's rules (tests/fixtures/sigma-tests), matched after the pipeline.

def sigmahq_fixtures():
    out = {}
    adm = "admissionregistration.k8s.io"
    hook_ref = {"resource": "mutatingwebhookconfigurations", "name": "pod-defaults", "apiGroup": adm,
                "apiVersion": "v1"}
    body = {"kind": "MutatingWebhookConfiguration", "apiVersion": f"{adm}/v1",
            "metadata": {"name": "pod-defaults"},
            "webhooks": [{"name": "pod-defaults.payments.example.com",
                          "clientConfig": {"url": "https://hooks.example.net/mutate"},
                          "rules": [{"operations": ["CREATE"], "apiGroups": [""], "apiVersions": ["v1"],
                                     "resources": ["pods"]}],
                          "sideEffects": "None", "admissionReviewVersions": ["v1"]}]}
    out["kubernetes_audit_change_admission_controller"] = {
        "fires.json": simple("create", f"/apis/{adm}/v1/mutatingwebhookconfigurations", hook_ref, 201,
                             request=body),
        "misses.json": simple("get", f"/apis/{adm}/v1/mutatingwebhookconfigurations/pod-defaults",
                              hook_ref, 200),
    }
    cron = workload("CronJob", "nightly-report", "payments", app_spec())
    cron_get = simple("get", "/apis/batch/v1/namespaces/payments/cronjobs/nightly-report",
                      {"resource": "cronjobs", "namespace": "payments", "name": "nightly-report",
                       "apiGroup": "batch", "apiVersion": "v1"}, 200, user=DEV, reason=DEV_REASON)
    out["kubernetes_audit_cronjob_modification"] = {
        "fires.json": create_workload(cron, DEV, DEV_REASON),
        "misses.json": cron_get,
    }
    dep_ref = {"resource": "deployments", "namespace": "payments", "name": "api", "apiGroup": "apps",
               "apiVersion": "v1"}
    out["kubernetes_audit_deployment_deleted"] = {
        "fires.json": simple("delete", "/apis/apps/v1/namespaces/payments/deployments/api", dep_ref, 200,
                             user=DEV, reason=DEV_REASON, level="Metadata"),
        "misses.json": simple("get", "/apis/apps/v1/namespaces/payments/deployments/api", dep_ref, 200,
                              user=DEV, reason=DEV_REASON, level="Metadata"),
    }
    ev_ref = {"resource": "events", "namespace": "payments", "name": "api-7c9d8b5f4-x2x9z.17f3a9c2d4e5b601",
              "apiVersion": "v1"}
    out["kubernetes_audit_events_deleted"] = {
        "fires.json": simple("delete", f"/api/v1/namespaces/payments/events/{ev_ref['name']}", ev_ref, 200,
                             user=APP_SA, reason=APP_SA_REASON, level="Metadata", source=ATTACKER),
        "misses.json": simple("get", f"/api/v1/namespaces/payments/events/{ev_ref['name']}", ev_ref, 200,
                              user=APP_SA, reason=APP_SA_REASON, level="Metadata", source=ATTACKER),
    }
    sh = "command=%2Fbin%2Fsh&container=api&stdin=true&stdout=true&tty=true"
    out["kubernetes_audit_exec_into_container"] = {
        "fires.json": session("exec", sh),
        "misses.json": session("attach", "container=api&stdin=true&stdout=true&tty=true"),
    }
    hp = app_spec()
    mount(hp, "/var/log")
    ed = app_spec()
    empty_dir(ed)
    out["kubernetes_audit_hostpath_mount"] = {
        "fires.json": create_pod(pod("log-reader", "payments", hp), DEV, DEV_REASON),
        "misses.json": create_pod(pod("log-reader", "payments", ed), DEV, DEV_REASON),
    }
    out["kubernetes_audit_pod_in_system_namespace"] = {
        "fires.json": create_pod(pod("kube-proxy-x7k2q", "kube-system", app_spec()), AE_ADMIN,
                                 AE_ADMIN_REASON, source=ATTACKER),
        "misses.json": create_pod(pod("kube-proxy-x7k2q", "payments", app_spec()), AE_ADMIN,
                                  AE_ADMIN_REASON, source=ATTACKER),
    }
    out["kubernetes_audit_potential_enumeration_activity"] = {
        "fires.json": session("exec", sh, user=APP_SA, reason=APP_SA_REASON, source=ATTACKER),
        "misses.json": session("exec", "command=date&container=api&stderr=true&stdout=true",
                               user=APP_SA, reason=APP_SA_REASON, source=ATTACKER),
    }
    caps = app_spec()
    caps["containers"][0]["securityContext"] = {"capabilities": {"add": ["SYS_ADMIN"]}}
    out["kubernetes_audit_privileged_pod_creation"] = {
        "fires.json": create_pod(pod("api-debug", "payments", caps), DEV, DEV_REASON),
        # capabilities.drop only: the hardened default, which must not count as "added".
        "misses.json": create_pod(pod("api-debug", "payments", app_spec()), DEV, DEV_REASON),
    }

    def review(resource, kind, spec):
        return simple("create", f"/apis/authorization.k8s.io/v1/{resource}",
                      {"resource": resource, "apiGroup": "authorization.k8s.io", "apiVersion": "v1"}, 201,
                      user=APP_SA, reason="", source=ATTACKER,
                      request={"kind": kind, "apiVersion": "authorization.k8s.io/v1",
                               "metadata": {"creationTimestamp": None}, "spec": spec, "status": {}})
    out["kubernetes_audit_rbac_permisions_listing"] = {
        "fires.json": review("selfsubjectrulesreviews", "SelfSubjectRulesReview", {"namespace": "payments"}),
        "misses.json": review("selfsubjectaccessreviews", "SelfSubjectAccessReview",
                              {"resourceAttributes": {"namespace": "payments", "verb": "list",
                                                      "resource": "secrets"}}),
    }
    out["kubernetes_audit_rolebinding_modification"] = {
        "fires.json": rbac_write("RoleBinding", "api-ops", binding_body("ClusterRole", "admin",
                                                                         ("ServiceAccount", "api", "payments")),
                                 namespace="payments"),
        "misses.json": rbac_write("Role", "api-ops", rules_body(([""], ["pods"], ["get", "list"])),
                                  namespace="payments"),
    }
    sec_ref = {"resource": "secrets", "namespace": "payments", "apiVersion": "v1"}
    out["kubernetes_audit_secrets_enumeration"] = {
        "fires.json": simple("list", "/api/v1/namespaces/payments/secrets?limit=500", sec_ref, 200,
                             user=APP_SA, reason=APP_SA_REASON, level="Metadata", source=ATTACKER),
        "misses.json": simple("get", "/api/v1/namespaces/payments/secrets/db-credentials",
                              dict(sec_ref, name="db-credentials"), 200, user=APP_SA,
                              reason=APP_SA_REASON, level="Metadata", source=ATTACKER),
    }
    out["kubernetes_audit_secrets_modified_or_deleted"] = {
        "fires.json": simple("delete", "/api/v1/namespaces/payments/secrets/db-credentials",
                             dict(sec_ref, name="db-credentials"), 200, user=APP_SA, reason=APP_SA_REASON,
                             level="Metadata", source=ATTACKER),
        "misses.json": simple("get", "/api/v1/namespaces/payments/secrets/db-credentials",
                              dict(sec_ref, name="db-credentials"), 200, user=APP_SA,
                              reason=APP_SA_REASON, level="Metadata", source=ATTACKER),
    }
    sa_ref = {"resource": "serviceaccounts", "namespace": "payments", "name": "reporting", "apiVersion": "v1"}
    out["kubernetes_audit_serviceaccount_creation"] = {
        "fires.json": simple("create", "/api/v1/namespaces/payments/serviceaccounts", sa_ref, 201,
                             request={"kind": "ServiceAccount", "apiVersion": "v1",
                                      "metadata": {"name": "reporting", "namespace": "payments"}}),
        "misses.json": simple("delete", "/api/v1/namespaces/payments/serviceaccounts/reporting", sa_ref, 200,
                              level="Metadata"),
    }
    sidecar = {"spec": {"template": {"spec": {"containers": [
        {"name": "log-forwarder", "image": "198.51.100.77:5000/fluent-bit:3.1"}]}}}}
    out["kubernetes_audit_sidecar_injection"] = {
        "fires.json": simple("patch", "/apis/apps/v1/namespaces/payments/deployments/api", dep_ref, 200,
                             user=APP_SA, reason=APP_SA_REASON, request=sidecar, source=ATTACKER),
        "misses.json": simple("patch", "/apis/apps/v1/namespaces/payments/statefulsets/api",
                              dict(dep_ref, resource="statefulsets"), 200,
                              user=APP_SA, reason=APP_SA_REASON, request=sidecar, source=ATTACKER),
    }
    listing = simple("list", "/api/v1/namespaces/kube-system/secrets?limit=500",
                     {"resource": "secrets", "namespace": "kube-system", "apiVersion": "v1"}, 200,
                     user=APP_SA, reason=APP_SA_REASON, level="Metadata", source=ATTACKER)
    out["kubernetes_audit_unauthorized_unauthenticated_actions"] = {
        "fires.json": forbidden(listing, "secrets"),
        "misses.json": listing,
    }
    return out


# ---------------------------------------------------------------------------------------
# Correlation rules: sequences of (event, seconds after the sequence's start).

def correlation_rules():
    out = {}

    def probe(verb, resource, namespace=None, name=None, group="", user=APP_SA):
        base = f"/apis/{group}/v1" if group else "/api/v1"
        where = f"/namespaces/{namespace}" if namespace else ""
        uri = f"{base}{where}/{resource}" + (f"/{name}" if name else "")
        ref = {"resource": resource, "apiVersion": "v1"}
        if group:
            ref["apiGroup"] = group
        if namespace:
            ref["namespace"] = namespace
        if name:
            ref["name"] = name
        agent = "python-requests/2.32.3"
        return forbidden(simple(verb, uri, ref, 200, user=user, reason="", source=ATTACKER,
                                agent=agent, level="Metadata"), resource, name)

    # What a stolen payments/api token is tried against, one request each.
    targets = [("list", "secrets", "kube-system", None, ""), ("list", "pods", "kube-system", None, ""),
               ("list", "nodes", None, None, ""), ("list", "namespaces", None, None, ""),
               ("get", "secrets", "payments", "db-credentials", ""),
               ("list", "clusterroles", None, None, "rbac.authorization.k8s.io"),
               ("list", "clusterrolebindings", None, None, "rbac.authorization.k8s.io"),
               ("create", "pods", "kube-system", None, ""),
               ("list", "configmaps", "kube-system", None, ""),
               ("get", "configmaps", "kube-system", "aws-auth", ""),
               ("list", "serviceaccounts", "kube-system", None, ""),
               ("list", "secrets", "monitoring", None, ""),
               ("list", "daemonsets", "kube-system", None, "apps"),
               ("list", "deployments", "kube-system", None, "apps"),
               ("create", "clusterrolebindings", None, None, "rbac.authorization.k8s.io"),
               ("list", "persistentvolumes", None, None, ""),
               ("list", "secrets", "default", None, ""),
               ("list", "mutatingwebhookconfigurations", None, None, "admissionregistration.k8s.io"),
               ("list", "customresourcedefinitions", None, None, "apiextensions.k8s.io"),
               ("list", "roles", "kube-system", None, "rbac.authorization.k8s.io")]
    probes = [probe(v, r, ns, n, g) for v, r, ns, n, g in targets]
    other = service_account("monitoring", "agent", "agent-5d8f7c6b9-q4w2e")
    other_probes = [probe(v, r, ns, n, g, user=other) for v, r, ns, n, g in targets]
    eks = [probe(v, r, ns, n, g, user=ADDON_MANAGER) for v, r, ns, n, g in targets]
    allowed = simple("list", "/api/v1/namespaces/payments/pods", {"resource": "pods", "namespace": "payments",
                                                                  "apiVersion": "v1"}, 200,
                     user=APP_SA, reason=APP_SA_REASON, source=ATTACKER, level="Metadata")
    out["forbidden_requests_burst"] = {
        # 20 refusals in 190 s: the threshold.
        "fires.json": [(ev, 10 * i) for i, ev in enumerate(probes)],
        # 19 refusals (and an allowed request among them): one below it.
        "misses.json": [(ev, 10 * i) for i, ev in enumerate(probes[:19])] + [(allowed, 195)],
        # 10 refusals each for two principals: they do not add up.
        "misses-two-principals.json": [(ev, 10 * i) for i, ev in enumerate(
            x for pair in zip(probes[:10], other_probes[:10]) for x in pair)],
        # 10 refusals, then 10 more 15 minutes later: no 10-minute window holds 20.
        "misses-outside-timespan.json": [(ev, 10 * i) for i, ev in enumerate(probes[:10])]
        + [(ev, 900 + 10 * i) for i, ev in enumerate(probes[10:])],
        # EKS's own identities are not counted.
        "misses-eks.json": [(ev, 10 * i) for i, ev in enumerate(eks)],
    }

    def read_secret(namespace, name=None, user=APP_SA, reason=APP_SA_REASON):
        uri = f"/api/v1/namespaces/{namespace}/secrets" + (f"/{name}" if name else "")
        ref = {"resource": "secrets", "namespace": namespace, "apiVersion": "v1"}
        if name:
            ref["name"] = name
        return simple("get" if name else "list", uri, ref, 200, user=user, reason=reason,
                      source=ATTACKER, level="Metadata")

    harvester_reason = rbac_reason("ClusterRoleBinding", "api-secrets-reader", "secrets-reader",
                                   "ServiceAccount", "api/payments")
    namespaces = ["payments", "checkout", "monitoring", "ingress-nginx", "argocd"]
    reads = [read_secret(ns, user=APP_SA, reason=harvester_reason) for ns in namespaces]
    dev_reads = [read_secret(ns, user=DEV, reason=DEV_REASON) for ns in namespaces]
    node_reads = [read_secret(ns, name="registry-credentials", user=NODE,
                              reason="") for ns in namespaces]
    out["secrets_read_across_namespaces"] = {
        # Secrets of 5 namespaces in 4 minutes.
        "fires.json": [(ev, 60 * i) for i, ev in enumerate(reads)],
        # 7 reads, but in 4 namespaces: one below the threshold of distinct namespaces.
        "misses.json": [(ev, 30 * i) for i, ev in enumerate(reads[:4] + [
            read_secret("payments", "db-credentials", user=APP_SA, reason=harvester_reason),
            read_secret("checkout", "stripe-key", user=APP_SA, reason=harvester_reason),
            read_secret("payments", "tls", user=APP_SA, reason=harvester_reason)])],
        # 3 namespaces each for two principals: they do not add up.
        "misses-two-principals.json": [(ev, 30 * i) for i, ev in enumerate(reads[:3] + dev_reads[2:])],
        # 5 namespaces over 48 minutes: no 10-minute window holds more than one.
        "misses-outside-timespan.json": [(ev, 720 * i) for i, ev in enumerate(reads)],
        # A kubelet fetching its pods' secrets is not counted.
        "misses-node.json": [(ev, 20 * i) for i, ev in enumerate(node_reads)],
    }
    return out


def sequence(steps, key):
    """Events at their offsets from a start derived from `key`, each finished as its own."""
    start = BASE + timedelta(seconds=int.from_bytes(_digest(key)[16:20], "big") % 80000)
    events = []
    for index, (ev, offset) in enumerate(steps):
        ev = finish(ev, f"{key}#{index}")
        d = _digest(f"{key}#{index}")
        at = start + timedelta(seconds=offset, microseconds=int.from_bytes(d[20:23], "big") % 1000000)
        took = timedelta(microseconds=2000 + int.from_bytes(d[23:26], "big") % 40000)
        ev["requestReceivedTimestamp"] = _stamp(at)
        ev["stageTimestamp"] = _stamp(at + took)
        events.append(ev)
    return events


# ---------------------------------------------------------------------------------------

def all_files():
    files = {}
    groups = {}
    for part in (pod_spec_rules(), session_rules(), rbac_rules(), identity_rules(), placement_rules()):
        groups.update(part)
    for stem, cases in groups.items():
        for name, ev in cases.items():
            rel = f"rules/tests/{stem}/{name}"
            files[rel] = finish(ev, rel)
    for stem, cases in correlation_rules().items():
        for name, steps in cases.items():
            rel = f"rules/tests/{stem}/{name}"
            files[rel] = sequence(steps, rel)
    for stem, cases in sigmahq_fixtures().items():
        for name, ev in cases.items():
            rel = f"tests/fixtures/sigma-tests/{stem}/{name}"
            files[rel] = finish(ev, rel)
    return files


def render(ev):
    return json.dumps(ev, indent=2) + "\n"


def main():
    check = "--check" in sys.argv[1:]
    files = all_files()
    present = {str(p.relative_to(ROOT)) for base in (RULE_TESTS, SIGMA_TESTS) if base.exists()
               for p in base.rglob("*.json")}
    stale = []
    for rel, ev in sorted(files.items()):
        path = ROOT / rel
        text = render(ev)
        if check:
            if not path.exists() or path.read_text() != text:
                stale.append(rel)
        else:
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(text)
    extra = sorted(present - set(files))
    if check:
        for rel in stale:
            print(f"stale or missing: {rel}")
        for rel in extra:
            print(f"not generated by this script: {rel}")
        sys.exit(1 if stale or extra else 0)
    for rel in extra:
        print(f"warning: {rel} is not generated by this script")
    print(f"wrote {len(files)} events")


if __name__ == "__main__":
    main()
