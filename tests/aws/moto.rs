//! One moto server for the whole test binary, started on first use, and SDK clients for it.
//!
//! The server runs under a small `sh` guard whose stdin is a pipe from this process. When the
//! test process ends, however it ends (even `SIGKILL`), the kernel closes that pipe; the guard
//! reads end-of-file and kills the server. No cleanup code has to run, no pid file is left, and
//! there is no polling: `prctl(PR_SET_PDEATHSIG)` would need `unsafe` and fires when the
//! *thread* that spawned the child exits, which for a lazily started server is whichever test
//! thread got there first.
//!
//! Tests share the server and run in parallel, so each creates its own buckets, queues and
//! streams with [`unique`] names.

use std::io::Read;
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::LazyLock;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use aws_config::{BehaviorVersion, Region, SdkConfig};
use aws_sdk_s3::config::Credentials;

pub const REGION: &str = "us-east-1";
/// The account moto runs as.
pub const ACCOUNT: &str = "123456789012";

pub struct Moto {
    pub endpoint: String,
    /// The guard process; its stdin pipe stays open for as long as this process lives.
    _guard: Child,
}

/// The server, or why it could not start: every test then fails with that reason.
static MOTO: LazyLock<Result<Moto, String>> = LazyLock::new(start);

/// The endpoint of the shared server, starting it if needed.
pub fn endpoint() -> &'static str {
    match &*MOTO {
        Ok(moto) => &moto.endpoint,
        Err(reason) => panic!("{reason}"),
    }
}

/// Starts the server under its guard: the server's stdin is /dev/null, the guard's copy of the
/// pipe is fd 3, and `cat` on it returns when this process is gone.
const GUARD: &str = r#"
exec 3<&0 </dev/null
"$0" -H 127.0.0.1 -p "$1" &
server=$!
{ cat <&3 >/dev/null; kill "$server" 2>/dev/null; } &
exec 3<&-
wait "$server"
"#;

fn start() -> Result<Moto, String> {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let server = root.join(".venv/bin/moto_server");
    if !server.is_file() {
        return Err(format!(
            "{} not found: the AWS emulator tests need moto; run scripts/setup-tools.sh first",
            server.display()
        ));
    }
    let mut last_error = String::new();
    for _ in 0..3 {
        let port = free_port();
        let log =
            std::env::temp_dir().join(format!("eks-audit-moto-{}-{port}.log", std::process::id()));
        match spawn(&server, port, &log) {
            Ok(moto) => return Ok(moto),
            Err(e) => last_error = e,
        }
    }
    Err(last_error)
}

fn spawn(server: &Path, port: u16, log: &PathBuf) -> Result<Moto, String> {
    let log_file =
        std::fs::File::create(log).map_err(|e| format!("cannot create {}: {e}", log.display()))?;
    let mut guard = Command::new("sh")
        .arg("-c")
        .arg(GUARD)
        .arg(server)
        .arg(port.to_string())
        .stdin(Stdio::piped())
        .stdout(log_file.try_clone().map_err(|e| e.to_string())?)
        .stderr(log_file)
        .spawn()
        .map_err(|e| format!("cannot start {}: {e}", server.display()))?;
    let deadline = Instant::now() + Duration::from_secs(60);
    while Instant::now() < deadline {
        if TcpStream::connect(("127.0.0.1", port)).is_ok() {
            return Ok(Moto {
                endpoint: format!("http://127.0.0.1:{port}"),
                _guard: guard,
            });
        }
        if let Ok(Some(status)) = guard.try_wait() {
            return Err(format!(
                "moto_server exited ({status}); its output: {}",
                read(log)
            ));
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    drop(guard.kill());
    Err(format!(
        "moto_server did not listen on port {port} within 60 s; its output: {}",
        read(log)
    ))
}

fn read(path: &Path) -> String {
    let mut text = String::new();
    if let Ok(mut file) = std::fs::File::open(path) {
        drop(file.read_to_string(&mut text));
    }
    text
}

/// A port nothing listens on right now.
fn free_port() -> u16 {
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind an ephemeral port");
    listener.local_addr().expect("a bound address").port()
}

/// A name no other test (or earlier run against the same server) uses: lowercase, valid for
/// buckets, queues and delivery streams.
pub fn unique(what: &str) -> String {
    static COUNTER: AtomicUsize = AtomicUsize::new(0);
    format!(
        "{what}-{}-{}",
        std::process::id(),
        COUNTER.fetch_add(1, Ordering::Relaxed)
    )
}

/// AWS configuration for `endpoint`: static dummy credentials, [`REGION`].
pub async fn config_for(endpoint: &str) -> SdkConfig {
    aws_config::defaults(BehaviorVersion::latest())
        .endpoint_url(endpoint)
        .region(Region::new(REGION))
        .credentials_provider(Credentials::new("testing", "testing", None, None, "moto"))
        .load()
        .await
}

/// AWS configuration for the shared moto server.
pub async fn config() -> SdkConfig {
    config_for(endpoint()).await
}

/// An S3 client addressing buckets by path (`bucket.127.0.0.1` does not resolve).
pub async fn s3() -> aws_sdk_s3::Client {
    let config = aws_sdk_s3::config::Builder::from(&config().await)
        .force_path_style(true)
        .build();
    aws_sdk_s3::Client::from_conf(config)
}

pub async fn sqs() -> aws_sdk_sqs::Client {
    aws_sdk_sqs::Client::new(&config().await)
}

/// Environment variables that point the binaries at the shared server.
pub fn env() -> Vec<(&'static str, String)> {
    vec![
        ("AWS_ENDPOINT_URL", endpoint().to_owned()),
        ("AWS_REGION", REGION.to_owned()),
        ("AWS_ACCESS_KEY_ID", "testing".to_owned()),
        ("AWS_SECRET_ACCESS_KEY", "testing".to_owned()),
    ]
}
