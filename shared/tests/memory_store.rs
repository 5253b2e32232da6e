//! The event store contract against the in-memory store.

mod conformance;

use std::sync::Arc;

use async_trait::async_trait;
use ledgerline_shared::event_store::{EventStore, InMemoryEventStore, StoreSettings};

struct Memory;

#[async_trait]
impl conformance::Factory for Memory {
    async fn make(&self, settings: StoreSettings) -> Arc<dyn EventStore> {
        Arc::new(InMemoryEventStore::new(settings))
    }
}

conformance_tests!(Memory);
