//! A small HTTP proxy in front of moto that does what moto never does: fails Firehose
//! `PutRecordBatch` calls on demand ([`Fault`]), injects random faults into any call at a seeded
//! rate ([`Chaos`]: throttling, 500s, timeouts, partial `PutRecordBatch` failures), delays calls
//! ([`Options::delay`]), and counts what passes per operation, with the most calls in flight
//! at once ([`Proxy::stats`]). It also records, and answers itself, the CloudWatch Logs
//! `PutSubscriptionFilter` calls towards a CloudWatch Logs destination, which moto 5.x does not
//! emulate (it answers that the log group does not exist). One request per connection (`Connection: close`), which the
//! SDK's client handles by reconnecting.
//!
//! moto does not check SigV4 signatures, so the proxy may rewrite a request body.

#![allow(
    dead_code,
    reason = "each test binary that includes the proxy uses part of it"
)]

use std::collections::{BTreeMap, HashMap};
use std::hash::{DefaultHasher, Hasher};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use serde_json::{Value, json};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

/// What the proxy does to `PutRecordBatch` calls, deterministically.
#[derive(Debug, Clone, Copy)]
pub enum Fault {
    /// The first `calls` calls: every other record (the 2nd, 4th, ...) fails with
    /// `ServiceUnavailableException`; the others reach moto.
    FailEveryOtherRecord { calls: usize },
    /// The first `calls` calls answer HTTP 500 `ServiceUnavailableException`.
    ServerError { calls: usize },
    /// Every call fails every record.
    FailAllRecords,
    /// `PutRecordBatch` untouched; `PutSubscriptionFilter` towards a CloudWatch Logs destination
    /// (`arn:…:logs:…:destination:…`) is recorded and answered as AWS does (200, empty JSON),
    /// not forwarded.
    RecordLogsDestinationFilters,
    /// As [`Fault::RecordLogsDestinationFilters`], and STS `AssumeRole` into a role of this
    /// account is refused with `AccessDenied` (moto lets every role be assumed).
    DenyAssumeRoleInto(&'static str),
}

/// Random faults: each call fails with probability `rate`, of a kind drawn among those that
/// apply to it (evenly; for `PutRecordBatch`, half of them partial failures). Draws are a hash of the seed, the request (method, path, target, body) and
/// how often that same request came before, so a run's faults do not depend on the order in
/// which concurrent calls arrive.
#[derive(Debug, Clone, Copy)]
pub struct Chaos {
    pub seed: u64,
    /// 0 to 1.
    pub rate: f64,
    /// The probability, 0 to 1, that a call made again after a fault (the same request: a
    /// retry) fails too: faults come in bursts, as a throttled partition stays throttled for a
    /// moment. The rate applies when it is lower.
    pub burst: f64,
    /// How long a [`Kind::Timeout`] holds the answer before closing the connection without
    /// it: longer than the client's attempt timeout, if it has one.
    pub stall: Duration,
}

/// A kind of injected fault.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Kind {
    /// S3: 503 `SlowDown`; JSON services (Firehose, SQS): 400 `ThrottlingException`.
    Throttle,
    /// 500 `InternalError` (S3) or `InternalFailure`.
    ServerError,
    /// The call reaches moto and takes effect, but its answer is held for [`Chaos::stall`]
    /// and the connection closed without it: the client times out, or sees the connection
    /// drop, and cannot know the call succeeded.
    Timeout,
    /// `PutRecordBatch` only: some records (each with probability 1/2, at least one) fail with
    /// `ServiceUnavailableException`, the others reach moto.
    PartialBatch,
}

impl Kind {
    pub const ALL: [Kind; 4] = [
        Kind::Throttle,
        Kind::ServerError,
        Kind::Timeout,
        Kind::PartialBatch,
    ];

    pub fn name(self) -> &'static str {
        match self {
            Kind::Throttle => "throttling",
            Kind::ServerError => "HTTP 500",
            Kind::Timeout => "timeout",
            Kind::PartialBatch => "partial PutRecordBatch",
        }
    }
}

/// A delay before a call is forwarded, by operation name and request path.
pub type Delay = Arc<dyn Fn(&str, &str) -> Duration + Send + Sync>;

/// What the proxy injects.
#[derive(Clone, Default)]
pub struct Options {
    pub fault: Option<Fault>,
    pub chaos: Option<Chaos>,
    pub delay: Option<Delay>,
}

/// One `PutRecordBatch` call as the proxy saw it.
#[derive(Debug, Clone)]
pub struct Call {
    pub records: usize,
}

/// One `PutSubscriptionFilter` call the proxy answered itself: its JSON body.
#[derive(Debug, Clone)]
pub struct FilterCall {
    pub body: Value,
}

/// What passed for one operation (`PutObject`, `PutRecordBatch`, `ReceiveMessage`, ...).
#[derive(Debug, Clone, Default)]
pub struct OperationStats {
    pub calls: u64,
    /// The most calls of this operation in the proxy at once.
    pub most_in_flight: u64,
    in_flight: u64,
    pub faults: BTreeMap<Kind, u64>,
    /// Records failed by [`Kind::PartialBatch`].
    pub records_failed: u64,
}

#[derive(Default)]
struct State {
    calls: Vec<Call>,
    filter_calls: Vec<FilterCall>,
    operations: BTreeMap<String, OperationStats>,
    /// How often each request was seen, by fingerprint, and whether its last call was failed.
    seen: HashMap<u64, (u64, bool)>,
}

pub struct Proxy {
    pub endpoint: String,
    state: Arc<Mutex<State>>,
}

impl Proxy {
    /// Listens on a free loopback port, forwarding to `upstream` (`http://host:port`) and
    /// failing `PutRecordBatch` calls as `fault` says. The proxy lives as long as the calling
    /// test's runtime.
    pub async fn start(upstream: &str, fault: Fault) -> Proxy {
        Proxy::start_with(
            upstream,
            Options {
                fault: Some(fault),
                ..Options::default()
            },
        )
        .await
    }

    /// [`Proxy::start`] with any [`Options`].
    pub async fn start_with(upstream: &str, options: Options) -> Proxy {
        let listener = TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind the proxy");
        let endpoint = format!("http://{}", listener.local_addr().unwrap());
        let upstream = upstream.trim_start_matches("http://").to_owned();
        let state = Arc::new(Mutex::new(State::default()));
        let shared = state.clone();
        tokio::spawn(async move {
            while let Ok((connection, _)) = listener.accept().await {
                let (upstream, state, options) =
                    (upstream.clone(), shared.clone(), options.clone());
                tokio::spawn(async move { serve(connection, &upstream, &options, &state).await });
            }
        });
        Proxy { endpoint, state }
    }

    /// The `PutRecordBatch` calls made so far, in order.
    pub fn calls(&self) -> Vec<Call> {
        self.state.lock().unwrap().calls.clone()
    }

    /// The `PutSubscriptionFilter` calls towards a CloudWatch Logs destination, in order.
    pub fn filter_calls(&self) -> Vec<FilterCall> {
        self.state.lock().unwrap().filter_calls.clone()
    }

    /// What passed so far, by operation.
    pub fn stats(&self) -> BTreeMap<String, OperationStats> {
        self.state.lock().unwrap().operations.clone()
    }

    /// Faults injected so far, by kind, over every operation.
    pub fn faults(&self) -> BTreeMap<Kind, u64> {
        let mut faults = BTreeMap::new();
        for stats in self.state.lock().unwrap().operations.values() {
            for (kind, count) in &stats.faults {
                *faults.entry(*kind).or_insert(0) += count;
            }
        }
        faults
    }
}

struct Request {
    head: String,
    body: Vec<u8>,
}

impl Request {
    fn method(&self) -> &str {
        self.head.split(' ').next().unwrap_or_default()
    }

    fn path(&self) -> &str {
        self.head.split(' ').nth(1).unwrap_or_default()
    }

    fn header(&self, name: &str) -> Option<&str> {
        self.head.lines().skip(1).find_map(|line| {
            let (key, value) = line.split_once(':')?;
            key.trim().eq_ignore_ascii_case(name).then(|| value.trim())
        })
    }

    /// JSON protocol services name the operation in `X-Amz-Target` (`Firehose_20150804.PutRecordBatch`,
    /// `AmazonSQS.ReceiveMessage`); S3 by method and path.
    fn operation(&self) -> String {
        if let Some(target) = self.header("x-amz-target") {
            return target.rsplit('.').next().unwrap_or(target).to_owned();
        }
        let (path, query) = self.path().split_once('?').unwrap_or((self.path(), ""));
        let has_key = path.trim_start_matches('/').contains('/');
        let name = match (self.method(), has_key) {
            ("GET", true) => "GetObject",
            ("PUT", true) => "PutObject",
            ("HEAD", true) => "HeadObject",
            ("DELETE", true) => "DeleteObject",
            ("GET", false) if query.contains("list-type=2") => "ListObjectsV2",
            (method, _) => return format!("S3 {method}"),
        };
        name.to_owned()
    }

    fn is_json_protocol(&self) -> bool {
        self.header("x-amz-target").is_some()
    }

    /// The request with `body`, its length, and `Connection: close`; `Expect` is left out, as
    /// the whole body is sent at once.
    fn to_bytes(&self, body: &[u8]) -> Vec<u8> {
        let mut lines = self.head.lines();
        let mut out = format!("{}\r\n", lines.next().unwrap_or_default());
        for line in lines.filter(|l| !l.is_empty()) {
            let name = line
                .split(':')
                .next()
                .unwrap_or_default()
                .trim()
                .to_ascii_lowercase();
            if !matches!(
                name.as_str(),
                "content-length" | "connection" | "transfer-encoding" | "expect"
            ) {
                out.push_str(line);
                out.push_str("\r\n");
            }
        }
        out.push_str(&format!(
            "content-length: {}\r\nconnection: close\r\n\r\n",
            body.len()
        ));
        let mut bytes = out.into_bytes();
        bytes.extend_from_slice(body);
        bytes
    }
}

/// A 64-bit hash of `parts`, keyed by nothing random: the same parts give the same hash in
/// every run.
fn hash(parts: &[&[u8]]) -> u64 {
    let mut hasher = DefaultHasher::new();
    for part in parts {
        hasher.write_usize(part.len());
        hasher.write(part);
    }
    hasher.finish()
}

/// What to do with one call.
enum Action {
    Forward,
    Inject(Kind),
}

async fn serve(mut client: TcpStream, upstream: &str, options: &Options, state: &Mutex<State>) {
    let Some(request) = read_request(&mut client).await else {
        return;
    };
    if let Some(answer) = answer_itself(&request, options.fault, state) {
        drop(client.write_all(&answer).await);
        drop(client.shutdown().await);
        return;
    }
    let operation = request.operation();
    let is_put_batch = operation == "PutRecordBatch";
    let (call, action) = {
        let mut state = state.lock().unwrap();
        let action = options.chaos.map_or(Action::Forward, |chaos| {
            draw(&chaos, &request, is_put_batch, &mut state)
        });
        let stats = state.operations.entry(operation.clone()).or_default();
        stats.calls += 1;
        stats.in_flight += 1;
        stats.most_in_flight = stats.most_in_flight.max(stats.in_flight);
        if let Action::Inject(kind) = action {
            *stats.faults.entry(kind).or_insert(0) += 1;
        }
        let mut call = 0;
        if is_put_batch {
            let records = serde_json::from_slice::<Value>(&request.body)
                .ok()
                .and_then(|b| b["Records"].as_array().map(Vec::len))
                .unwrap_or(0);
            state.calls.push(Call { records });
            call = state.calls.len();
        }
        (call, action)
    };
    if let Some(delay) = &options.delay {
        tokio::time::sleep(delay(&operation, request.path())).await;
    }
    let response = match action {
        Action::Inject(Kind::Throttle) => Some(throttle(&request)),
        Action::Inject(Kind::ServerError) => Some(server_error(&request)),
        Action::Inject(Kind::Timeout) => {
            drop(forward(upstream, &request.to_bytes(&request.body)).await);
            if let Some(chaos) = options.chaos {
                tokio::time::sleep(chaos.stall).await;
            }
            None
        }
        Action::Inject(Kind::PartialBatch) => {
            let seed = options.chaos.map_or(0, |c| c.seed);
            let fingerprint = hash(&[&seed.to_le_bytes(), &request.body]);
            let failing = |count: usize| {
                let mut failing: Vec<bool> = (0..count)
                    .map(|i| {
                        hash(&[&fingerprint.to_le_bytes(), &i.to_le_bytes()]).is_multiple_of(2)
                    })
                    .collect();
                // At least one record fails: the last, when the draws spare every one.
                if !failing.contains(&true)
                    && let Some(last) = failing.last_mut()
                {
                    *last = true;
                }
                failing
            };
            let (answer, failed) = put_record_batch(&request, upstream, failing).await;
            let mut state = state.lock().unwrap();
            let stats = state.operations.entry(operation.clone()).or_default();
            stats.records_failed += failed as u64;
            Some(answer)
        }
        Action::Forward if is_put_batch => match options.fault {
            Some(fault) => Some(planned_fault(&request, upstream, fault, call).await),
            None => Some(forward(upstream, &request.to_bytes(&request.body)).await),
        },
        Action::Forward => Some(forward(upstream, &request.to_bytes(&request.body)).await),
    };
    if let Some(response) = response {
        drop(client.write_all(&response).await);
    }
    drop(client.shutdown().await);
    let mut state = state.lock().unwrap();
    if let Some(stats) = state.operations.get_mut(&operation) {
        stats.in_flight -= 1;
    }
}

/// The answer to a call moto cannot emulate, which the proxy gives itself under `fault`: an
/// `AssumeRole` refused, or a `PutSubscriptionFilter` towards a destination, recorded.
fn answer_itself(request: &Request, fault: Option<Fault>, state: &Mutex<State>) -> Option<Vec<u8>> {
    if let Some(Fault::DenyAssumeRoleInto(account)) = fault {
        let body = String::from_utf8_lossy(&request.body);
        if body.contains("Action=AssumeRole")
            && body.contains(&format!("iam%3A%3A{account}%3Arole"))
        {
            let denied = format!(
                "<ErrorResponse xmlns=\"https://sts.amazonaws.com/doc/2011-06-15/\"><Error><Type>Sender</Type><Code>AccessDenied</Code><Message>not authorized to perform sts:AssumeRole on a role of {account}</Message></Error><RequestId>proxy</RequestId></ErrorResponse>"
            );
            return Some(
                format!(
                    "HTTP/1.1 403 Forbidden\r\ncontent-type: text/xml\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{denied}",
                    denied.len()
                )
                .into_bytes(),
            );
        }
    }
    let records_filters = matches!(
        fault,
        Some(Fault::RecordLogsDestinationFilters | Fault::DenyAssumeRoleInto(_))
    );
    if !records_filters || request.operation() != "PutSubscriptionFilter" {
        return None;
    }
    let body: Value =
        serde_json::from_slice(&request.body).expect("PutSubscriptionFilter body is JSON");
    let to_destination = body["destinationArn"]
        .as_str()
        .is_some_and(|arn| arn.split(':').nth(2) == Some("logs") && arn.contains(":destination:"));
    if !to_destination {
        return None;
    }
    state.lock().unwrap().filter_calls.push(FilterCall { body });
    Some(http(200, &json!({})))
}

/// Whether, and how, chaos strikes this call.
fn draw(chaos: &Chaos, request: &Request, is_put_batch: bool, state: &mut State) -> Action {
    let fingerprint = hash(&[
        request.method().as_bytes(),
        request.path().as_bytes(),
        request
            .header("x-amz-target")
            .unwrap_or_default()
            .as_bytes(),
        &request.body,
    ]);
    let (seen, last_failed) = state.seen.entry(fingerprint).or_insert((0, false));
    *seen += 1;
    let draw = hash(&[
        &chaos.seed.to_le_bytes(),
        &fingerprint.to_le_bytes(),
        &seen.to_le_bytes(),
    ]);
    // The top 53 bits as a uniform number in [0, 1).
    let uniform = (draw >> 11) as f64 / (1u64 << 53) as f64;
    let rate = if *last_failed {
        chaos.rate.max(chaos.burst)
    } else {
        chaos.rate
    };
    *last_failed = uniform < rate;
    if !*last_failed {
        return Action::Forward;
    }
    // Half of the faults of a PutRecordBatch call are partial failures: the kind that only it
    // has.
    let kinds: &[Kind] = if is_put_batch {
        &[
            Kind::Throttle,
            Kind::ServerError,
            Kind::Timeout,
            Kind::PartialBatch,
            Kind::PartialBatch,
            Kind::PartialBatch,
        ]
    } else {
        &Kind::ALL[..3]
    };
    Action::Inject(kinds[(draw % kinds.len() as u64) as usize])
}

fn throttle(request: &Request) -> Vec<u8> {
    if request.is_json_protocol() {
        http(
            400,
            &json!({"__type": "ThrottlingException", "message": "Rate exceeded"}),
        )
    } else {
        s3_error(503, "SlowDown", "Please reduce your request rate.")
    }
}

fn server_error(request: &Request) -> Vec<u8> {
    if request.is_json_protocol() {
        http(
            500,
            &json!({"__type": "InternalFailure", "message": "We encountered an internal error."}),
        )
    } else {
        s3_error(500, "InternalError", "We encountered an internal error.")
    }
}

fn s3_error(status: u16, code: &str, message: &str) -> Vec<u8> {
    let body = format!(
        "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<Error><Code>{code}</Code><Message>{message}</Message><RequestId>proxy</RequestId></Error>"
    );
    format!(
        "HTTP/1.1 {status} {}\r\ncontent-type: application/xml\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{body}",
        reason(status),
        body.len()
    )
    .into_bytes()
}

/// A `PutRecordBatch` call under a deterministic [`Fault`]; `call` counts from 1.
async fn planned_fault(request: &Request, upstream: &str, fault: Fault, call: usize) -> Vec<u8> {
    if let Fault::ServerError { calls } = fault
        && call <= calls
    {
        return http(
            500,
            &json!({"__type": "ServiceUnavailableException", "message": "Slow down."}),
        );
    }
    let failing = |count: usize| {
        (0..count)
            .map(|index| match fault {
                Fault::FailEveryOtherRecord { calls } => call <= calls && index % 2 == 1,
                Fault::FailAllRecords => true,
                Fault::ServerError { .. }
                | Fault::RecordLogsDestinationFilters
                | Fault::DenyAssumeRoleInto(_) => false,
            })
            .collect()
    };
    put_record_batch(request, upstream, failing).await.0
}

/// Sends moto the records `failing(count)` spares (it says, for each of the call's `count`
/// records, whether it fails) and answers for all of them: moto's answers for those,
/// `ServiceUnavailableException` for the others. Returns the answer and the number of records
/// failed.
async fn put_record_batch(
    request: &Request,
    upstream: &str,
    failing: impl FnOnce(usize) -> Vec<bool>,
) -> (Vec<u8>, usize) {
    let Ok(mut body) = serde_json::from_slice::<Value>(&request.body) else {
        return (forward(upstream, &request.to_bytes(&request.body)).await, 0);
    };
    let records = body["Records"].as_array().cloned().unwrap_or_default();
    let count = records.len();
    let failing = failing(count);
    if !failing.contains(&true) {
        return (forward(upstream, &request.to_bytes(&request.body)).await, 0);
    }
    let passing: Vec<Value> = records
        .iter()
        .zip(&failing)
        .filter(|(_, failing)| !**failing)
        .map(|(r, _)| r.clone())
        .collect();
    let mut accepted = Vec::new().into_iter();
    if !passing.is_empty() {
        body["Records"] = Value::Array(passing);
        let answer = forward(upstream, &request.to_bytes(body.to_string().as_bytes())).await;
        if !answer.starts_with(b"HTTP/1.1 200") {
            return (answer, 0);
        }
        let split = answer
            .windows(4)
            .position(|w| w == b"\r\n\r\n")
            .expect("an HTTP response")
            + 4;
        let answer: Value = serde_json::from_slice(&answer[split..]).expect("moto answers JSON");
        accepted = answer["RequestResponses"]
            .as_array()
            .cloned()
            .unwrap_or_default()
            .into_iter();
    }
    let answers: Vec<Value> = failing
        .iter()
        .map(|failing| {
            if *failing {
                json!({"ErrorCode": "ServiceUnavailableException", "ErrorMessage": "Slow down."})
            } else {
                accepted.next().expect("moto answers every record it got")
            }
        })
        .collect();
    let failed = failing.iter().filter(|f| **f).count();
    let answer = http(
        200,
        &json!({"FailedPutCount": failed, "Encrypted": false, "RequestResponses": answers}),
    );
    (answer, failed)
}

fn reason(status: u16) -> &'static str {
    match status {
        200 => "OK",
        400 => "Bad Request",
        503 => "Service Unavailable",
        _ => "Internal Server Error",
    }
}

fn http(status: u16, body: &Value) -> Vec<u8> {
    let body = body.to_string();
    format!(
        "HTTP/1.1 {status} {}\r\ncontent-type: application/x-amz-json-1.1\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{body}",
        reason(status),
        body.len()
    )
    .into_bytes()
}

async fn forward(upstream: &str, request: &[u8]) -> Vec<u8> {
    let mut server = TcpStream::connect(upstream).await.expect("moto is up");
    server.write_all(request).await.expect("send to moto");
    let mut response = Vec::new();
    server
        .read_to_end(&mut response)
        .await
        .expect("read moto's answer");
    response
}

/// Reads one request: the head up to the blank line, then `Content-Length` bytes of body, or
/// its chunks (`Transfer-Encoding: chunked`), decoded.
async fn read_request(client: &mut TcpStream) -> Option<Request> {
    let mut buffer = Vec::new();
    let mut chunk = [0u8; 64 * 1024];
    let head_end = loop {
        if let Some(end) = buffer.windows(4).position(|w| w == b"\r\n\r\n") {
            break end;
        }
        let read = client.read(&mut chunk).await.ok()?;
        if read == 0 {
            return None;
        }
        buffer.extend_from_slice(&chunk[..read]);
    };
    let head = String::from_utf8(buffer[..head_end].to_vec()).ok()?;
    let mut request = Request {
        head,
        body: Vec::new(),
    };
    let mut rest = buffer[head_end + 4..].to_vec();
    let chunked = request
        .header("transfer-encoding")
        .is_some_and(|t| t.eq_ignore_ascii_case("chunked"));
    if chunked {
        loop {
            // A chunk: its size in hex, CRLF, the bytes, CRLF; size 0 ends the body.
            let Some(line_end) = rest.windows(2).position(|w| w == b"\r\n") else {
                let read = client.read(&mut chunk).await.ok()?;
                if read == 0 {
                    return None;
                }
                rest.extend_from_slice(&chunk[..read]);
                continue;
            };
            let size_text = std::str::from_utf8(&rest[..line_end]).ok()?;
            let size = usize::from_str_radix(size_text.split(';').next()?.trim(), 16).ok()?;
            if size == 0 {
                break;
            }
            while rest.len() < line_end + 2 + size + 2 {
                let read = client.read(&mut chunk).await.ok()?;
                if read == 0 {
                    return None;
                }
                rest.extend_from_slice(&chunk[..read]);
            }
            request
                .body
                .extend_from_slice(&rest[line_end + 2..line_end + 2 + size]);
            rest.drain(..line_end + 2 + size + 2);
        }
        return Some(request);
    }
    request.body = rest;
    let length: usize = request
        .header("content-length")
        .and_then(|l| l.parse().ok())
        .unwrap_or(0);
    while request.body.len() < length {
        let read = client.read(&mut chunk).await.ok()?;
        if read == 0 {
            return None;
        }
        request.body.extend_from_slice(&chunk[..read]);
    }
    Some(request)
}
