//! A tiny HTTP proxy in front of moto that fails Firehose `PutRecordBatch` calls on demand:
//! moto itself always succeeds. It also records, and answers itself, the CloudWatch Logs
//! `PutSubscriptionFilter` calls towards a CloudWatch Logs destination, which moto 5.x does not
//! emulate (it answers that the log group does not exist). Everything else passes through
//! untouched. One request per
//! connection (`Connection: close`), which the SDK's client handles by reconnecting.
//!
//! moto does not check SigV4 signatures, so the proxy may rewrite a request body.

use std::sync::{Arc, Mutex};

use serde_json::{Value, json};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

/// What the proxy does to `PutRecordBatch` calls.
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

pub struct Proxy {
    pub endpoint: String,
    calls: Arc<Mutex<Vec<Call>>>,
    filter_calls: Arc<Mutex<Vec<FilterCall>>>,
}

impl Proxy {
    /// Listens on a free loopback port, forwarding to `upstream` (`http://host:port`). The
    /// proxy lives as long as the calling test's runtime.
    pub async fn start(upstream: &str, fault: Fault) -> Proxy {
        let listener = TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind the proxy");
        let endpoint = format!("http://{}", listener.local_addr().unwrap());
        let upstream = upstream.trim_start_matches("http://").to_owned();
        let calls = Arc::new(Mutex::new(Vec::new()));
        let filter_calls = Arc::new(Mutex::new(Vec::new()));
        let (seen, seen_filters) = (calls.clone(), filter_calls.clone());
        tokio::spawn(async move {
            while let Ok((connection, _)) = listener.accept().await {
                let (upstream, seen) = (upstream.clone(), seen.clone());
                let seen_filters = seen_filters.clone();
                tokio::spawn(async move {
                    serve(connection, &upstream, fault, &seen, &seen_filters).await
                });
            }
        });
        Proxy {
            endpoint,
            calls,
            filter_calls,
        }
    }

    /// The `PutSubscriptionFilter` calls towards a CloudWatch Logs destination, in order.
    pub fn filter_calls(&self) -> Vec<FilterCall> {
        self.filter_calls.lock().unwrap().clone()
    }

    /// The `PutRecordBatch` calls made so far, in order.
    pub fn calls(&self) -> Vec<Call> {
        self.calls.lock().unwrap().clone()
    }
}

struct Request {
    head: String,
    body: Vec<u8>,
}

impl Request {
    fn header(&self, name: &str) -> Option<&str> {
        self.head.lines().skip(1).find_map(|line| {
            let (key, value) = line.split_once(':')?;
            key.trim().eq_ignore_ascii_case(name).then(|| value.trim())
        })
    }

    /// The request with `body`, its length, and `Connection: close`.
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
            if name != "content-length" && name != "connection" {
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

async fn serve(
    mut client: TcpStream,
    upstream: &str,
    fault: Fault,
    seen: &Mutex<Vec<Call>>,
    seen_filters: &Mutex<Vec<FilterCall>>,
) {
    let Some(request) = read_request(&mut client).await else {
        return;
    };
    if let Fault::DenyAssumeRoleInto(account) = fault {
        let body = String::from_utf8_lossy(&request.body);
        if body.contains("Action=AssumeRole")
            && body.contains(&format!("iam%3A%3A{account}%3Arole"))
        {
            let denied = format!(
                "<ErrorResponse xmlns=\"https://sts.amazonaws.com/doc/2011-06-15/\"><Error><Type>Sender</Type><Code>AccessDenied</Code><Message>not authorized to perform sts:AssumeRole on a role of {account}</Message></Error><RequestId>proxy</RequestId></ErrorResponse>"
            );
            let response = format!(
                "HTTP/1.1 403 Forbidden\r\ncontent-type: text/xml\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{denied}",
                denied.len()
            );
            drop(client.write_all(response.as_bytes()).await);
            drop(client.shutdown().await);
            return;
        }
    }
    if matches!(
        fault,
        Fault::RecordLogsDestinationFilters | Fault::DenyAssumeRoleInto(_)
    ) && request
        .header("x-amz-target")
        .is_some_and(|t| t.ends_with(".PutSubscriptionFilter"))
    {
        let body: Value =
            serde_json::from_slice(&request.body).expect("PutSubscriptionFilter body is JSON");
        let to_destination = body["destinationArn"].as_str().is_some_and(|arn| {
            arn.split(':').nth(2) == Some("logs") && arn.contains(":destination:")
        });
        if to_destination {
            seen_filters.lock().unwrap().push(FilterCall { body });
            drop(client.write_all(&http(200, &json!({}))).await);
            drop(client.shutdown().await);
            return;
        }
    }
    let is_put_batch = request
        .header("x-amz-target")
        .is_some_and(|t| t.ends_with(".PutRecordBatch"));
    let response = if is_put_batch {
        let body: Value =
            serde_json::from_slice(&request.body).expect("PutRecordBatch body is JSON");
        let records = body["Records"].as_array().cloned().unwrap_or_default();
        let call = {
            let mut seen = seen.lock().unwrap();
            seen.push(Call {
                records: records.len(),
            });
            seen.len()
        };
        put_record_batch(&request, body, records, call, upstream, fault).await
    } else {
        forward(upstream, &request.to_bytes(&request.body)).await
    };
    drop(client.write_all(&response).await);
    drop(client.shutdown().await);
}

async fn put_record_batch(
    request: &Request,
    mut body: Value,
    records: Vec<Value>,
    call: usize,
    upstream: &str,
    fault: Fault,
) -> Vec<u8> {
    let failing = |index: usize| match fault {
        Fault::FailEveryOtherRecord { calls } => call <= calls && index % 2 == 1,
        Fault::FailAllRecords => true,
        Fault::ServerError { .. }
        | Fault::RecordLogsDestinationFilters
        | Fault::DenyAssumeRoleInto(_) => false,
    };
    if let Fault::ServerError { calls } = fault
        && call <= calls
    {
        return http(
            500,
            &json!({"__type": "ServiceUnavailableException", "message": "Slow down."}),
        );
    }
    if (0..records.len()).all(|i| !failing(i)) {
        return forward(upstream, &request.to_bytes(&request.body)).await;
    }
    let passing: Vec<Value> = records
        .iter()
        .enumerate()
        .filter(|(i, _)| !failing(*i))
        .map(|(_, r)| r.clone())
        .collect();
    let mut accepted = Vec::new().into_iter();
    if !passing.is_empty() {
        body["Records"] = Value::Array(passing);
        let answer = forward(upstream, &request.to_bytes(body.to_string().as_bytes())).await;
        if !answer.starts_with(b"HTTP/1.1 200") {
            return answer;
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
    let answers: Vec<Value> = (0..records.len())
        .map(|i| {
            if failing(i) {
                json!({"ErrorCode": "ServiceUnavailableException", "ErrorMessage": "Slow down."})
            } else {
                accepted.next().expect("moto answers every record it got")
            }
        })
        .collect();
    let failed = (0..records.len()).filter(|&i| failing(i)).count();
    http(
        200,
        &json!({"FailedPutCount": failed, "Encrypted": false, "RequestResponses": answers}),
    )
}

fn http(status: u16, body: &Value) -> Vec<u8> {
    let body = body.to_string();
    format!(
        "HTTP/1.1 {status} {}\r\ncontent-type: application/x-amz-json-1.1\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{body}",
        if status == 200 { "OK" } else { "Internal Server Error" },
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

/// Reads one request: the head up to the blank line, then `Content-Length` bytes of body.
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
        body: buffer[head_end + 4..].to_vec(),
    };
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
