//! The read-model contract against the in-memory store.

mod read_model_conformance;

use std::sync::Arc;

use async_trait::async_trait;
use ledgerline_shared::read_model::ReadModelStore;
use ledgerline_shared::read_model::memory::InMemoryReadModel;

struct Memory;

#[async_trait]
impl read_model_conformance::Factory for Memory {
    async fn make(&self) -> Arc<dyn ReadModelStore> {
        Arc::new(InMemoryReadModel::default())
    }
}

read_model_tests!(Memory);
