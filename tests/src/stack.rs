//! The full local stack for end-to-end tests: `ledgerline serve` (the real
//! functions under `cargo lambda watch`) on free ports, with servers of the
//! test's own that it can stop, pause and start again without disturbing
//! other tests: a Kafka broker (tansu), Redis, and, for the chaos test, a
//! DynamoDB emulator and a PostgreSQL cluster.
//!
//! Needs `scripts/services.sh` (it installs tansu, redis-server, moto in
//! `.local/moto-venv` and cargo-lambda in `.local/tools-venv`).

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use serde_json::{Value, json};
use tokio::time::Instant;
use uuid::Uuid;

use crate::process::{Served, ledgerline_binary};

/// The repository's root (the tests crate lives in `tests/`).
pub fn repo_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).parent().expect("the workspace").to_path_buf()
}

pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0").expect("a free port").local_addr().unwrap().port()
}

/// Waits until `port` accepts connections (`up`) or refuses them.
pub async fn wait_port(port: u16, up: bool, what: &str, limit: Duration) {
    let deadline = Instant::now() + limit;
    while tokio::net::TcpStream::connect(("127.0.0.1", port)).await.is_ok() != up {
        assert!(Instant::now() < deadline, "{what} on port {port} did not {} within {limit:?}", if up { "listen" } else { "stop" });
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

fn on_path(name: &str, fallback: PathBuf) -> PathBuf {
    std::env::var_os("PATH").and_then(|paths| std::env::split_paths(&paths).map(|p| p.join(name)).find(|p| p.is_file())).unwrap_or(fallback)
}

fn is_root() -> bool {
    Command::new("id").arg("-u").output().is_ok_and(|o| String::from_utf8_lossy(&o.stdout).trim() == "0")
}

fn signal(pid: u32, name: &str) {
    let sent = Command::new("kill").args([&format!("-{name}"), &pid.to_string()]).status().expect("kill runs");
    assert!(sent.success(), "kill -{name} {pid} failed");
}

/// How to start a server: its command for a port and a data directory.
type StartCommand = Box<dyn Fn(u16, &Path) -> Command + Send + Sync>;

/// A server process of the test's own that can be stopped, paused and
/// started again on the same port and data directory.
pub struct OwnServer {
    pub name: &'static str,
    pub port: u16,
    pub dir: PathBuf,
    command: StartCommand,
    /// The signal that stops it cleanly (PostgreSQL: INT, a fast shutdown).
    stop_signal: &'static str,
    /// Where the server writes its own pid, when the child is a wrapper
    /// (as root, PostgreSQL runs under `runuser`, which does not pass
    /// signals on): signals go to that pid.
    pid_file: Option<&'static str>,
    child: Option<Child>,
}

impl OwnServer {
    async fn start(name: &'static str, stop_signal: &'static str, command: StartCommand) -> Self {
        let dir = std::env::temp_dir().join(format!("ledgerline-e2e-{name}-{}", Uuid::new_v4().simple()));
        std::fs::create_dir_all(&dir).unwrap();
        let mut server = Self { name, port: free_port(), dir, command, stop_signal, pid_file: None, child: None };
        server.restart().await;
        server
    }

    pub async fn restart(&mut self) {
        assert!(self.child.is_none());
        let log = std::fs::File::options().create(true).append(true).open(self.dir.join("log")).unwrap();
        let child = (self.command)(self.port, &self.dir)
            .current_dir(&self.dir)
            .stdin(Stdio::null())
            .stdout(log.try_clone().unwrap())
            .stderr(log)
            .spawn()
            .unwrap_or_else(|e| panic!("start {} ({e}); scripts/services.sh installs it", self.name));
        self.child = Some(child);
        wait_port(self.port, true, self.name, Duration::from_secs(60)).await;
    }

    /// The server's own pid (see `pid_file`).
    fn pid(&self) -> u32 {
        let child = self.child.as_ref().expect("running").id();
        self.pid_file
            .and_then(|file| std::fs::read_to_string(self.dir.join(file)).ok())
            .and_then(|text| text.lines().next().and_then(|line| line.trim().parse().ok()))
            .unwrap_or(child)
    }

    /// Stops it (its data kept) and waits until the port is free.
    pub async fn stop(&mut self) {
        if self.child.is_some() {
            let pid = self.pid();
            let mut child = self.child.take().expect("running");
            if self.stop_signal == "KILL" {
                signal(pid, "KILL");
            } else {
                signal(pid, "CONT");
                signal(pid, self.stop_signal);
            }
            let _ = child.wait();
        }
        wait_port(self.port, false, self.name, Duration::from_secs(60)).await;
    }

    /// SIGSTOP: the process stays, its connections hang.
    pub fn pause(&self) {
        signal(self.pid(), "STOP");
    }

    /// SIGCONT after [`Self::pause`].
    pub fn resume(&self) {
        signal(self.pid(), "CONT");
    }

    /// The last lines of its log, for a failure message.
    pub fn log_tail(&self) -> String {
        let text = std::fs::read_to_string(self.dir.join("log")).unwrap_or_default();
        let lines: Vec<&str> = text.lines().collect();
        lines[lines.len().saturating_sub(30)..].join("\n")
    }
}

impl Drop for OwnServer {
    fn drop(&mut self) {
        if self.child.is_some() {
            let pid = self.pid();
            let mut child = self.child.take().expect("running");
            let _ = Command::new("kill").args(["-CONT", &pid.to_string()]).status();
            let _ = Command::new("kill").args(["-KILL", &pid.to_string()]).status();
            let _ = child.kill();
            let _ = child.wait();
        }
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

pub async fn own_tansu() -> OwnServer {
    let binary = on_path("tansu", PathBuf::from(std::env::var("HOME").unwrap_or_default()).join(".cargo/bin/tansu"));
    OwnServer::start(
        "tansu",
        "KILL",
        Box::new(move |port, _| {
            let url = format!("tcp://127.0.0.1:{port}");
            let mut command = Command::new(&binary);
            // SQLite storage (relative path: tansu refuses an absolute one) keeps
            // records and committed offsets across a restart.
            command.args(["broker", "--listener-url", &url, "--advertised-listener-url", &url, "--storage-engine", "sqlite://tansu.db"]);
            command
        }),
    )
    .await
}

pub async fn own_redis() -> OwnServer {
    let binary = on_path("redis-server", PathBuf::from("/usr/bin/redis-server"));
    OwnServer::start(
        "redis-server",
        "KILL",
        Box::new(move |port, _| {
            let mut command = Command::new(&binary);
            command.args(["--bind", "127.0.0.1", "--port", &port.to_string(), "--save", "", "--appendonly", "no"]);
            command
        }),
    )
    .await
}

/// The DynamoDB emulator as `scripts/services.sh` runs it: moto's server,
/// one request at a time (`scripts/moto_server.py`). In memory: it must not
/// be stopped, only paused.
pub async fn own_moto() -> OwnServer {
    let repo = repo_dir();
    let python = repo.join(".local/moto-venv/bin/python");
    let script = repo.join("scripts/moto_server.py");
    OwnServer::start(
        "moto",
        "KILL",
        Box::new(move |port, _| {
            let mut command = Command::new(&python);
            command.arg(&script).args(["-H", "127.0.0.1", "-p", &port.to_string()]);
            command
        }),
    )
    .await
}

/// A PostgreSQL cluster of its own (initdb in a temporary directory, trust
/// authentication, fsync off), so the test can stop and start it. As root
/// the server runs as the `postgres` user, which PostgreSQL requires.
pub async fn own_postgres() -> OwnServer {
    let bin = std::fs::read_dir("/usr/lib/postgresql")
        .ok()
        .and_then(|versions| versions.filter_map(Result::ok).map(|v| v.path().join("bin")).filter(|b| b.join("initdb").is_file()).max())
        .expect("PostgreSQL's server binaries under /usr/lib/postgresql (scripts/services.sh installs them)");
    let root = is_root();
    let as_owner = move |program: PathBuf| {
        if root {
            let mut command = Command::new("runuser");
            command.args(["-u", "postgres", "--"]).arg(program);
            command
        } else {
            Command::new(program)
        }
    };
    let mut server = OwnServer::start(
        "postgres",
        "INT",
        Box::new(move |port, dir| {
            let data = dir.join("data");
            if !data.exists() {
                if root {
                    assert!(Command::new("chown").args(["postgres:postgres"]).arg(dir).status().unwrap().success());
                }
                let init = as_owner(bin.join("initdb"))
                    .args(["-D"])
                    .arg(&data)
                    .args(["-A", "trust", "-U", "postgres", "--no-sync"])
                    .stdout(Stdio::null())
                    .status()
                    .expect("initdb runs");
                assert!(init.success(), "initdb failed");
            }
            let mut command = as_owner(bin.join("postgres"));
            command.arg("-D").arg(&data).args([
                "-p",
                &port.to_string(),
                "-k",
                &dir.to_string_lossy(),
                "-c",
                "listen_addresses=127.0.0.1",
                "-c",
                "fsync=off",
                "-c",
                "max_connections=200",
            ]);
            command
        }),
    )
    .await;
    server.pid_file = Some("data/postmaster.pid");
    server
}

/// A fresh, empty database on `server` (like `postgres://u:p@host:port`).
pub async fn fresh_database_on(server: &str) -> String {
    crate::services::FreshDatabase::create_on(server, "e2e").await.url
}

/// The tests' PostgreSQL server (`LEDGERLINE_TEST_DATABASE_URL` without its database).
pub fn test_server_url() -> String {
    crate::services::database_url().rsplit_once('/').unwrap().0.to_owned()
}

/// Drops a database made by [`fresh_database_on`] (after the stack stopped).
pub async fn drop_database(url: &str) {
    let (server, name) = url.rsplit_once('/').unwrap();
    let Ok((admin, connection)) = tokio_postgres::connect(&format!("{server}/postgres"), tokio_postgres::NoTls).await else { return };
    tokio::spawn(connection);
    let _ = admin.execute(&format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)"), &[]).await;
}

/// Invokes a function through cargo lambda watch's Invoke API, waiting as
/// long as its first compilation takes; returns the HTTP status and answer.
pub async fn invoke(lambda_port: u16, function: &str, event: &Value) -> (u16, String) {
    let mut stream = tokio::net::TcpStream::connect(("127.0.0.1", lambda_port)).await.expect("the Invoke API");
    let body = serde_json::to_vec(event).unwrap();
    let head = format!(
        "POST /2015-03-31/functions/{function}/invocations HTTP/1.1\r\nhost: 127.0.0.1\r\ncontent-type: application/json\r\ncontent-length: {}\r\nconnection: close\r\n\r\n",
        body.len()
    );
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    stream.write_all(head.as_bytes()).await.unwrap();
    stream.write_all(&body).await.unwrap();
    let mut answer = Vec::new();
    tokio::time::timeout(Duration::from_secs(1200), stream.read_to_end(&mut answer))
        .await
        .expect("compiled and answered within 20 minutes")
        .unwrap();
    let text = String::from_utf8_lossy(&answer).into_owned();
    let status = text.split_whitespace().nth(1).and_then(|s| s.parse().ok()).unwrap_or(0);
    (status, text)
}

/// Which servers a [`Stack`] runs of its own (the broker and Redis always).
#[derive(Debug, Clone, Copy, Default)]
pub struct Own {
    /// A DynamoDB emulator of its own (else the one services.sh runs).
    pub dynamodb: bool,
    /// A PostgreSQL cluster of its own (else a database on the tests' server).
    pub postgres: bool,
}

/// `ledgerline serve` on free ports with servers, a database and tables of
/// its own, every function started (compiled if need be).
pub struct Stack {
    pub served: Served,
    pub broker: OwnServer,
    pub redis: OwnServer,
    pub dynamodb: Option<OwnServer>,
    pub postgres: Option<OwnServer>,
    pub binary: PathBuf,
    pub secret: String,
    pub lambda_port: u16,
    pub failures: PathBuf,
    pub database_url: String,
    pub accounts_table: String,
    pub transactions_table: String,
    pub holds_table: String,
}

pub const FUNCTIONS: [&str; 5] = ["command-api", "query-api", "projector", "outbox-publisher", "reconciler"];

impl Stack {
    pub async fn start(own: Own, extra_env: &[(&str, &str)]) -> Stack {
        let binary = ledgerline_binary();
        let broker = own_tansu().await;
        let redis = own_redis().await;
        let dynamodb = if own.dynamodb { Some(own_moto().await) } else { None };
        let postgres = if own.postgres { Some(own_postgres().await) } else { None };
        let server = match &postgres {
            Some(pg) => format!("postgres://postgres@127.0.0.1:{}", pg.port),
            None => test_server_url(),
        };
        let database_url = fresh_database_on(&server).await;
        let dynamodb_endpoint = match &dynamodb {
            Some(moto) => format!("http://127.0.0.1:{}", moto.port),
            None => crate::services::dynamodb_endpoint(),
        };
        let run = Uuid::new_v4().simple().to_string();
        let secret = Uuid::new_v4().to_string();
        let lambda_port = free_port();
        let failures = std::env::temp_dir().join(format!("ledgerline-e2e-failures-{run}.jsonl"));
        let brokers = format!("127.0.0.1:{}", broker.port);
        let redis_url = format!("redis://127.0.0.1:{}", redis.port);
        let (accounts_table, transactions_table, holds_table) =
            (format!("e2e{run}-accounts"), format!("e2e{run}-transactions"), format!("e2e{run}-holds"));
        let mut env: Vec<(&str, String)> = [
            ("LEDGERLINE_HTTP_ADDR", "127.0.0.1:0"),
            ("LEDGERLINE_JWT_SECRET", secret.as_str()),
            ("LEDGERLINE_LAMBDA_PORT", &lambda_port.to_string()),
            ("DATABASE_URL", &database_url),
            ("LEDGERLINE_KAFKA_BROKERS", &brokers),
            ("REDIS_URL", &redis_url),
            ("AWS_ENDPOINT_URL_DYNAMODB", &dynamodb_endpoint),
            ("LEDGERLINE_ACCOUNTS_TABLE", &accounts_table),
            ("LEDGERLINE_TRANSACTIONS_TABLE", &transactions_table),
            ("LEDGERLINE_HOLDS_TABLE", &holds_table),
            ("LEDGERLINE_PROJECTOR_FAILURES_FILE", failures.to_str().unwrap()),
            // Quick retries after the broker comes back.
            ("LEDGERLINE_OUTBOX_BACKOFF_BASE_MS", "200"),
            ("LEDGERLINE_OUTBOX_BACKOFF_MAX_MS", "2000"),
            ("LEDGERLINE_KAFKA_MESSAGE_TIMEOUT_MS", "5000"),
            ("RUST_LOG", "warn"),
        ]
        .into_iter()
        .map(|(k, v)| (k, v.to_owned()))
        .collect();
        for (name, value) in extra_env {
            env.retain(|(k, _)| k != name);
            env.push((name, (*value).to_owned()));
        }
        let env: Vec<(&str, &str)> = env.iter().map(|(k, v)| (*k, v.as_str())).collect();
        let served = Served::start(&binary, &["serve"], &env, Duration::from_secs(120));

        // Compile (if need be) and start each function before HTTP time limits apply.
        for function in FUNCTIONS {
            let event = match function {
                "projector" => json!({"eventSource": "SelfManagedKafka", "bootstrapServers": brokers, "records": {}}),
                "outbox-publisher" | "reconciler" => serde_json::from_str(include_str!("../../events/scheduled.json")).unwrap(),
                _ => serde_json::from_str(include_str!("../../events/query-api/get-account.json")).unwrap(),
            };
            let (status, answer) = invoke(lambda_port, function, &event).await;
            assert_eq!(status, 200, "{function} under cargo lambda watch: {answer}");
        }
        Stack {
            served,
            broker,
            redis,
            dynamodb,
            postgres,
            binary,
            secret,
            lambda_port,
            failures,
            database_url,
            accounts_table,
            transactions_table,
            holds_table,
        }
    }

    /// Kills (SIGKILL) the processes of `function` that this stack's
    /// `cargo lambda watch` runs, as a crash would; returns how many.
    pub fn kill_function(&self, function: &str) -> usize {
        let root = self.served.pid();
        let mut killed = 0;
        for pid in descendants(root) {
            let exe = std::fs::read_link(format!("/proc/{pid}/exe")).unwrap_or_default();
            if exe.file_name().is_some_and(|name| name == function) {
                signal(pid, "KILL");
                killed += 1;
            }
        }
        killed
    }
}

/// Every process below `root` (its children, theirs, ...).
fn descendants(root: u32) -> Vec<u32> {
    let mut parents = std::collections::HashMap::<u32, Vec<u32>>::new();
    for entry in std::fs::read_dir("/proc").into_iter().flatten().filter_map(Result::ok) {
        let Ok(pid) = entry.file_name().to_string_lossy().parse::<u32>() else { continue };
        let Ok(stat) = std::fs::read_to_string(entry.path().join("stat")) else { continue };
        // "pid (comm) state ppid ...": the name may hold spaces, so split after ')'.
        let Some(ppid) = stat.rsplit_once(')').and_then(|(_, rest)| rest.split_whitespace().nth(1)).and_then(|p| p.parse().ok()) else {
            continue;
        };
        parents.entry(ppid).or_default().push(pid);
    }
    let mut found = Vec::new();
    let mut queue = vec![root];
    while let Some(pid) = queue.pop() {
        for &child in parents.get(&pid).map(Vec::as_slice).unwrap_or_default() {
            found.push(child);
            queue.push(child);
        }
    }
    found
}

/// An account's whole history through the query API, oldest first, read at
/// `version` at least (pages of 100, following `next_cursor`).
pub async fn history(http: &crate::http::HttpClient, token: &str, id: &str, version: u64) -> Vec<Value> {
    let mut items = Vec::new();
    let mut query = format!("limit=100&min_version={version}");
    loop {
        let answer = http.get(&format!("/accounts/{id}/transactions?{query}"), Some(token)).await;
        assert_eq!(answer.status, hyper::StatusCode::OK, "{answer:?}");
        items.extend(answer.body["items"].as_array().expect("items").iter().cloned());
        match answer.body["next_cursor"].as_str() {
            Some(cursor) => query = format!("limit=100&cursor={cursor}"),
            None => break,
        }
    }
    items.reverse();
    items
}

/// An account's statement of `[from, now)` through the query API, every
/// page (of 100) followed: the first page's body, and every item oldest
/// first. Panics unless every page repeats the first page's opening and
/// closing balances and totals.
pub async fn statement(http: &crate::http::HttpClient, token: &str, id: &str, from: chrono::DateTime<chrono::Utc>) -> (Value, Vec<Value>) {
    let from = from.to_rfc3339_opts(chrono::SecondsFormat::Micros, true);
    let mut query = format!("limit=100&from={from}");
    let mut first: Option<Value> = None;
    let mut items = Vec::new();
    loop {
        let answer = http.get(&format!("/accounts/{id}/statement?{query}"), Some(token)).await;
        assert_eq!(answer.status, hyper::StatusCode::OK, "{answer:?}");
        items.extend(answer.body["items"].as_array().expect("items").iter().cloned());
        let head = |page: &Value| {
            ["opening_balance", "closing_balance", "total_credits", "total_debits"].map(|key| page[key].as_i64().expect(key))
        };
        if let Some(first) = &first {
            assert_eq!(head(first), head(&answer.body), "{id}: every page of a statement repeats its balances and totals");
        }
        let next = answer.body["next_cursor"].as_str().map(str::to_owned);
        first.get_or_insert(answer.body);
        match next {
            Some(cursor) => query = format!("limit=100&cursor={cursor}"),
            None => break,
        }
    }
    (first.expect("one page at least"), items)
}
