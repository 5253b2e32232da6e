//! Load shedding: at most `max_in_flight` requests run at once in a
//! container; a request waits at most `queue_wait` for a slot and is then
//! refused (503) instead of piling up behind slow ones.
//!
//! tower's `ConcurrencyLimit` + `LoadShed` refuse at once when full (no
//! short wait) and need the service to be polled for readiness, which an
//! axum handler chain does not do per request; a semaphore acquired with a
//! timeout is the whole rule, so it is written out here.

use std::sync::Arc;
use std::time::Duration;

use tokio::sync::{OwnedSemaphorePermit, Semaphore};

#[derive(Clone, Debug)]
pub struct LoadShedder {
    permits: Arc<Semaphore>,
    max_in_flight: usize,
    queue_wait: Duration,
}

impl LoadShedder {
    pub fn new(max_in_flight: usize, queue_wait: Duration) -> Self {
        let max_in_flight = max_in_flight.max(1);
        Self { permits: Arc::new(Semaphore::new(max_in_flight)), max_in_flight, queue_wait }
    }

    /// A slot, held until the permit is dropped; `None` when none freed up
    /// within the queue wait.
    pub async fn admit(&self) -> Option<OwnedSemaphorePermit> {
        match tokio::time::timeout(self.queue_wait, self.permits.clone().acquire_owned()).await {
            Ok(Ok(permit)) => Some(permit),
            _ => None,
        }
    }

    pub fn in_flight(&self) -> usize {
        self.max_in_flight - self.permits.available_permits()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test(start_paused = true)]
    async fn admits_up_to_the_limit_then_sheds_after_the_queue_wait() {
        let shedder = LoadShedder::new(2, Duration::from_millis(50));
        let first = shedder.admit().await.expect("a free slot");
        let _second = shedder.admit().await.expect("a free slot");
        assert_eq!(shedder.in_flight(), 2);
        let started = tokio::time::Instant::now();
        assert!(shedder.admit().await.is_none(), "full: shed");
        assert_eq!(started.elapsed(), Duration::from_millis(50), "after exactly the queue wait");
        drop(first);
        assert!(shedder.admit().await.is_some(), "a freed slot is reused");
    }

    #[tokio::test(start_paused = true)]
    async fn a_waiting_request_gets_a_slot_freed_within_the_wait() {
        let shedder = LoadShedder::new(1, Duration::from_millis(50));
        let held = shedder.admit().await.unwrap();
        let waiter = tokio::spawn({
            let shedder = shedder.clone();
            async move { shedder.admit().await.is_some() }
        });
        tokio::time::sleep(Duration::from_millis(20)).await;
        drop(held);
        assert!(waiter.await.unwrap(), "admitted once the slot was freed");
    }
}
