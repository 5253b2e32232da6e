//! Reading accounts through three layers: L1 (in-process, moka), L2
//! (Redis, the projector's format) and the source (the DynamoDB read model).
//!
//! - A plain read tries L1, then L2, then the source; a miss fills the
//!   layers above it (L2 by compare-and-set on the version, L1 only with a
//!   newer version than it holds).
//! - A read with `min_version` skips both caches and reads the source
//!   consistently, so a cached entry older than the version a client asks
//!   for is never served. What it reads refreshes the caches.
//! - Redis and DynamoDB each sit behind a circuit breaker with a per-call
//!   timeout. A Redis failure is a cache miss; a DynamoDB failure is
//!   [`ReadError::Unavailable`] (503).

use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, Utc};
use ledgerline_shared::cache::AccountCache;
use ledgerline_shared::read_model::{
    AccountView, BalanceMark, HoldFilter, HoldPage, HoldView, MovementId, ReadModelError, ReadModelStore, TransactionPage, TransactionView,
};
use ledgerline_shared::resilience::{BreakerError, BreakerSettings, BreakerState, CircuitBreaker};
use moka::future::Cache;
use moka::ops::compute::Op;
use thiserror::Error;
use uuid::Uuid;

use crate::metrics::{Metrics, RequestCounters};

#[derive(Debug, Error, Clone, PartialEq, Eq)]
pub enum ReadError {
    /// The read model cannot be reached (down, slow, or its breaker is open).
    #[error("read model unavailable: {0}")]
    Unavailable(String),
    /// Anything else the read model reported (a corrupt item, a bug).
    #[error("read model failure: {0}")]
    Failed(String),
}

/// Which layer answered.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Layer {
    L1,
    L2,
    Source,
}

impl Layer {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::L1 => "l1",
            Self::L2 => "l2",
            Self::Source => "dynamodb",
        }
    }
}

pub struct ReaderSettings {
    pub l1_capacity: u64,
    pub l1_ttl: Duration,
    pub redis_breaker: BreakerSettings,
    pub dynamodb_breaker: BreakerSettings,
}

pub struct AccountReader {
    l1: Option<Cache<Uuid, AccountView>>,
    l2: Option<(Arc<AccountCache>, CircuitBreaker)>,
    source: Arc<dyn ReadModelStore>,
    source_breaker: CircuitBreaker,
}

impl AccountReader {
    pub fn new(source: Arc<dyn ReadModelStore>, redis: Option<Arc<AccountCache>>, settings: &ReaderSettings, metrics: &Metrics) -> Self {
        let observed = |name: &str, breaker: BreakerSettings| {
            let metrics = metrics.clone();
            CircuitBreaker::new(name, breaker).with_observer(move |transition| metrics.breaker(transition))
        };
        let l1 = (settings.l1_capacity > 0).then(|| {
            Cache::builder().max_capacity(settings.l1_capacity).time_to_live(settings.l1_ttl.max(Duration::from_millis(1))).build()
        });
        Self {
            l1,
            l2: redis.map(|cache| (cache, observed("redis", settings.redis_breaker))),
            source,
            source_breaker: observed("dynamodb", settings.dynamodb_breaker),
        }
    }

    pub fn redis_breaker_state(&self) -> Option<BreakerState> {
        self.l2.as_ref().map(|(_, breaker)| breaker.state())
    }

    pub fn dynamodb_breaker_state(&self) -> BreakerState {
        self.source_breaker.state()
    }

    /// One account, and the layer that answered. With `min_version`, a
    /// consistent read of the source (the caller compares versions).
    pub async fn account(
        &self,
        account_id: Uuid,
        min_version: Option<u64>,
        counters: &RequestCounters,
    ) -> Result<Option<(AccountView, Layer)>, ReadError> {
        if min_version.is_none() {
            if let Some(l1) = &self.l1 {
                if let Some(view) = l1.get(&account_id).await {
                    RequestCounters::add(&counters.l1_hit);
                    return Ok(Some((view, Layer::L1)));
                }
                RequestCounters::add(&counters.l1_miss);
            }
            if let Some(view) = self.l2_get(account_id, counters).await {
                self.l1_fill(&view).await;
                return Ok(Some((view, Layer::L2)));
            }
        }
        RequestCounters::add(&counters.source_read);
        let consistent = min_version.is_some();
        let Some(view) = self.source(|store| async move { store.account(account_id, consistent).await }).await? else {
            return Ok(None);
        };
        self.l2_fill(&view).await;
        self.l1_fill(&view).await;
        Ok(Some((view, Layer::Source)))
    }

    pub async fn accounts_of_owner(&self, owner_id: &str, counters: &RequestCounters) -> Result<Vec<AccountView>, ReadError> {
        RequestCounters::add(&counters.source_read);
        let owner_id = owner_id.to_owned();
        self.source(|store| async move { store.accounts_of_owner(&owner_id).await }).await
    }

    pub async fn transactions(
        &self,
        account_id: Uuid,
        limit: usize,
        before_version: Option<u64>,
        consistent: bool,
        counters: &RequestCounters,
    ) -> Result<TransactionPage, ReadError> {
        RequestCounters::add(&counters.source_read);
        self.source(|store| async move { store.transactions(account_id, limit, before_version, consistent).await }).await
    }

    /// One hold of an account (the caller checked the account).
    /// The account's last movement before `before` (the time index).
    pub async fn last_movement_before(
        &self,
        account_id: Uuid,
        before: DateTime<Utc>,
        consistent: bool,
        counters: &RequestCounters,
    ) -> Result<Option<BalanceMark>, ReadError> {
        RequestCounters::add(&counters.source_read);
        self.source(|store| async move { store.last_movement_before(account_id, before, consistent).await }).await
    }

    /// Movements after `after_version` up to `up_to_version`, oldest first.
    pub async fn movements_between(
        &self,
        account_id: Uuid,
        after_version: u64,
        up_to_version: u64,
        limit: usize,
        consistent: bool,
        counters: &RequestCounters,
    ) -> Result<Vec<TransactionView>, ReadError> {
        RequestCounters::add(&counters.source_read);
        self.source(|store| async move { store.movements_between(account_id, after_version, up_to_version, limit, consistent).await }).await
    }

    /// Every row of one transfer or entry, on any account (its indexes).
    pub async fn movements_of(&self, id: MovementId, counters: &RequestCounters) -> Result<Vec<(Uuid, TransactionView)>, ReadError> {
        RequestCounters::add(&counters.source_read);
        self.source(|store| async move { store.movements_of(id).await }).await
    }

    pub async fn hold(
        &self,
        account_id: Uuid,
        hold_id: Uuid,
        consistent: bool,
        counters: &RequestCounters,
    ) -> Result<Option<HoldView>, ReadError> {
        RequestCounters::add(&counters.source_read);
        self.source(|store| async move { store.hold(account_id, hold_id, consistent).await }).await
    }

    /// A page of an account's holds (the caller checked the account).
    pub async fn holds(
        &self,
        account_id: Uuid,
        filter: HoldFilter,
        limit: usize,
        before: Option<Uuid>,
        consistent: bool,
        counters: &RequestCounters,
    ) -> Result<HoldPage, ReadError> {
        RequestCounters::add(&counters.source_read);
        self.source(|store| async move { store.holds(account_id, filter, limit, before, consistent).await }).await
    }

    /// A call to the source under its breaker. Only "unavailable" counts
    /// against the breaker: a corrupt item says nothing about DynamoDB's health.
    async fn source<'a, T, F, Fut>(&'a self, call: F) -> Result<T, ReadError>
    where
        F: FnOnce(&'a dyn ReadModelStore) -> Fut,
        Fut: Future<Output = Result<T, ReadModelError>>,
    {
        let store: &'a dyn ReadModelStore = self.source.as_ref();
        let outcome = self
            .source_breaker
            .call(async move {
                match call(store).await {
                    Err(ReadModelError::Unavailable(reason)) => Err(reason),
                    other => Ok(other),
                }
            })
            .await;
        match outcome {
            Ok(Ok(value)) => Ok(value),
            Ok(Err(error)) => {
                tracing::error!(%error, "read model failure");
                Err(ReadError::Failed(error.to_string()))
            }
            Err(BreakerError::Inner(reason)) => {
                tracing::warn!(%reason, "read model unavailable");
                Err(ReadError::Unavailable(reason))
            }
            Err(BreakerError::Timeout(after)) => Err(ReadError::Unavailable(format!("timed out after {after:?}"))),
            Err(BreakerError::Open) => Err(ReadError::Unavailable("circuit open".into())),
        }
    }

    async fn l2_get(&self, account_id: Uuid, counters: &RequestCounters) -> Option<AccountView> {
        let (cache, breaker) = self.l2.as_ref()?;
        match breaker.call(cache.get(account_id)).await {
            Ok(Some(view)) => {
                RequestCounters::add(&counters.l2_hit);
                Some(view)
            }
            Ok(None) => {
                RequestCounters::add(&counters.l2_miss);
                None
            }
            Err(error) => {
                if !matches!(error, BreakerError::Open) {
                    tracing::warn!(%error, "redis read failed; reading the read model");
                }
                RequestCounters::add(&counters.l2_error);
                RequestCounters::add(&counters.l2_miss);
                None
            }
        }
    }

    async fn l2_fill(&self, view: &AccountView) {
        if let Some((cache, breaker)) = &self.l2 {
            match breaker.call(cache.put_if_newer(view)).await {
                Ok(_) | Err(BreakerError::Open) => {}
                Err(error) => tracing::warn!(%error, "redis write failed"),
            }
        }
    }

    async fn l1_fill(&self, view: &AccountView) {
        if let Some(l1) = &self.l1 {
            let fresh = view.clone();
            l1.entry(view.account_id)
                .and_compute_with(|current| async move {
                    match current {
                        Some(entry) if entry.value().version >= fresh.version => Op::Nop,
                        _ => Op::Put(fresh),
                    }
                })
                .await;
        }
    }

    /// Drops the in-process cache (tests and benches).
    pub async fn clear_l1(&self) {
        if let Some(l1) = &self.l1 {
            l1.invalidate_all();
            l1.run_pending_tasks().await;
        }
    }
}
