//! A circuit breaker with a per-call timeout.
//!
//! States:
//! - **closed**: calls go through; `failure_threshold` consecutive failures
//!   (errors or timeouts) open the breaker.
//! - **open**: calls are refused at once ([`BreakerError::Open`]) until
//!   `cool_down` has passed since it opened.
//! - **half-open**: one probe call is let through at a time; success closes
//!   the breaker, failure opens it again for another cool-down.
//!
//! Time is `tokio::time::Instant`, so tests drive it with tokio's paused
//! clock instead of sleeping. State changes are reported to an optional
//! observer (for metrics and logs).

use std::future::Future;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use thiserror::Error;
use tokio::time::Instant;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BreakerSettings {
    /// Consecutive failures that open the breaker (at least 1).
    pub failure_threshold: u32,
    /// How long the breaker stays open before a probe is allowed.
    pub cool_down: Duration,
    /// Each call's time limit; a call over it counts as a failure.
    pub call_timeout: Duration,
}

impl Default for BreakerSettings {
    fn default() -> Self {
        Self { failure_threshold: 5, cool_down: Duration::from_secs(5), call_timeout: Duration::from_millis(500) }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BreakerState {
    Closed,
    Open,
    HalfOpen,
}

impl BreakerState {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Closed => "closed",
            Self::Open => "open",
            Self::HalfOpen => "half_open",
        }
    }
}

/// A state change, as given to the observer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Transition {
    pub breaker: String,
    pub from: BreakerState,
    pub to: BreakerState,
}

#[derive(Debug, Error, PartialEq, Eq)]
pub enum BreakerError<E> {
    /// The breaker is open (or a probe is already running): not called.
    #[error("circuit open")]
    Open,
    #[error("timed out after {0:?}")]
    Timeout(Duration),
    #[error(transparent)]
    Inner(E),
}

type Observer = Arc<dyn Fn(&Transition) + Send + Sync>;

pub struct CircuitBreaker {
    name: String,
    settings: BreakerSettings,
    inner: Mutex<Inner>,
    observer: Option<Observer>,
}

#[derive(Debug)]
struct Inner {
    state: BreakerState,
    failures: u32,
    opened_at: Option<Instant>,
    probe_running: bool,
}

/// What `admit` decided for one call.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Admission {
    Normal,
    Probe,
}

impl CircuitBreaker {
    pub fn new(name: impl Into<String>, settings: BreakerSettings) -> Self {
        let settings = BreakerSettings { failure_threshold: settings.failure_threshold.max(1), ..settings };
        Self {
            name: name.into(),
            settings,
            inner: Mutex::new(Inner { state: BreakerState::Closed, failures: 0, opened_at: None, probe_running: false }),
            observer: None,
        }
    }

    /// Calls `observer` on every state change.
    pub fn with_observer(mut self, observer: impl Fn(&Transition) + Send + Sync + 'static) -> Self {
        self.observer = Some(Arc::new(observer));
        self
    }

    pub fn name(&self) -> &str {
        &self.name
    }

    pub fn settings(&self) -> BreakerSettings {
        self.settings
    }

    /// The current state (an open breaker past its cool-down still reads
    /// `Open` until a call probes).
    pub fn state(&self) -> BreakerState {
        self.lock().state
    }

    /// Runs `call` under the breaker and the call timeout.
    pub async fn call<T, E, F>(&self, call: F) -> Result<T, BreakerError<E>>
    where
        F: Future<Output = Result<T, E>>,
    {
        let admission = self.admit().ok_or(BreakerError::Open)?;
        // If the caller drops this future mid-call, the guard gives the
        // probe slot back so the breaker cannot stay stuck half-open.
        let mut guard = ProbeGuard { breaker: self, armed: admission == Admission::Probe };
        let outcome = tokio::time::timeout(self.settings.call_timeout, call).await;
        guard.armed = false;
        match outcome {
            Ok(Ok(value)) => {
                self.on_success(admission);
                Ok(value)
            }
            Ok(Err(error)) => {
                self.on_failure(admission);
                Err(BreakerError::Inner(error))
            }
            Err(_) => {
                self.on_failure(admission);
                Err(BreakerError::Timeout(self.settings.call_timeout))
            }
        }
    }

    /// Counts a failure the breaker did not see through [`call`](Self::call)
    /// (for example an error judged from a successful response).
    pub fn record_failure(&self) {
        self.on_failure(Admission::Normal);
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    fn admit(&self) -> Option<Admission> {
        let mut transition = None;
        let admission = {
            let mut inner = self.lock();
            match inner.state {
                BreakerState::Closed => Some(Admission::Normal),
                BreakerState::Open => {
                    let cooled = inner.opened_at.is_none_or(|at| Instant::now().duration_since(at) >= self.settings.cool_down);
                    if cooled {
                        inner.state = BreakerState::HalfOpen;
                        inner.probe_running = true;
                        transition = Some((BreakerState::Open, BreakerState::HalfOpen));
                        Some(Admission::Probe)
                    } else {
                        None
                    }
                }
                BreakerState::HalfOpen if !inner.probe_running => {
                    inner.probe_running = true;
                    Some(Admission::Probe)
                }
                BreakerState::HalfOpen => None,
            }
        };
        if let Some((from, to)) = transition {
            self.notify(from, to);
        }
        admission
    }

    fn on_success(&self, admission: Admission) {
        let from = {
            let mut inner = self.lock();
            match inner.state {
                BreakerState::Closed => {
                    inner.failures = 0;
                    return;
                }
                // A straggler admitted before the breaker opened: only a
                // probe may close it.
                BreakerState::Open => return,
                BreakerState::HalfOpen if admission != Admission::Probe => return,
                BreakerState::HalfOpen => {
                    inner.failures = 0;
                    inner.probe_running = false;
                    inner.state = BreakerState::Closed;
                    inner.opened_at = None;
                    BreakerState::HalfOpen
                }
            }
        };
        self.notify(from, BreakerState::Closed);
    }

    fn on_failure(&self, admission: Admission) {
        let transition = {
            let mut inner = self.lock();
            let probe = admission == Admission::Probe;
            if probe {
                inner.probe_running = false;
            }
            inner.failures = inner.failures.saturating_add(1);
            let from = inner.state;
            let opens = match from {
                BreakerState::Closed => inner.failures >= self.settings.failure_threshold,
                // Only the probe decides; a straggler's failure changes nothing.
                BreakerState::HalfOpen => probe,
                // A straggler admitted before the breaker opened: it stays
                // open, its cool-down unchanged.
                BreakerState::Open => false,
            };
            if opens {
                inner.state = BreakerState::Open;
                inner.opened_at = Some(Instant::now());
                Some(from)
            } else {
                None
            }
        };
        if let Some(from) = transition {
            self.notify(from, BreakerState::Open);
        }
    }

    fn release_probe(&self) {
        self.lock().probe_running = false;
    }

    fn notify(&self, from: BreakerState, to: BreakerState) {
        tracing::warn!(breaker = %self.name, from = from.as_str(), to = to.as_str(), "circuit breaker state change");
        if let Some(observer) = &self.observer {
            observer(&Transition { breaker: self.name.clone(), from, to });
        }
    }
}

struct ProbeGuard<'a> {
    breaker: &'a CircuitBreaker,
    armed: bool,
}

impl Drop for ProbeGuard<'_> {
    fn drop(&mut self) {
        if self.armed {
            self.breaker.release_probe();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The state changes a breaker reported, in order.
    type Transitions = Arc<Mutex<Vec<(BreakerState, BreakerState)>>>;

    fn breaker(threshold: u32) -> (CircuitBreaker, Transitions) {
        let seen = Arc::new(Mutex::new(Vec::new()));
        let log = seen.clone();
        let settings =
            BreakerSettings { failure_threshold: threshold, cool_down: Duration::from_secs(10), call_timeout: Duration::from_millis(100) };
        let breaker = CircuitBreaker::new("test", settings).with_observer(move |t| log.lock().unwrap().push((t.from, t.to)));
        (breaker, seen)
    }

    async fn fail(breaker: &CircuitBreaker) -> BreakerError<&'static str> {
        breaker.call(async { Err::<(), _>("down") }).await.unwrap_err()
    }

    async fn succeed(breaker: &CircuitBreaker) -> Result<u32, BreakerError<&'static str>> {
        breaker.call(async { Ok(7) }).await
    }

    #[tokio::test(start_paused = true)]
    async fn opens_after_consecutive_failures_only() {
        let (breaker, seen) = breaker(3);
        assert_eq!(fail(&breaker).await, BreakerError::Inner("down"));
        assert_eq!(fail(&breaker).await, BreakerError::Inner("down"));
        // A success in between resets the count.
        assert_eq!(succeed(&breaker).await, Ok(7));
        fail(&breaker).await;
        fail(&breaker).await;
        assert_eq!(breaker.state(), BreakerState::Closed);
        fail(&breaker).await;
        assert_eq!(breaker.state(), BreakerState::Open);
        assert_eq!(*seen.lock().unwrap(), vec![(BreakerState::Closed, BreakerState::Open)]);
    }

    #[tokio::test(start_paused = true)]
    async fn an_open_breaker_refuses_without_calling() {
        let (breaker, _) = breaker(1);
        fail(&breaker).await;
        let called = std::sync::atomic::AtomicBool::new(false);
        let result = breaker
            .call(async {
                called.store(true, std::sync::atomic::Ordering::SeqCst);
                Ok::<_, &str>(1)
            })
            .await;
        assert_eq!(result, Err(BreakerError::Open));
        assert!(!called.load(std::sync::atomic::Ordering::SeqCst));
    }

    #[tokio::test(start_paused = true)]
    async fn a_timeout_counts_as_a_failure() {
        let (breaker, _) = breaker(2);
        let slow = || {
            breaker.call(async {
                tokio::time::sleep(Duration::from_secs(1)).await;
                Ok::<_, &str>(1)
            })
        };
        assert_eq!(slow().await, Err(BreakerError::Timeout(Duration::from_millis(100))));
        assert_eq!(breaker.state(), BreakerState::Closed);
        assert_eq!(slow().await, Err(BreakerError::Timeout(Duration::from_millis(100))));
        assert_eq!(breaker.state(), BreakerState::Open);
    }

    #[tokio::test(start_paused = true)]
    async fn only_the_probe_decides_a_half_open_breaker() {
        // A call timeout longer than the cool-down lets a call admitted
        // before the breaker opened finish while the probe is running.
        let settings = BreakerSettings { failure_threshold: 1, cool_down: Duration::from_secs(1), call_timeout: Duration::from_secs(60) };
        let breaker = Arc::new(CircuitBreaker::new("test", settings));
        let (finish_straggler, straggler_done) = tokio::sync::oneshot::channel::<()>();
        let straggler = tokio::spawn({
            let breaker = breaker.clone();
            async move { breaker.call(async { straggler_done.await.map_err(|_| "dropped") }).await }
        });
        tokio::task::yield_now().await; // the straggler is admitted while closed
        fail(&breaker).await;
        assert_eq!(breaker.state(), BreakerState::Open);
        tokio::time::advance(Duration::from_secs(1)).await;
        let (finish_probe, probe_done) = tokio::sync::oneshot::channel::<()>();
        let probe = tokio::spawn({
            let breaker = breaker.clone();
            async move { breaker.call(async { probe_done.await.map_err(|_| "dropped") }).await }
        });
        tokio::task::yield_now().await;
        assert_eq!(breaker.state(), BreakerState::HalfOpen, "the probe is running");

        finish_straggler.send(()).unwrap();
        assert_eq!(straggler.await.unwrap(), Ok(()));
        assert_eq!(breaker.state(), BreakerState::HalfOpen, "a straggler's success does not close the breaker");
        assert_eq!(succeed(&breaker).await, Err(BreakerError::Open), "and does not free the probe slot");

        finish_probe.send(()).unwrap();
        assert_eq!(probe.await.unwrap(), Ok(()));
        assert_eq!(breaker.state(), BreakerState::Closed, "the probe's success does");
    }

    #[tokio::test(start_paused = true)]
    async fn probes_after_the_cool_down_and_closes_on_success() {
        let (breaker, seen) = breaker(1);
        fail(&breaker).await;
        tokio::time::advance(Duration::from_secs(9)).await;
        assert_eq!(succeed(&breaker).await, Err(BreakerError::Open), "still cooling down");
        tokio::time::advance(Duration::from_secs(1)).await;
        assert_eq!(succeed(&breaker).await, Ok(7), "the probe goes through");
        assert_eq!(breaker.state(), BreakerState::Closed);
        assert_eq!(
            *seen.lock().unwrap(),
            vec![
                (BreakerState::Closed, BreakerState::Open),
                (BreakerState::Open, BreakerState::HalfOpen),
                (BreakerState::HalfOpen, BreakerState::Closed)
            ]
        );
    }

    #[tokio::test(start_paused = true)]
    async fn a_failed_probe_opens_again_for_a_full_cool_down() {
        let (breaker, _) = breaker(1);
        fail(&breaker).await;
        tokio::time::advance(Duration::from_secs(10)).await;
        assert_eq!(fail(&breaker).await, BreakerError::Inner("down"));
        assert_eq!(breaker.state(), BreakerState::Open);
        tokio::time::advance(Duration::from_secs(5)).await;
        assert_eq!(succeed(&breaker).await, Err(BreakerError::Open));
        tokio::time::advance(Duration::from_secs(5)).await;
        assert_eq!(succeed(&breaker).await, Ok(7));
    }

    #[tokio::test(start_paused = true)]
    async fn only_one_probe_runs_at_a_time_and_a_dropped_probe_frees_the_slot() {
        let (breaker, _) = breaker(1);
        fail(&breaker).await;
        tokio::time::advance(Duration::from_secs(10)).await;
        let (release, wait) = tokio::sync::oneshot::channel::<()>();
        let probe = breaker.call(async {
            let _ = wait.await;
            Ok::<_, &str>(1)
        });
        let mut probe = Box::pin(probe);
        // Start the probe; it parks on the channel.
        assert!(futures_poll_once(probe.as_mut()).await.is_none());
        assert_eq!(breaker.state(), BreakerState::HalfOpen);
        assert_eq!(succeed(&breaker).await, Err(BreakerError::Open), "a second probe is refused");
        drop(probe);
        drop(release);
        assert_eq!(succeed(&breaker).await, Ok(7), "the dropped probe gave its slot back");
        assert_eq!(breaker.state(), BreakerState::Closed);
    }

    #[tokio::test(start_paused = true)]
    async fn a_straggler_finishing_after_the_breaker_opened_changes_nothing() {
        let (breaker, seen) = breaker(1);
        let (finish, wait) = tokio::sync::oneshot::channel::<()>();
        let mut straggler = Box::pin(breaker.call(async {
            let _ = wait.await;
            Ok::<_, &str>(1)
        }));
        assert!(futures_poll_once(straggler.as_mut()).await.is_none());
        fail(&breaker).await;
        assert_eq!(breaker.state(), BreakerState::Open);
        finish.send(()).unwrap();
        assert_eq!(straggler.await, Ok(1));
        assert_eq!(breaker.state(), BreakerState::Open, "only a probe closes the breaker");
        assert_eq!(succeed(&breaker).await, Err(BreakerError::Open));
        assert_eq!(seen.lock().unwrap().len(), 1);
    }

    /// Polls a future once; `Some` if it finished.
    async fn futures_poll_once<F: Future + Unpin>(mut future: F) -> Option<F::Output> {
        std::future::poll_fn(|cx| match std::pin::Pin::new(&mut future).poll(cx) {
            std::task::Poll::Ready(value) => std::task::Poll::Ready(Some(value)),
            std::task::Poll::Pending => std::task::Poll::Ready(None),
        })
        .await
    }
}
