//! Runs one client process: start, log its output, restart it after a crash with backoff and jitter,
//! give up after too many crashes in a window, and stop it gracefully (SIGTERM, grace, SIGKILL) — always
//! to its whole process group, so that whatever a client spawned goes with it. A client started where
//! `setpriv` exists (util-linux: every Debian image) gets `--pdeathsig KILL`, so that an agent killed
//! with SIGKILL does not leave it running and holding the database lock.

use crate::metrics::Metrics;
use ethnode_clients::{ClientSpec, Role};
use nix::sys::signal::{Signal, kill};
use nix::unistd::Pid;
use serde::Serialize;
use std::collections::VecDeque;
use std::path::PathBuf;
use std::process::{ExitStatus, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};
use tokio::io::{AsyncBufReadExt, AsyncRead, BufReader};
use tokio::process::{Child, Command};
use tokio::sync::oneshot;
use tokio::sync::watch;

/// Restart and stop policy, from `[agent]`.
#[derive(Debug, Clone)]
pub(crate) struct Policy {
    pub(crate) initial: Duration,
    pub(crate) max: Duration,
    pub(crate) crash_limit: u32,
    pub(crate) crash_window: Duration,
    pub(crate) grace: Duration,
    /// Turns true when the stop must not wait for the grace period (a second SIGTERM/SIGINT).
    pub(crate) force: watch::Receiver<bool>,
}

impl Policy {
    /// Delay before restart number `n` (1-based): doubling from `initial`, capped, ±25 % jitter so that
    /// several nodes that crashed together do not hammer a shared dependency in lockstep.
    pub(crate) fn backoff(&self, n: u32) -> Duration {
        let base = self
            .initial
            .saturating_mul(1u32 << n.saturating_sub(1).min(20))
            .min(self.max);
        let mut r = [0u8; 2];
        let jitter = if getrandom::fill(&mut r).is_ok() {
            f64::from(u16::from_le_bytes(r)) / f64::from(u16::MAX) * 0.5 + 0.75
        } else {
            1.0
        };
        base.mul_f64(jitter)
    }
}

/// What `/status` shows for a client.
#[derive(Debug, Clone, Serialize)]
pub struct ClientState {
    /// Client name.
    pub name: &'static str,
    /// `execution` or `consensus`.
    pub role: &'static str,
    /// Current pid while running.
    pub pid: Option<u32>,
    /// Whether the process is running now.
    pub running: bool,
    /// Restarts after crashes since the agent started.
    pub restarts: u64,
    /// Seconds since the current process started.
    pub uptime_secs: Option<u64>,
    /// How the last process ended, if one did.
    pub last_exit: Option<String>,
    #[serde(skip)]
    pub(crate) started: Option<Instant>,
}

impl ClientState {
    fn new(spec: &ClientSpec) -> Self {
        Self {
            name: spec.name,
            role: spec.role.as_str(),
            pid: None,
            running: false,
            restarts: 0,
            uptime_secs: None,
            last_exit: None,
            started: None,
        }
    }

    /// A copy with the uptime filled in as of now.
    pub(crate) fn snapshot(&self) -> Self {
        let mut s = self.clone();
        s.uptime_secs = self.started.map(|t| t.elapsed().as_secs());
        s
    }
}

/// Why a client task ended.
#[derive(Debug)]
pub(crate) enum Ended {
    /// Stopped on request.
    Stopped,
    /// Crashed too often: the agent must give up.
    GaveUp {
        name: &'static str,
        crashes: u32,
        window: Duration,
        last: String,
    },
}

/// A running client task.
struct Supervised {
    role: Role,
    stop: Option<oneshot::Sender<()>>,
    task: tokio::task::JoinHandle<Ended>,
}

impl Supervised {
    /// Asks the client to stop and waits until it has.
    async fn stop(mut self) -> Ended {
        if let Some(tx) = self.stop.take() {
            let _ = tx.send(());
        }
        self.task.await.unwrap_or(Ended::Stopped)
    }
}

/// Starts supervising `spec` (whose `program` is already resolved), reporting into `state`.
fn spawn(
    spec: ClientSpec,
    program: PathBuf,
    policy: Policy,
    metrics: Arc<Metrics>,
    gave_up: tokio::sync::mpsc::Sender<()>,
    state: Arc<Mutex<ClientState>>,
) -> Supervised {
    let (stop_tx, stop_rx) = oneshot::channel();
    let role = spec.role;
    let task = tokio::spawn(run(spec, program, policy, state, metrics, stop_rx, gave_up));
    Supervised {
        role,
        stop: Some(stop_tx),
        task,
    }
}

/// All the node's clients: started in order (execution first), stopped in reverse, and startable again
/// after a stop (for a snapshot) with their restart counts kept.
pub(crate) struct Supervision {
    clients: Vec<(ClientSpec, PathBuf, Arc<Mutex<ClientState>>)>,
    policy: Policy,
    metrics: Arc<Metrics>,
    gave_up: tokio::sync::mpsc::Sender<()>,
    running: Vec<Supervised>,
}

impl Supervision {
    pub(crate) fn new(
        clients: Vec<(ClientSpec, PathBuf)>,
        policy: Policy,
        metrics: Arc<Metrics>,
        gave_up: tokio::sync::mpsc::Sender<()>,
    ) -> Self {
        let clients = clients
            .into_iter()
            .map(|(spec, program)| {
                let state = Arc::new(Mutex::new(ClientState::new(&spec)));
                (spec, program, state)
            })
            .collect();
        Self {
            clients,
            policy,
            metrics,
            gave_up,
            running: Vec::new(),
        }
    }

    /// The clients' live states, in start order.
    pub(crate) fn states(&self) -> Vec<Arc<Mutex<ClientState>>> {
        self.clients.iter().map(|(_, _, s)| s.clone()).collect()
    }

    /// Starts every client (no-op while they run).
    pub(crate) fn start(&mut self) {
        if !self.running.is_empty() {
            return;
        }
        self.running = self
            .clients
            .iter()
            .map(|(spec, program, state)| {
                spawn(
                    spec.clone(),
                    program.clone(),
                    self.policy.clone(),
                    self.metrics.clone(),
                    self.gave_up.clone(),
                    state.clone(),
                )
            })
            .collect();
    }

    /// Stops every client, consensus first: it drives the execution client through the Engine API and
    /// must not see it vanish. Returns how a client that had given up ended, if one had.
    pub(crate) async fn stop(&mut self) -> Option<Ended> {
        let mut running = std::mem::take(&mut self.running);
        running.sort_by_key(|c| if c.role == Role::Consensus { 0 } else { 1 });
        let mut gave_up = None;
        for client in running {
            if let end @ Ended::GaveUp { .. } = client.stop().await {
                gave_up = Some(end);
            }
        }
        gave_up
    }
}

/// `setpriv`, when this host has it: the way to set the parent-death signal without unsafe code.
fn setpriv() -> Option<&'static PathBuf> {
    static SETPRIV: std::sync::OnceLock<Option<PathBuf>> = std::sync::OnceLock::new();
    SETPRIV
        .get_or_init(|| {
            let found = which::which("setpriv").ok();
            if found.is_none() {
                tracing::warn!(
                    "setpriv not found: clients will outlive an agent killed with SIGKILL"
                );
            }
            found
        })
        .as_ref()
}

fn start(spec: &ClientSpec, program: &PathBuf, args: &[String]) -> std::io::Result<Child> {
    // PR_SET_PDEATHSIG survives the exec and fires when the agent (the thread that spawned the child: a
    // runtime worker, alive as long as the agent) dies, however it dies.
    let mut cmd = match setpriv() {
        Some(setpriv) => {
            let mut c = Command::new(setpriv);
            c.args(["--pdeathsig", "KILL", "--"]).arg(program);
            c
        }
        None => Command::new(program),
    };
    cmd.args(args)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        // Own process group: a Ctrl-C in the terminal reaches only the agent, which then stops the
        // clients in order, and a stop reaches everything the client started.
        .process_group(0)
        // If the agent's task panics, do not leave a client holding the database lock.
        .kill_on_drop(true);
    let mut child = cmd.spawn()?;
    if let Some(out) = child.stdout.take() {
        tokio::spawn(forward(spec.name, out));
    }
    if let Some(err) = child.stderr.take() {
        tokio::spawn(forward(spec.name, err));
    }
    Ok(child)
}

/// Longest client log line passed on; the rest of it is dropped (a client printing megabytes without a
/// newline must not grow the agent's memory).
const MAX_LINE: usize = 16 * 1024;

/// Copies a client's output into the agent's log, tagged with the client's name: by bytes (invalid
/// UTF-8 is replaced, not fatal), a line at a time, each line at most [`MAX_LINE`] bytes.
async fn forward(name: &'static str, stream: impl AsyncRead + Unpin) {
    let mut reader = BufReader::new(stream);
    let mut line: Vec<u8> = Vec::with_capacity(256);
    let mut cut = false;
    loop {
        let (used, complete) = match reader.fill_buf().await {
            Ok(buf) if !buf.is_empty() => {
                let newline = buf.iter().position(|&b| b == b'\n');
                let chunk = &buf[..newline.unwrap_or(buf.len())];
                let room = MAX_LINE.saturating_sub(line.len());
                cut |= chunk.len() > room;
                line.extend_from_slice(&chunk[..chunk.len().min(room)]);
                (newline.map_or(buf.len(), |i| i + 1), newline.is_some())
            }
            _ => break,
        };
        reader.consume(used);
        if complete {
            emit(name, &line, cut);
            line.clear();
            cut = false;
        }
    }
    if !line.is_empty() {
        emit(name, &line, cut);
    }
}

fn emit(name: &'static str, bytes: &[u8], cut: bool) {
    let text = String::from_utf8_lossy(bytes);
    let text = text.trim_end_matches('\r');
    if cut {
        tracing::info!(target: "ethnode::client", client = name, "{text} …[line cut at {MAX_LINE} bytes]");
    } else {
        tracing::info!(target: "ethnode::client", client = name, "{text}");
    }
}

fn describe(status: std::io::Result<ExitStatus>) -> String {
    match status {
        Ok(s) => s.to_string(),
        Err(e) => format!("wait failed: {e}"),
    }
}

fn unix_now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

async fn run(
    spec: ClientSpec,
    program: PathBuf,
    policy: Policy,
    state: Arc<Mutex<ClientState>>,
    metrics: Arc<Metrics>,
    mut stop: oneshot::Receiver<()>,
    gave_up: tokio::sync::mpsc::Sender<()>,
) -> Ended {
    let name = spec.name;
    let mut crashes: VecDeque<Instant> = VecDeque::new();
    loop {
        // A one-shot step first (Nimbus's trusted node sync) until it has once succeeded, each attempt
        // from a clean slate.
        let prelude = spec.prelude.as_ref().filter(|p| !p.done_marker.exists());
        let cleaned = prelude.map_or(Ok(()), |p| {
            p.clean.iter().filter(|c| c.exists()).try_for_each(|c| {
                tracing::info!(client = name, path = %c.display(), "removing what an earlier attempt of the one-shot step left");
                std::fs::remove_dir_all(c)
            })
        });
        let args = prelude.map_or(&spec.args, |p| &p.args);
        let started = cleaned.and_then(|()| start(&spec, &program, args));
        let mut child = match started {
            Ok(child) => child,
            Err(e) => {
                // A missing binary or permission error will not fix itself: count it like a crash.
                tracing::error!(client = name, error = %e, program = %program.display(), "cannot start client");
                let last = format!("cannot start {}: {e}", program.display());
                if let Some(end) = record_crash(
                    &policy,
                    &mut crashes,
                    &state,
                    &metrics,
                    name,
                    last,
                    &gave_up,
                )
                .await
                {
                    return end;
                }
                if wait_or_stop(&mut stop, policy.backoff(crashes.len() as u32)).await {
                    return Ended::Stopped;
                }
                continue;
            }
        };
        let pid = child.id();
        // Checkpoint URLs may carry an API key.
        let shown: Vec<String> = args
            .iter()
            .map(|a| ethnode_config::redact_urls_in(a))
            .collect();
        if prelude.is_some() {
            tracing::info!(client = name, pid, args = ?shown, "one-shot step started before the client");
        } else {
            tracing::info!(client = name, pid, args = ?shown, "client started");
        }
        {
            let mut s = state.lock().unwrap_or_else(|p| p.into_inner());
            s.pid = pid;
            s.running = true;
            s.started = Some(Instant::now());
        }
        metrics.client_up(name, true);
        metrics.client_started(name, unix_now());

        tokio::select! {
            status = child.wait() => {
                let recorded = match prelude {
                    Some(p) if status.as_ref().is_ok_and(ExitStatus::success) => {
                        Some(std::fs::write(&p.done_marker, "done\n").map_err(|e| {
                            format!("one-shot step succeeded but {} could not be written: {e}", p.done_marker.display())
                        }))
                    }
                    _ => None,
                };
                if let Some(Ok(())) = recorded {
                    tracing::info!(client = name, "one-shot step done; starting the client");
                    continue;
                }
                let last = match recorded {
                    Some(Err(e)) => e,
                    _ => describe(status),
                };
                tracing::warn!(client = name, exit = %last, "client exited unexpectedly");
                if let Some(end) = record_crash(&policy, &mut crashes, &state, &metrics, name, last, &gave_up).await {
                    return end;
                }
                let delay = policy.backoff(crashes.len() as u32);
                tracing::info!(client = name, delay_ms = delay.as_millis() as u64, "restarting after backoff");
                if wait_or_stop(&mut stop, delay).await {
                    return Ended::Stopped;
                }
                let mut s = state.lock().unwrap_or_else(|p| p.into_inner());
                s.restarts += 1;
                drop(s);
                metrics.client_restarted(name);
            }
            _ = &mut stop => {
                let mut force = policy.force.clone();
                let last = graceful_stop(name, &mut child, policy.grace, &mut force).await;
                let mut s = state.lock().unwrap_or_else(|p| p.into_inner());
                s.running = false;
                s.pid = None;
                s.started = None;
                s.last_exit = Some(last);
                metrics.client_up(name, false);
                return Ended::Stopped;
            }
        }
    }
}

/// Notes a crash; returns `Some` when the crash limit within the window is reached.
async fn record_crash(
    policy: &Policy,
    crashes: &mut VecDeque<Instant>,
    state: &Mutex<ClientState>,
    metrics: &Metrics,
    name: &'static str,
    last: String,
    gave_up: &tokio::sync::mpsc::Sender<()>,
) -> Option<Ended> {
    let now = Instant::now();
    crashes.push_back(now);
    while crashes
        .front()
        .is_some_and(|t| now.duration_since(*t) > policy.crash_window)
    {
        crashes.pop_front();
    }
    {
        let mut s = state.lock().unwrap_or_else(|p| p.into_inner());
        s.running = false;
        s.pid = None;
        s.started = None;
        s.last_exit = Some(last.clone());
    }
    metrics.client_up(name, false);
    if crashes.len() as u32 >= policy.crash_limit {
        tracing::error!(
            client = name,
            crashes = crashes.len(),
            window_secs = policy.crash_window.as_secs(),
            "client keeps crashing; giving up so that the orchestrator can act"
        );
        let _ = gave_up.send(()).await;
        return Some(Ended::GaveUp {
            name,
            crashes: crashes.len() as u32,
            window: policy.crash_window,
            last,
        });
    }
    None
}

/// Sleeps for `delay` unless a stop arrives first (returns true then).
async fn wait_or_stop(stop: &mut oneshot::Receiver<()>, delay: Duration) -> bool {
    tokio::select! {
        _ = tokio::time::sleep(delay) => false,
        _ = stop => true,
    }
}

/// Sends `signal` to the client's whole process group (its pgid is its pid: `process_group(0)`).
fn signal_group(pid: u32, signal: Signal) -> nix::Result<()> {
    kill(Pid::from_raw(-(pid as i32)), signal)
}

/// SIGTERM to the group, wait up to `grace` (or until `force`), then SIGKILL to the group. Databases
/// (MDBX, LevelDB) flush on SIGTERM; SIGKILL is the last resort that the grace period is sized to avoid.
async fn graceful_stop(
    name: &'static str,
    child: &mut Child,
    grace: Duration,
    force: &mut watch::Receiver<bool>,
) -> String {
    let Some(pid) = child.id() else {
        return describe(child.wait().await);
    };
    tracing::info!(
        client = name,
        pid,
        grace_secs = grace.as_secs(),
        "stopping client (SIGTERM to its process group)"
    );
    if let Err(e) = signal_group(pid, Signal::SIGTERM) {
        tracing::warn!(client = name, error = %e, "SIGTERM failed");
    }
    let forced = async {
        // A receiver whose sender is gone can never be forced.
        if force.wait_for(|f| *f).await.is_err() {
            std::future::pending::<()>().await;
        }
    };
    let why = tokio::select! {
        status = tokio::time::timeout(grace, child.wait()) => match status {
            Ok(status) => {
                let d = describe(status);
                tracing::info!(client = name, exit = %d, "client stopped");
                // Whatever it left behind in its group goes too.
                let _ = signal_group(pid, Signal::SIGKILL);
                return d;
            }
            Err(_) => {
                tracing::error!(client = name, grace_secs = grace.as_secs(), "client ignored SIGTERM; sending SIGKILL");
                format!("killed after {}s grace", grace.as_secs())
            }
        },
        _ = forced => {
            tracing::warn!(client = name, "second stop signal: killing the client now (SIGKILL)");
            "killed: stop forced by a second signal".to_string()
        }
    };
    let _ = signal_group(pid, Signal::SIGKILL);
    let _ = child.wait().await;
    why
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_doubles_caps_and_jitters_within_25_percent() {
        let p = Policy {
            initial: Duration::from_millis(100),
            max: Duration::from_millis(1000),
            crash_limit: 5,
            crash_window: Duration::from_secs(60),
            grace: Duration::from_secs(1),
            force: watch::channel(false).1,
        };
        for (n, base) in [
            (1, 100u64),
            (2, 200),
            (3, 400),
            (4, 800),
            (5, 1000),
            (40, 1000),
        ] {
            for _ in 0..50 {
                let d = p.backoff(n).as_millis() as u64;
                assert!(
                    d >= base * 3 / 4 && d <= base * 5 / 4,
                    "n={n}: {d}ms not within 25% of {base}"
                );
            }
        }
    }
}
