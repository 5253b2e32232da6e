//! The read-model contract against DynamoDB, served locally by moto
//! (`scripts/services.sh` starts it; `LEDGERLINE_TEST_DYNAMODB_ENDPOINT`).

mod read_model_conformance;

use std::sync::Arc;

use async_trait::async_trait;
use ledgerline_shared::read_model::ReadModelStore;
use ledgerline_shared::read_model::dynamo::{DynamoReadModel, create_tables, local_client};
use ledgerline_shared::read_model::tables::TableNames;

pub use ledgerline_tests::services::dynamodb_endpoint as endpoint;

struct Dynamo;

#[async_trait]
impl read_model_conformance::Factory for Dynamo {
    async fn make(&self) -> Arc<dyn ReadModelStore> {
        // Tables of its own per test, so tests run in parallel.
        let tables = TableNames::prefixed(&format!("t{}", uuid::Uuid::new_v4().simple()));
        let client = local_client(&endpoint());
        create_tables(&client, &tables).await.unwrap_or_else(|e| panic!("cannot create tables at {}: {e}", endpoint()));
        // Creating them again is harmless.
        create_tables(&client, &tables).await.unwrap();
        Arc::new(DynamoReadModel::new(client, tables))
    }
}

read_model_tests!(Dynamo);
