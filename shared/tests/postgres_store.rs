//! The event store contract against a real PostgreSQL (see scripts/services.sh).

mod conformance;
mod support;

use std::sync::Arc;

use async_trait::async_trait;
use ledgerline_shared::event_store::{EventStore, StoreSettings};

struct Postgres;

#[async_trait]
impl conformance::Factory for Postgres {
    async fn make(&self, settings: StoreSettings) -> Arc<dyn EventStore> {
        Arc::new(support::postgres_store(settings).await)
    }
}

conformance_tests!(Postgres);
