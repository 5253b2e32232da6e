//! `ledgerline serve --embedded`: all four functions in this process, in
//! memory, behind the local gateway. Nothing to install but cargo.
//!
//! ```text
//! gateway ─POST─▶ command API router ─▶ InMemoryEventStore (events + outbox)
//!                                             │ looked at every LEDGERLINE_OUTBOX_INTERVAL_MS
//!                                       outbox Publisher ─▶ BusSink (partitions by account)
//!                                                                │ KafkaEvent batches
//!                                                          Projector::handle ─▶ InMemoryReadModel
//! gateway ─GET──▶ query API router ────────────────────────────────────────────┘
//! ```
//!
//! The same code paths as in AWS, with in-memory adapters: the routers are
//! reached through lambda_http's event conversion ([`backend`]), the
//! publisher's loop and the projector's batch handling are the functions'
//! own, fed by an in-process bus ([`bus`]). There is no Redis (the query
//! API runs with its in-process cache only) and dead letters are kept in
//! memory and logged. Everything is lost when the process ends.

pub mod backend;
pub mod bus;
#[cfg(test)]
mod pipeline_tests;

use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use async_trait::async_trait;
use ledgerline_shared::config::{Env, WriteSettings};
use ledgerline_shared::event_store::{EventStore, InMemoryEventStore};
use ledgerline_shared::outbox::OutboxStore;
use ledgerline_shared::read_model::ReadModelStore;
use ledgerline_shared::read_model::memory::InMemoryReadModel;
use ledgerline_shared::resilience::Backoff;
use outbox_publisher::{PublishSettings, Publisher};
use projector::Projector;
use projector::dead_letter::{DeadLetter, DeadLetterError, DeadLetterSink, InMemoryDeadLetters};
use tokio::sync::watch;
use tokio::time::Instant;

use crate::gateway::{self, auth};

/// How often the outbox is drained (the schedule of the publisher).
pub const INTERVAL_VAR: &str = "LEDGERLINE_OUTBOX_INTERVAL_MS";
pub const DEFAULT_INTERVAL_MS: u64 = 10;

pub async fn serve() -> anyhow::Result<()> {
    ledgerline_shared::telemetry::init();
    let interval = outbox_interval(std::env::var(INTERVAL_VAR).ok().as_deref())?;
    let address = gateway::address_from_env();
    let secret = auth::JwtSecret::from_env();
    if let Some(warning) = secret.warning() {
        tracing::warn!("{warning}");
    }
    let write = WriteSettings::from_env().context("the write side's settings")?;
    let listener = tokio::net::TcpListener::bind(&address).await.with_context(|| format!("cannot listen on {address}"))?;
    let local = listener.local_addr()?;
    secret.check_exposure(local).map_err(anyhow::Error::msg)?;

    let (stack, backend) = Stack::start(&write, Arc::new(InMemoryReadModel::default()), interval)?;
    println!("ledgerline: serving on http://{local} (embedded: everything in memory; Ctrl-C stops)");
    println!("ledgerline: mint a token with `TOKEN=$(ledgerline token --sub alice)` (--admin for an administrator; the same");
    println!("ledgerline:   {} as this server), then", auth::SECRET_VAR);
    println!("ledgerline:   curl -H \"Authorization: Bearer $TOKEN\" http://{local}/accounts");

    let shutdown = async {
        let _ = tokio::signal::ctrl_c().await;
        println!("ledgerline: stopping");
    };
    let served = gateway::serve(listener, auth::TokenVerifier::new(&secret), Arc::new(backend), shutdown).await;
    // The gateway has stopped taking requests: publish what is left, let the
    // projector drain the bus, then end.
    let dead_letters = stack.dead_letters.clone();
    if !stack.stop(Duration::from_secs(5)).await {
        tracing::warn!("the outbox or the projector did not finish within 5 s; stopping anyway");
    }
    let letters = dead_letters.letters();
    if !letters.is_empty() {
        tracing::warn!(count = letters.len(), "dead letters were kept in memory this session (each was logged); they are gone now");
    }
    served.context("the gateway failed")
}

/// Everything behind the gateway: the event store, the outbox schedule, the
/// bus and its consumers, the projector and the read model.
pub struct Stack {
    pub dead_letters: Arc<LoggedDeadLetters>,
    /// Another handle on the bus (tests put records on it directly).
    pub bus: Option<bus::BusSink>,
    stop: watch::Sender<bool>,
    tasks: Vec<tokio::task::JoinHandle<()>>,
}

impl Stack {
    /// Starts the outbox schedule and the consumers; returns the stack and
    /// the gateway's backend (the two routers over the same stores).
    pub fn start(
        write: &WriteSettings,
        read_model: Arc<dyn ReadModelStore>,
        interval: Duration,
    ) -> anyhow::Result<(Stack, backend::InProcess)> {
        let query_state = query_api_state(read_model.clone())?;
        let store = Arc::new(InMemoryEventStore::new(write.store.clone()));
        let dead_letters = Arc::new(LoggedDeadLetters::default());
        let projector =
            Arc::new(Projector::new(read_model.clone(), None, Some(store.clone() as Arc<dyn EventStore>), dead_letters.clone()));
        let (sink, receivers) = bus::bus();
        let mut tasks: Vec<_> = receivers.into_iter().map(|r| tokio::spawn(bus::consume(r, projector.clone()))).collect();
        let publisher = Publisher::new(store.clone() as Arc<dyn OutboxStore>, sink.clone(), publish_settings(interval));
        let (stop, stopped) = watch::channel(false);
        tasks.push(tokio::spawn(run_expiry_sweep(store.clone(), read_model.clone(), stop.subscribe())));
        tasks.push(tokio::spawn(run_outbox(publisher, interval, stopped)));
        let backend = backend::InProcess {
            command_api: command_api::router(command_api::AppState::new(store.clone(), write)),
            query_api: query_api::router(query_state),
        };
        Ok((Stack { dead_letters, bus: Some(sink), stop, tasks }, backend))
    }

    /// Publishes what is left, lets the consumers drain the bus, and waits
    /// for all of it up to `within`; whether everything finished in time.
    pub async fn stop(mut self, within: Duration) -> bool {
        let _ = self.stop.send(true);
        // The consumers end once every sink is gone: the publisher's goes
        // with its task, this one now.
        self.bus = None;
        let tasks = std::mem::take(&mut self.tasks);
        tokio::time::timeout(within, async {
            for task in tasks {
                let _ = task.await;
            }
        })
        .await
        .is_ok()
    }
}

/// Every second, the expiry of the holds past due is recorded in their
/// accounts' histories (what the reconciler does deployed and under `serve`).
async fn run_expiry_sweep(store: Arc<InMemoryEventStore>, read_model: Arc<dyn ReadModelStore>, mut stop: watch::Receiver<bool>) {
    loop {
        tokio::select! {
            _ = stop.changed() => return,
            _ = tokio::time::sleep(Duration::from_secs(1)) => {}
        }
        let at = chrono::Utc::now();
        if let Err(error) = ledgerline_shared::reconcile::expiry::expire_due_holds(store.clone(), read_model.as_ref(), at).await {
            tracing::warn!(%error, "the hold expiry sweep failed; it runs again in a second");
        }
    }
}

/// `LEDGERLINE_OUTBOX_INTERVAL_MS`: unset means 10 ms; anything but 1 to
/// 60000 is an error (a typo should not silently stop projection).
pub fn outbox_interval(value: Option<&str>) -> anyhow::Result<Duration> {
    let Some(raw) = value.map(str::trim).filter(|v| !v.is_empty()) else {
        return Ok(Duration::from_millis(DEFAULT_INTERVAL_MS));
    };
    match raw.parse::<u64>() {
        Ok(ms @ 1..=60_000) => Ok(Duration::from_millis(ms)),
        _ => anyhow::bail!("{INTERVAL_VAR}={raw:?} is not a number of milliseconds from 1 to 60000"),
    }
}

/// The publisher's settings for a process that lives minutes, not a Lambda
/// invocation: quick retries, no deadline margin, and runs that follow the outbox, looking for new rows every `poll_interval`.
fn publish_settings(poll_interval: Duration) -> PublishSettings {
    PublishSettings {
        dlq_topic: ledgerline_shared::config::defaults::DLQ_TOPIC.into(),
        batch_size: 500,
        max_attempts: 5,
        backoff: Backoff { base: Duration::from_millis(100), max: Duration::from_secs(5) },
        deadline_margin: Duration::ZERO,
        batch_timeout: Duration::from_secs(5),
        // Each run follows the outbox for a second, so a stop request waits
        // at most that long; the next run starts at once (see `run_outbox`).
        run_for: Duration::from_secs(1),
        poll_interval,
    }
}

/// The schedule: one run after another (each follows the outbox for a
/// second); once told to stop, drain it one last time and drop the sink,
/// which ends the consumers.
async fn run_outbox<K: outbox_publisher::RecordSink>(publisher: Publisher<K>, interval: Duration, mut stop: watch::Receiver<bool>) {
    loop {
        let stopping = *stop.borrow();
        let result = publisher.run(Instant::now() + Duration::from_secs(30)).await;
        let broken = result.is_err();
        match result {
            Ok(summary) if summary.failed > 0 || summary.dead_lettered > 0 => tracing::warn!(?summary, "outbox run had failures"),
            Ok(summary) if summary.published > 0 => tracing::debug!(?summary, "outbox run"),
            Ok(_) => {}
            Err(error) => tracing::error!(%error, "outbox run failed"),
        }
        if stopping {
            return;
        }
        // A following run has just looked; one that failed at once (the
        // store said no) must not spin.
        let pause = if broken || publisher.settings().run_for.is_zero() { interval } else { Duration::ZERO };
        tokio::select! {
            _ = tokio::time::sleep(pause) => {}
            changed = stop.changed() => {
                // The stack was dropped without stop(): nothing will ever stop us otherwise.
                if changed.is_err() {
                    return;
                }
            }
        }
    }
}

/// The query API over the in-memory read model, without Redis. Its cursor
/// secret is `LEDGERLINE_CURSOR_SECRET` or, when unset, one made for this
/// process (cursors do not outlive it anyway), so no warning is needed.
fn query_api_state(read_model: Arc<dyn ReadModelStore>) -> anyhow::Result<query_api::AppState> {
    let process_secret = uuid::Uuid::new_v4().to_string();
    let env = Env::process().with_default("LEDGERLINE_CURSOR_SECRET", &process_secret);
    let settings = query_api::QuerySettings::read(&env).context("the query API's settings")?;
    // Metrics lines are for CloudWatch; locally they would drown the log.
    let metrics = query_api::metrics::Metrics::new(Arc::new(query_api::metrics::NullSink));
    Ok(query_api::AppState::new(read_model, None, &settings, metrics))
}

/// Dead letters kept in memory, each one logged as it arrives.
#[derive(Default)]
pub struct LoggedDeadLetters(InMemoryDeadLetters);

impl LoggedDeadLetters {
    pub fn letters(&self) -> Vec<DeadLetter> {
        self.0.letters()
    }
}

#[async_trait]
impl DeadLetterSink for LoggedDeadLetters {
    async fn send(&self, letter: &DeadLetter) -> Result<(), DeadLetterError> {
        tracing::error!(letter = %letter.describe(), "dead letter");
        self.0.send(letter).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_outbox_interval_defaults_to_10_ms_and_refuses_nonsense() {
        assert_eq!(outbox_interval(None).unwrap(), Duration::from_millis(10));
        assert_eq!(outbox_interval(Some(" ")).unwrap(), Duration::from_millis(10));
        assert_eq!(outbox_interval(Some("50")).unwrap(), Duration::from_millis(50));
        for bad in ["0", "abc", "-1", "60001"] {
            assert!(outbox_interval(Some(bad)).unwrap_err().to_string().contains(INTERVAL_VAR), "{bad}");
        }
    }
}
