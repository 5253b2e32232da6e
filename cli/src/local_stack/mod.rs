//! `ledgerline serve`: the full local stack.
//!
//! The gateway (JWT checks, API Gateway v2 events, routes) in front of the
//! real function binaries under `cargo lambda watch`, with real PostgreSQL,
//! Redis, the Kafka-compatible broker and the DynamoDB emulator (all from
//! `scripts/services.sh`). `serve` also plays AWS's part for the two triggers
//! no local emulator offers: the outbox publisher's schedule
//! ([`scheduler`]) and the projector's Kafka event source mapping
//! ([`event_source`]). Everything reaches the functions through the Lambda
//! Invoke API ([`invoke`]), as in AWS.
//!
//! | module | what |
//! | --- | --- |
//! | [`invoke`] | the Invoke API client and the gateway's backend |
//! | [`watch`] | the `cargo lambda watch` child and its process group |
//! | [`scheduler`] | the outbox publisher and the reconciler on their intervals |
//! | [`event_source`] | the projector's Kafka event source mapping |
//! | [`template`] | each function's `Timeout` and the event source's retries, from template.yaml |

pub mod event_source;
pub mod invoke;
pub mod scheduler;
pub mod template;
pub mod watch;

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context, bail};
use ledgerline_shared::config::{Env, defaults};
use tokio::signal::unix::{SignalKind, signal};

use self::event_source::MappingSettings;
use self::invoke::{InvokeBackend, LambdaInvoker};
use crate::gateway;

/// The repository (cargo lambda watch runs in the workspace; `.local/`).
fn repo_dir() -> PathBuf {
    std::env::var_os("LEDGERLINE_REPO_DIR").map(PathBuf::from).unwrap_or_else(|| PathBuf::from(concat!(env!("CARGO_MANIFEST_DIR"), "/..")))
}

/// Everything `serve` reads from the environment (README's table).
#[derive(Debug, Clone)]
pub struct StackSettings {
    pub repo: PathBuf,
    pub database_url: String,
    pub redis_url: String,
    pub brokers: String,
    pub dynamodb_endpoint: String,
    pub events_topic: String,
    pub dlq_topic: String,
    /// `LEDGERLINE_LAMBDA_PORT` (9000): cargo lambda watch's Invoke API.
    pub lambda_port: u16,
    /// `LEDGERLINE_INVOKE_TIMEOUT_MS` (900000): one invocation, compilation included.
    pub invoke_timeout: Duration,
    /// `LEDGERLINE_OUTBOX_INTERVAL_MS` (1000).
    pub outbox_interval: Duration,
    /// `LEDGERLINE_RECONCILE_INTERVAL_MS` (10000).
    pub reconcile_interval: Duration,
    /// `LEDGERLINE_PROJECTOR_MAX_RETRIES` (the template's `MaximumRetryAttempts`)
    /// and `LEDGERLINE_PROJECTOR_FAILURES_FILE`.
    pub projector_max_retries: u32,
    pub failure_file: PathBuf,
}

impl StackSettings {
    pub fn from_env() -> anyhow::Result<Self> {
        let repo = repo_dir();
        let env = Env::process();
        let default_retries = template::FunctionLimits::built_in().projector_max_retries;
        Ok(Self {
            database_url: env.text_or("DATABASE_URL", ledgerline_shared::config::DEFAULT_DATABASE_URL),
            redis_url: env.text_or("REDIS_URL", defaults::REDIS_URL),
            brokers: env.text_or("LEDGERLINE_KAFKA_BROKERS", defaults::KAFKA_BROKERS),
            dynamodb_endpoint: env.text_or("AWS_ENDPOINT_URL_DYNAMODB", "http://127.0.0.1:8000"),
            events_topic: env.text_or("LEDGERLINE_EVENTS_TOPIC", defaults::EVENTS_TOPIC),
            dlq_topic: env.text_or("LEDGERLINE_DLQ_TOPIC", defaults::DLQ_TOPIC),
            lambda_port: env.number("LEDGERLINE_LAMBDA_PORT", 9000, |port: &u16| *port > 0)?,
            invoke_timeout: env.millis("LEDGERLINE_INVOKE_TIMEOUT_MS", 900_000, |n| *n > 0)?,
            outbox_interval: env.millis("LEDGERLINE_OUTBOX_INTERVAL_MS", 1_000, |n| *n > 0)?,
            reconcile_interval: env.millis("LEDGERLINE_RECONCILE_INTERVAL_MS", 10_000, |n| *n > 0)?,
            projector_max_retries: env.number("LEDGERLINE_PROJECTOR_MAX_RETRIES", default_retries, |_| true)?,
            failure_file: std::env::var_os("LEDGERLINE_PROJECTOR_FAILURES_FILE")
                .map(PathBuf::from)
                .unwrap_or_else(|| repo.join(".local/projector-failures.jsonl")),
            repo,
        })
    }

    /// The functions' environment: the local services, and dummy AWS
    /// region and credentials (the DynamoDB emulator accepts any).
    fn function_env(&self) -> Vec<(String, String)> {
        // Readable lines in a terminal; JSON (as in Lambda) when piped.
        let log_format = if std::io::IsTerminal::is_terminal(&std::io::stdout()) { "Text" } else { "JSON" };
        [
            ("AWS_LAMBDA_LOG_FORMAT", log_format),
            ("DATABASE_URL", self.database_url.as_str()),
            ("REDIS_URL", &self.redis_url),
            ("LEDGERLINE_KAFKA_BROKERS", &self.brokers),
            ("AWS_ENDPOINT_URL_DYNAMODB", &self.dynamodb_endpoint),
            ("LEDGERLINE_EVENTS_TOPIC", &self.events_topic),
            ("LEDGERLINE_DLQ_TOPIC", &self.dlq_topic),
            // The publisher follows the outbox for 10 s a run, and the
            // schedule starts the next run as soon as one ends (its tick is
            // long past): a new row waits for a 20 ms poll, as deployed.
            ("LEDGERLINE_OUTBOX_RUN_FOR_MS", "10000"),
            ("AWS_REGION", "us-east-1"),
            ("AWS_DEFAULT_REGION", "us-east-1"),
            ("AWS_ACCESS_KEY_ID", "local"),
            ("AWS_SECRET_ACCESS_KEY", "local"),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_owned(), v.to_owned()))
        .collect()
    }
}

/// `host:port` of a URL like `redis://user@host:6379/0` (or of `host:port`).
fn host_port(url: &str, default_port: u16) -> String {
    let rest = url.split_once("://").map_or(url, |(_, rest)| rest);
    let authority = rest.split(['/', '?']).next().unwrap_or(rest);
    let host = authority.rsplit_once('@').map_or(authority, |(_, host)| host);
    if host.rsplit_once(':').is_some_and(|(_, p)| p.parse::<u16>().is_ok()) { host.to_owned() } else { format!("{host}:{default_port}") }
}

/// Fails with a message pointing at scripts/services.sh when a service does
/// not accept connections.
async fn check_services(settings: &StackSettings) -> anyhow::Result<()> {
    let first_broker = settings.brokers.split(',').next().unwrap_or_default().trim().to_owned();
    let services = [
        ("PostgreSQL", host_port(&settings.database_url, 5432)),
        ("Redis", host_port(&settings.redis_url, 6379)),
        ("Kafka (tansu)", host_port(&first_broker, 9092)),
        ("the DynamoDB emulator", host_port(&settings.dynamodb_endpoint, 80)),
    ];
    let mut down = Vec::new();
    for (name, address) in services {
        let reachable = tokio::time::timeout(Duration::from_secs(3), tokio::net::TcpStream::connect(&address)).await;
        if !matches!(reachable, Ok(Ok(_))) {
            down.push(format!("{name} at {address}"));
        }
    }
    if !down.is_empty() {
        bail!("not reachable: {}; start the local services with scripts/services.sh", down.join(", "));
    }
    Ok(())
}

/// Schema, topics and tables, each safe to repeat (services.sh creates the
/// topics and tables too; a broker or emulator of your own may not have them).
async fn prepare(settings: &StackSettings) -> anyhow::Result<()> {
    ledgerline_shared::migrate::run(&settings.database_url).await.context("migrating the event store")?;
    outbox_publisher::kafka::ensure_topics(&settings.brokers, &[&settings.events_topic, &settings.dlq_topic], 3, 1)
        .await
        .with_context(|| format!("creating the topics on {}", settings.brokers))?;
    let client = ledgerline_shared::read_model::dynamo::local_client(&settings.dynamodb_endpoint);
    ledgerline_shared::read_model::dynamo::create_tables(&client, &ledgerline_shared::read_model::tables::TableNames::from_env())
        .await
        .with_context(|| format!("creating the read-model tables on {}", settings.dynamodb_endpoint))?;
    Ok(())
}

pub async fn serve() -> anyhow::Result<()> {
    let settings = StackSettings::from_env()?;
    check_services(&settings).await?;
    prepare(&settings).await?;
    let secret = gateway::auth::JwtSecret::from_env();
    if let Some(warning) = secret.warning() {
        eprintln!("ledgerline serve: {warning}");
    }
    let address = gateway::address_from_env();
    let listener = tokio::net::TcpListener::bind(&address).await.with_context(|| format!("listening on {address}"))?;
    let local = listener.local_addr()?;
    secret.check_exposure(local).map_err(anyhow::Error::msg)?;

    let cargo_lambda = watch::find_cargo_lambda(&settings.repo)?;
    // The functions see no JWT secret: in AWS the authorizer checks tokens
    // before a function runs, and here the gateway does.
    let mut child = watch::Watch::spawn(
        &cargo_lambda,
        &settings.repo,
        settings.lambda_port,
        settings.invoke_timeout,
        &settings.function_env(),
        &["LEDGERLINE_JWT_SECRET"],
    )?;
    if let Err(error) = watch::wait_listening(settings.lambda_port, Duration::from_secs(60)).await {
        child.stop(Duration::from_secs(5)).await;
        return Err(error);
    }
    let invoker = LambdaInvoker::new(format!("http://127.0.0.1:{}", settings.lambda_port), settings.invoke_timeout)
        .with_limits(template::FunctionLimits::built_in());
    let mapping = MappingSettings {
        max_retries: settings.projector_max_retries,
        ..MappingSettings::local(&settings.brokers, &settings.events_topic, settings.failure_file.clone())
    };

    let (stop_gateway, gateway_stopped) = tokio::sync::oneshot::channel::<()>();
    let backend = Arc::new(InvokeBackend::new(invoker.clone()));
    let mut http = tokio::spawn(gateway::serve(listener, gateway::auth::TokenVerifier::new(&secret), backend, async {
        let _ = gateway_stopped.await;
    }));
    let publisher = tokio::spawn(scheduler::run(invoker.clone(), scheduler::OUTBOX_PUBLISHER, settings.outbox_interval));
    let reconciler = tokio::spawn(scheduler::run(invoker.clone(), scheduler::RECONCILER, settings.reconcile_interval));
    let mut projector = tokio::spawn(event_source::run(mapping, invoker));
    // The banner tests wait for (tests/src/process.rs), with the real port
    // when LEDGERLINE_HTTP_ADDR asks for port 0.
    println!(
        "ledgerline: serving on http://{local} (functions under cargo lambda watch on 127.0.0.1:{}, each compiled on its first request; Ctrl-C stops)",
        settings.lambda_port
    );

    let mut terminate = signal(SignalKind::terminate())?;
    let outcome = tokio::select! {
        _ = tokio::signal::ctrl_c() => Ok(()),
        _ = terminate.recv() => Ok(()),
        status = child.exited() => Err(anyhow::anyhow!("cargo lambda watch stopped ({status:?})")),
        result = &mut http => Err(anyhow::anyhow!("the gateway stopped: {result:?}")),
        result = &mut projector => Err(anyhow::anyhow!("the event source mapping stopped: {result:?}")),
    };
    eprintln!("ledgerline serve: stopping");
    let _ = stop_gateway.send(());
    publisher.abort();
    reconciler.abort();
    projector.abort();
    let _ = tokio::time::timeout(Duration::from_secs(5), http).await;
    child.stop(Duration::from_secs(5)).await;
    outcome
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn host_port_of_the_service_urls() {
        assert_eq!(host_port("postgres://postgres:postgres@127.0.0.1:5432/ledgerline", 5432), "127.0.0.1:5432");
        assert_eq!(host_port("redis://127.0.0.1:6380", 6379), "127.0.0.1:6380");
        assert_eq!(host_port("redis://localhost", 6379), "localhost:6379");
        assert_eq!(host_port("http://127.0.0.1:8000", 80), "127.0.0.1:8000");
        assert_eq!(host_port("127.0.0.1:9092", 9092), "127.0.0.1:9092");
        assert_eq!(host_port("postgres://u@db.local/x?sslmode=disable", 5432), "db.local:5432");
    }
}
