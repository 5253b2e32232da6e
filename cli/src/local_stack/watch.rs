//! The `cargo lambda watch` child: the real function binaries behind the
//! Lambda Invoke API on 127.0.0.1:<port>.
//!
//! It starts listening at once and compiles a function on its first
//! invocation (minutes on a small machine), so callers use long invocation
//! timeouts. It runs in a process group of its own: cargo lambda starts
//! `cargo` and the function processes as its children, and stopping the
//! group stops them all, also when `serve` is stopped with Ctrl-C (which a
//! terminal sends only to the foreground group: ours, not the child's).

use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::Duration;

use anyhow::{Context, bail};
use tokio::process::{Child, Command};

/// Where `scripts/services.sh` installs cargo-lambda (with pip, in seconds).
pub const TOOLS_VENV_BIN: &str = ".local/tools-venv/bin";

/// The `cargo-lambda` executable: on PATH, else in the repo's tools venv.
pub fn find_cargo_lambda(repo: &Path) -> anyhow::Result<PathBuf> {
    let on_path =
        std::env::var_os("PATH").and_then(|paths| std::env::split_paths(&paths).map(|p| p.join("cargo-lambda")).find(|p| p.is_file()));
    let in_venv = repo.join(TOOLS_VENV_BIN).join("cargo-lambda");
    match on_path {
        Some(path) => Ok(path),
        None if in_venv.is_file() => Ok(in_venv),
        None => {
            bail!("cargo-lambda is not installed; scripts/services.sh installs it into {TOOLS_VENV_BIN} (or: pip install cargo-lambda)")
        }
    }
}

pub struct Watch {
    child: Child,
    pgid: i32,
}

impl Watch {
    /// Starts `cargo lambda watch -A 127.0.0.1 -P <port> --timeout <s>` in
    /// `repo` with `env` added to this process's environment and `remove`
    /// taken out. `timeout` is also the deadline the functions see in their
    /// context: without it cargo lambda gives a deadline so near that the
    /// outbox publisher (which stops 5 s before its deadline) sends nothing.
    pub fn spawn(
        cargo_lambda: &Path,
        repo: &Path,
        port: u16,
        timeout: Duration,
        env: &[(String, String)],
        remove: &[&str],
    ) -> anyhow::Result<Self> {
        // cargo lambda runs `cargo` (and zig, from the same venv): both on PATH.
        let mut paths: Vec<PathBuf> = cargo_lambda.parent().map(Path::to_path_buf).into_iter().collect();
        paths.extend(std::env::var_os("PATH").map(|p| std::env::split_paths(&p).collect::<Vec<_>>()).unwrap_or_default());
        let mut command = Command::new(cargo_lambda);
        command
            .args(["lambda", "watch", "-A", "127.0.0.1", "-P", &port.to_string(), "--timeout", &timeout.as_secs().max(1).to_string()])
            .current_dir(repo)
            .env("PATH", std::env::join_paths(paths)?)
            .envs(env.iter().map(|(k, v)| (k.as_str(), v.as_str())))
            .stdin(Stdio::null())
            .process_group(0)
            .kill_on_drop(true);
        // If `serve` dies without stopping the child (SIGKILL), the child
        // gets SIGTERM and stops its functions, instead of holding the port.
        // SAFETY: prctl is async-signal-safe; nothing else runs in pre_exec.
        unsafe {
            command.pre_exec(|| {
                libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGTERM);
                Ok(())
            });
        }
        for name in remove {
            command.env_remove(name);
        }
        let child = command.spawn().with_context(|| format!("starting {} lambda watch", cargo_lambda.display()))?;
        let pgid = child.id().context("cargo lambda watch exited at once")? as i32;
        Ok(Self { child, pgid })
    }

    /// Resolves when the child exits (it should not while `serve` runs).
    pub async fn exited(&mut self) -> std::io::Result<std::process::ExitStatus> {
        self.child.wait().await
    }

    /// Stops the whole process group: SIGTERM, then SIGKILL after `grace`.
    pub async fn stop(mut self, grace: Duration) {
        signal_group(self.pgid, libc::SIGTERM);
        if tokio::time::timeout(grace, self.child.wait()).await.is_err() {
            signal_group(self.pgid, libc::SIGKILL);
            let _ = self.child.wait().await;
        }
        // Function processes may outlive cargo-lambda by a moment.
        signal_group(self.pgid, libc::SIGKILL);
    }
}

fn signal_group(pgid: i32, signal: i32) {
    // SAFETY: kill(2) with a negative pid signals that process group; the
    // group is the child's own (process_group(0) above), never ours.
    unsafe {
        libc::kill(-pgid, signal);
    }
}

/// Waits until something listens on 127.0.0.1:`port`.
pub async fn wait_listening(port: u16, limit: Duration) -> anyhow::Result<()> {
    let deadline = tokio::time::Instant::now() + limit;
    while tokio::net::TcpStream::connect(("127.0.0.1", port)).await.is_err() {
        if tokio::time::Instant::now() >= deadline {
            bail!("cargo lambda watch did not listen on 127.0.0.1:{port} within {limit:?}");
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    Ok(())
}
