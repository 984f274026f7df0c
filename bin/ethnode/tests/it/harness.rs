//! Test harness: locating the tools, free ports, the ethnode process, polling helpers.

use nix::sys::signal::{Signal, kill};
use nix::unistd::Pid;
use serde_json::Value;
use std::future::Future;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::time::{Duration, Instant};

/// The workspace root.
pub fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

/// A tool installed by scripts/test.sh into .tools (npm) or .venv (PyPI).
pub fn tool(name: &str) -> PathBuf {
    let candidates = [
        root().join(".venv/bin").join(name),
        root().join(".tools/node_modules/.bin").join(name),
    ];
    candidates
        .iter()
        .find(|p| p.is_file())
        .cloned()
        .unwrap_or_else(|| {
            panic!("{name} is not installed in .tools or .venv: run `bash scripts/test.sh` (it installs the test tools)")
        })
}

/// A port for a server under test, free for TCP and UDP a moment ago.
///
/// Not from the OS's ephemeral range (32768-60999 here): outgoing connections of the many processes a
/// test run starts take their local ports from there, and could grab a port between this check and the
/// server's bind. Each test process gets its own slice of 20000-31999 by pid; a counter walks through it.
pub fn free_port() -> u16 {
    use std::sync::atomic::{AtomicU16, Ordering};
    static NEXT: AtomicU16 = AtomicU16::new(0);
    static START: std::sync::OnceLock<u16> = std::sync::OnceLock::new();
    let base = 20_000 + (std::process::id() % 120) as u16 * 100;
    // Two processes whose pids share a slice still start at different places in it.
    let start = *START.get_or_init(|| {
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| (d.subsec_micros() % 100) as u16)
    });
    for _ in 0..100 {
        let port = base + (start + NEXT.fetch_add(1, Ordering::Relaxed)) % 100;
        let tcp = std::net::TcpListener::bind(("0.0.0.0", port)).is_ok();
        let udp = std::net::UdpSocket::bind(("0.0.0.0", port)).is_ok();
        if tcp && udp {
            return port;
        }
    }
    panic!("no free port in {base}..{}", base + 100);
}

/// Polls `f` every 100 ms until it yields `Some`, or panics after `limit` naming `what`.
pub async fn wait_for<T, F, Fut>(what: &str, limit: Duration, mut f: F) -> T
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Option<T>>,
{
    let start = Instant::now();
    loop {
        if let Some(v) = f().await {
            return v;
        }
        assert!(
            start.elapsed() < limit,
            "timed out after {limit:?} waiting for {what}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// GET a URL: status code and body as JSON (Null when not JSON). None when unreachable.
pub async fn get_json(url: &str) -> Option<(u16, Value)> {
    let r = reqwest::Client::new()
        .get(url)
        .timeout(Duration::from_secs(2))
        .send()
        .await
        .ok()?;
    let code = r.status().as_u16();
    let body = r.json().await.unwrap_or(Value::Null);
    Some((code, body))
}

/// GET a URL as text.
pub async fn get_text(url: &str) -> Option<String> {
    reqwest::Client::new()
        .get(url)
        .timeout(Duration::from_secs(2))
        .send()
        .await
        .ok()?
        .text()
        .await
        .ok()
}

/// A JSON-RPC call; the `result`.
pub async fn rpc(url: &str, method: &str, params: Value) -> Option<Value> {
    let body = serde_json::json!({"jsonrpc": "2.0", "id": 1, "method": method, "params": params});
    let r: Value = reqwest::Client::new()
        .post(url)
        .json(&body)
        .timeout(Duration::from_secs(2))
        .send()
        .await
        .ok()?
        .json()
        .await
        .ok()?;
    r.get("result").cloned()
}

/// Parses a 0x quantity.
pub fn quantity(v: &Value) -> u64 {
    u64::from_str_radix(v.as_str().expect("hex string").trim_start_matches("0x"), 16).expect("hex")
}

/// Writes an executable shell script.
pub fn script(path: &Path, body: &str) {
    use std::os::unix::fs::PermissionsExt;
    std::fs::write(path, format!("#!/bin/sh\n{body}\n")).unwrap();
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o755)).unwrap();
}

/// Whether a process exists.
pub fn alive(pid: u32) -> bool {
    kill(Pid::from_raw(pid as i32), None).is_ok()
}

/// An `ethnode` child process whose output goes to files; killed on drop if still running.
pub struct Ethnode {
    child: Child,
    /// Its stdout file.
    pub stdout: PathBuf,
    /// Its stderr file.
    pub stderr: PathBuf,
}

impl Ethnode {
    /// Starts `ethnode ARGS` with extra environment; output under `dir`.
    pub fn spawn(dir: &Path, args: &[&str], env: &[(&str, String)]) -> Self {
        let n = std::fs::read_dir(dir).map(|d| d.count()).unwrap_or(0);
        let stdout = dir.join(format!("ethnode-{n}.out"));
        let stderr = dir.join(format!("ethnode-{n}.err"));
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_ethnode"));
        cmd.args(args)
            .current_dir(dir)
            .stdin(Stdio::null())
            .stdout(std::fs::File::create(&stdout).unwrap())
            .stderr(std::fs::File::create(&stderr).unwrap())
            .env("ETHNODE_LOG", "info")
            // Never reach for a real metadata service or real AWS from a test.
            .env("AWS_EC2_METADATA_SERVICE_ENDPOINT", "http://127.0.0.1:9/")
            .env("AWS_ACCESS_KEY_ID", "test")
            .env("AWS_SECRET_ACCESS_KEY", "test")
            .env("AWS_REGION", "us-east-1")
            .env_remove("ETHNODE_CONFIG");
        for (k, v) in env {
            cmd.env(k, v);
        }
        let child = cmd.spawn().expect("spawn ethnode");
        Self {
            child,
            stdout,
            stderr,
        }
    }

    /// Sends a signal.
    pub fn signal(&self, sig: Signal) {
        kill(Pid::from_raw(self.child.id() as i32), sig).expect("signal ethnode");
    }

    /// Waits for exit, at most `limit`.
    pub async fn wait(&mut self, limit: Duration) -> ExitStatus {
        let start = Instant::now();
        loop {
            if let Some(s) = self.child.try_wait().unwrap() {
                return s;
            }
            assert!(
                start.elapsed() < limit,
                "ethnode did not exit within {limit:?}; stderr:\n{}",
                self.stderr_text()
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// Everything it wrote to stderr so far.
    pub fn stderr_text(&self) -> String {
        std::fs::read_to_string(&self.stderr).unwrap_or_default()
    }

    /// Everything it wrote to stdout so far.
    pub fn stdout_text(&self) -> String {
        std::fs::read_to_string(&self.stdout).unwrap_or_default()
    }
}

impl Drop for Ethnode {
    fn drop(&mut self) {
        if self.child.try_wait().ok().flatten().is_none() {
            // Graceful first so the agent takes its clients down with it.
            let _ = kill(Pid::from_raw(self.child.id() as i32), Signal::SIGTERM);
            let start = Instant::now();
            while start.elapsed() < Duration::from_secs(5) {
                if self.child.try_wait().ok().flatten().is_some() {
                    return;
                }
                std::thread::sleep(Duration::from_millis(50));
            }
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

/// A dev config (anvil) with its own ports, fast checks and fast restarts.
pub struct DevNode {
    /// Temp dir holding config, data and logs.
    pub dir: tempfile::TempDir,
    /// Config path.
    pub config: PathBuf,
    /// JSON-RPC port.
    pub http: u16,
    /// Agent API port.
    pub agent: u16,
}

impl DevNode {
    /// Writes the config; `extra` is appended verbatim (more sections).
    pub fn new(extra: &str) -> Self {
        let dir = tempfile::tempdir().unwrap();
        let http = free_port();
        let agent = free_port();
        let config = dir.path().join("ethnode.toml");
        let text = format!(
            r#"[node]
network = "dev"
data_dir = "{data}"

[execution]
binary = "{anvil}"

[ports]
http = {http}
agent = {agent}

[readiness]
check_interval_secs = 1
max_head_age_secs = 5

[agent]
restart_initial_ms = 200
restart_max_ms = 1000
stop_grace_secs = 10

[dev]
block_time_secs = 1
{extra}
"#,
            data = dir.path().join("data").display(),
            anvil = tool("anvil").display(),
        );
        std::fs::write(&config, text).unwrap();
        Self {
            dir,
            config,
            http,
            agent,
        }
    }

    /// The RPC URL.
    pub fn rpc(&self) -> String {
        format!("http://127.0.0.1:{}/", self.http)
    }

    /// An agent API URL.
    pub fn api(&self, path: &str) -> String {
        format!("http://127.0.0.1:{}{path}", self.agent)
    }

    /// Starts `ethnode agent` on this config.
    pub fn agent(&self, env: &[(&str, String)]) -> Ethnode {
        Ethnode::spawn(
            self.dir.path(),
            &["agent", "--config", self.config.to_str().unwrap()],
            env,
        )
    }

    /// Waits until `/health/ready` answers 200; returns `/status`.
    pub async fn wait_ready(&self, limit: Duration) -> Value {
        let url = self.api("/health/ready");
        wait_for("ready", limit, || async {
            get_json(&url).await.filter(|(c, _)| *c == 200)
        })
        .await;
        get_json(&self.api("/status")).await.unwrap().1
    }
}

/// A moto server (the AWS endpoint for tests) on its own port; killed on drop.
pub struct Moto {
    child: Child,
    /// `http://127.0.0.1:PORT`
    pub url: String,
}

impl Moto {
    /// Starts moto_server and waits until it answers.
    pub async fn start() -> Self {
        let port = free_port();
        // scripts/moto_server.py: moto's server plus one fix (outputs after change sets; see the file).
        let child = Command::new(tool("python"))
            .arg(root().join("scripts/moto_server.py"))
            .args(["-H", "127.0.0.1", "-p", &port.to_string()])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("start moto_server");
        let url = format!("http://127.0.0.1:{port}");
        let probe = format!("{url}/moto-api/");
        let moto = Self { child, url };
        wait_for("moto_server", Duration::from_secs(30), || async {
            get_text(&probe).await.map(|_| ())
        })
        .await;
        moto
    }

    /// Environment that points the AWS SDK and CLI at this server.
    pub fn env(&self) -> Vec<(&'static str, String)> {
        vec![
            ("AWS_ENDPOINT_URL", self.url.clone()),
            ("AWS_ACCESS_KEY_ID", "test".into()),
            ("AWS_SECRET_ACCESS_KEY", "test".into()),
            ("AWS_REGION", "us-east-1".into()),
            ("AWS_DEFAULT_REGION", "us-east-1".into()),
        ]
    }

    /// Runs the aws CLI against this server and parses its JSON output.
    pub fn aws(&self, args: &[&str]) -> Value {
        serde_json::from_str(&self.aws_output(args, "json")).unwrap_or(Value::Null)
    }

    /// Runs the aws CLI and returns its text output (for `--query … --output text`).
    pub fn aws_text(&self, args: &[&str]) -> String {
        self.aws_output(args, "text").trim().to_string()
    }

    fn aws_output(&self, args: &[&str], format: &str) -> String {
        let out = Command::new(tool("aws"))
            .args(args)
            .args(["--output", format])
            .envs(self.env())
            .output()
            .expect("run aws cli");
        assert!(
            out.status.success(),
            "aws {args:?} failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout).into_owned()
    }
}

impl Moto {
    /// A VPC and a subnet in it, for stacks.
    pub fn network(&self) -> (String, String) {
        let vpc = self.aws_text(&[
            "ec2",
            "create-vpc",
            "--cidr-block",
            "10.0.0.0/16",
            "--query",
            "Vpc.VpcId",
        ]);
        let subnet = self.aws_text(&[
            "ec2",
            "create-subnet",
            "--vpc-id",
            &vpc,
            "--cidr-block",
            "10.0.1.0/24",
            "--query",
            "Subnet.SubnetId",
        ]);
        (vpc, subnet)
    }

    /// A stack parameter's current value.
    pub fn stack_parameter(&self, stack: &str, key: &str) -> String {
        self.aws_text(&[
            "cloudformation",
            "describe-stacks",
            "--stack-name",
            stack,
            "--query",
            &format!("Stacks[0].Parameters[?ParameterKey=='{key}'].ParameterValue"),
        ])
    }

    /// The stack's current snapshot, as its SSM parameter says (`none` for an empty volume).
    pub fn current_snapshot(&self, stack: &str) -> String {
        self.aws_text(&[
            "ssm",
            "get-parameter",
            "--name",
            &format!("/ethnode/{stack}/chain-snapshot-id"),
            "--query",
            "Parameter.Value",
        ])
    }

    /// A running instance (in `subnet`, at `private_ip`, tagged `ethnode:stack = stack` when given).
    pub fn run_instance(
        &self,
        subnet: Option<&str>,
        private_ip: Option<&str>,
        stack: Option<&str>,
    ) -> String {
        let mut args = vec![
            "ec2".to_string(),
            "run-instances".into(),
            "--image-id".into(),
            "ami-12c6146b".into(),
            "--instance-type".into(),
            "t3.micro".into(),
            "--query".into(),
            "Instances[0].InstanceId".into(),
        ];
        for (flag, v) in [
            ("--subnet-id", subnet),
            ("--private-ip-address", private_ip),
        ] {
            if let Some(v) = v {
                args.extend([flag.to_string(), v.to_string()]);
            }
        }
        if let Some(s) = stack {
            args.extend([
                "--tag-specifications".to_string(),
                format!("ResourceType=instance,Tags=[{{Key=ethnode:stack,Value={s}}}]"),
            ]);
        }
        self.aws_text(&args.iter().map(String::as_str).collect::<Vec<_>>())
    }

    /// A new volume's id.
    pub fn volume(&self) -> String {
        self.aws_text(&[
            "ec2",
            "create-volume",
            "--size",
            "20",
            "--availability-zone",
            "us-east-1a",
            "--query",
            "VolumeId",
        ])
    }
}

/// A `[ports]` table with a free port for every key of the mainnet profile; `http`, `consensus_http` and
/// `agent` as given.
pub fn mainnet_ports(http: u16, consensus_http: u16, agent: u16) -> String {
    let p = free_port;
    format!(
        "[ports]\np2p = {}\nhttp = {http}\nws = {}\nauthrpc = {}\nexecution_metrics = {}\nconsensus_p2p = {}\n\
         consensus_quic = {}\nconsensus_http = {consensus_http}\nconsensus_metrics = {}\nagent = {agent}\n",
        p(),
        p(),
        p(),
        p(),
        p(),
        p(),
        p()
    )
}

/// An ethnode.toml for a stack in `vpc`/`subnet` (alarms off: moto has none).
pub fn stack_config(stack: &str, vpc: &str, subnet: &str) -> String {
    format!(
        r#"[dns]
name = "mainnet.eth.internal"
[aws]
stack_name = "{stack}"
[deploy]
vpc_id = "{vpc}"
subnet_ids = ["{subnet}"]
image = "123456789012.dkr.ecr.us-east-1.amazonaws.com/ethnode:0.1.0"
enable_alarms = false
"#
    )
}

/// Runs `ethnode ARGS` to completion (60 s at most): exit code, stdout, stderr.
pub async fn run_ethnode(
    dir: &Path,
    args: &[&str],
    env: &[(&str, String)],
) -> (i32, String, String) {
    let mut run = Ethnode::spawn(dir, args, env);
    let code = run.wait(Duration::from_secs(60)).await.code().unwrap_or(-1);
    (code, run.stdout_text(), run.stderr_text())
}

impl Drop for Moto {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Requests a [`FakeImds`] saw.
#[derive(Default)]
pub struct ImdsCounts {
    /// Token PUTs.
    pub tokens: std::sync::atomic::AtomicUsize,
    /// GETs with the token.
    pub authorized: std::sync::atomic::AtomicUsize,
    /// GETs without it (refused).
    pub refused: std::sync::atomic::AtomicUsize,
}

/// A fake IMDSv2 server — no real EC2 metadata service can run here. It behaves like IMDSv2 in what
/// matters: PUT for a token with a TTL header (echoed back), GETs only with that token, 404 for absent
/// keys. Values can change while it runs (e.g. `autoscaling/target-lifecycle-state`).
pub struct FakeImds {
    /// `http://127.0.0.1:PORT/`
    pub url: String,
    /// Its counters.
    pub counts: std::sync::Arc<ImdsCounts>,
    values: std::sync::Arc<std::sync::Mutex<std::collections::HashMap<String, String>>>,
}

const IMDS_TOKEN: &str = "AQAEAFake-token==";

impl FakeImds {
    /// Starts it on a free loopback port with these `meta-data/` paths and values.
    pub async fn start(values: &[(&str, &str)]) -> Self {
        use axum::http::{HeaderMap, StatusCode};
        use axum::routing::{get, put};
        use std::sync::atomic::Ordering;
        let counts = std::sync::Arc::new(ImdsCounts::default());
        let values = std::sync::Arc::new(std::sync::Mutex::new(
            values
                .iter()
                .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
                .collect::<std::collections::HashMap<String, String>>(),
        ));
        let (c1, c2, v) = (counts.clone(), counts.clone(), values.clone());
        let app =
            axum::Router::new()
                .route(
                    "/latest/api/token",
                    put(move |h: HeaderMap| async move {
                        let Some(ttl) = h.get("x-aws-ec2-metadata-token-ttl-seconds").cloned()
                        else {
                            return (StatusCode::BAD_REQUEST, HeaderMap::new(), String::new());
                        };
                        c1.tokens.fetch_add(1, Ordering::SeqCst);
                        // Like IMDS, echo the TTL: the SDK refuses a token response without it.
                        let mut headers = HeaderMap::new();
                        headers.insert("x-aws-ec2-metadata-token-ttl-seconds", ttl);
                        (StatusCode::OK, headers, IMDS_TOKEN.to_string())
                    }),
                )
                .route(
                    "/latest/meta-data/{*path}",
                    get(
                        move |axum::extract::Path(path): axum::extract::Path<String>,
                              h: HeaderMap| async move {
                            if h.get("x-aws-ec2-metadata-token")
                                .and_then(|v| v.to_str().ok())
                                != Some(IMDS_TOKEN)
                            {
                                c2.refused.fetch_add(1, Ordering::SeqCst);
                                return (StatusCode::UNAUTHORIZED, String::new());
                            }
                            c2.authorized.fetch_add(1, Ordering::SeqCst);
                            match v.lock().unwrap().get(&path) {
                                Some(value) => (StatusCode::OK, value.clone()),
                                None => (StatusCode::NOT_FOUND, String::new()),
                            }
                        },
                    ),
                );
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
        Self {
            url: format!("http://{addr}/"),
            counts,
            values,
        }
    }

    /// Sets (or replaces) a value.
    pub fn set(&self, path: &str, value: &str) {
        self.values
            .lock()
            .unwrap()
            .insert(path.to_owned(), value.to_owned());
    }
}

/// A real anvil on 127.0.0.1:`port`, answering, with `mine` blocks mined (its process: kill it when done).
pub async fn start_anvil(port: u16, mine: u64) -> Child {
    let child = Command::new(tool("anvil"))
        .args(["--port", &port.to_string(), "--host", "127.0.0.1"])
        .stdout(Stdio::null())
        .spawn()
        .expect("start anvil");
    let url = format!("http://127.0.0.1:{port}");
    wait_for("anvil", Duration::from_secs(20), || async {
        rpc(
            &url,
            "anvil_mine",
            serde_json::json!([format!("{mine:#x}")]),
        )
        .await
        .map(|_| ())
    })
    .await;
    child
}
