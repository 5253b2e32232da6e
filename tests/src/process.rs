//! Running the real `ledgerline` binary from a test of another package.
//!
//! Cargo only gives `CARGO_BIN_EXE_<name>` to the binary's own package, so
//! [`ledgerline_binary`] builds it with the `cargo` that runs the test (a
//! no-op when it is fresh; cargo does not hold its build lock while tests
//! run) and finds it in the same target directory as the test itself.
//! [`Served`] starts `ledgerline serve ...`, waits for its banner line
//! (`ledgerline: serving on http://ADDR`) under a deadline and kills the
//! process when dropped, also when the test panics.

use std::io::{BufRead, BufReader};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::Duration;

/// The line `ledgerline serve` prints once it accepts connections.
pub const BANNER: &str = "ledgerline: serving on ";

/// Builds (if needed) and returns the path of the `ledgerline` binary.
pub fn ledgerline_binary() -> PathBuf {
    // <target>/<profile>/deps/<this test>
    let exe = std::env::current_exe().expect("the test's own path");
    let profile_dir = exe.parent().and_then(|deps| deps.parent()).expect("<target>/<profile>/deps").to_path_buf();
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    let mut build = Command::new(cargo);
    build.args(["build", "--quiet", "-p", "ledgerline", "--bin", "ledgerline"]);
    if profile_dir.file_name().is_some_and(|name| name == "release") {
        build.arg("--release");
    }
    let status = build.status().expect("cargo runs");
    assert!(status.success(), "cargo build -p ledgerline failed");
    let binary = profile_dir.join(format!("ledgerline{}", std::env::consts::EXE_SUFFIX));
    assert!(binary.is_file(), "no binary at {}", binary.display());
    binary
}

/// A running `ledgerline serve`; killed on drop.
pub struct Served {
    child: Child,
    pub base_url: String,
    /// Every output line after the banner (stdout and stderr), for diagnostics.
    lines: mpsc::Receiver<String>,
}

impl Served {
    /// Starts `binary args...` with `env` and waits up to `within` for the banner.
    pub fn start(binary: &PathBuf, args: &[&str], env: &[(&str, &str)], within: Duration) -> Served {
        let mut command = Command::new(binary);
        command.args(args).stdin(Stdio::null()).stdout(Stdio::piped()).stderr(Stdio::piped());
        for (name, value) in env {
            command.env(name, value);
        }
        let mut child = command.spawn().unwrap_or_else(|error| panic!("cannot start {}: {error}", binary.display()));
        // Both pipes are read to the end by threads, so the child never blocks on a full pipe.
        let (sender, lines) = mpsc::channel();
        let stdout = child.stdout.take().expect("piped");
        let stderr = child.stderr.take().expect("piped");
        for pipe in [Box::new(stdout) as Box<dyn std::io::Read + Send>, Box::new(stderr)] {
            let sender = sender.clone();
            std::thread::spawn(move || {
                for line in BufReader::new(pipe).lines().map_while(Result::ok) {
                    let _ = sender.send(line);
                }
            });
        }
        let mut served = Served { child, base_url: String::new(), lines };
        let deadline = std::time::Instant::now() + within;
        let mut seen = Vec::new();
        loop {
            let left = deadline.saturating_duration_since(std::time::Instant::now());
            match served.lines.recv_timeout(left) {
                Ok(line) => {
                    if let Some(rest) = line.strip_prefix(BANNER) {
                        served.base_url = rest.split_whitespace().next().unwrap_or_default().to_owned();
                        return served;
                    }
                    seen.push(line);
                }
                Err(_) => {
                    let status = served.child.try_wait().ok().flatten();
                    panic!("no `{BANNER}` line within {within:?} (exit status {status:?}); output:\n{}", seen.join("\n"));
                }
            }
        }
    }

    /// Output lines printed so far since the banner.
    pub fn output(&self) -> Vec<String> {
        self.lines.try_iter().collect()
    }

    /// Sends SIGINT (what Ctrl-C sends) and waits up to `within` for the
    /// process to exit; its exit status, or `None` if it is still running.
    pub fn interrupt(&mut self, within: Duration) -> Option<std::process::ExitStatus> {
        let pid = self.child.id().to_string();
        let sent = Command::new("kill").args(["-INT", &pid]).status().expect("kill runs");
        assert!(sent.success(), "kill -INT {pid} failed");
        let deadline = std::time::Instant::now() + within;
        loop {
            if let Some(status) = self.child.try_wait().expect("waitable") {
                return Some(status);
            }
            if std::time::Instant::now() >= deadline {
                return None;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// The process id of `ledgerline serve`.
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Whether the process is still running.
    pub fn is_running(&mut self) -> bool {
        matches!(self.child.try_wait(), Ok(None))
    }
}

impl Drop for Served {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
