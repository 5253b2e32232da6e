//! The read-model tables the code creates (`create_tables`, used by tests
//! and operators) are the ones template.yaml deploys: scripts/services.sh
//! creates the default-named tables from the template itself, and this test
//! compares the two shapes in the DynamoDB emulator.

use aws_sdk_dynamodb::Client;
use ledgerline_shared::read_model::dynamo::{create_tables, local_client};
use ledgerline_shared::read_model::tables::TableNames;

use ledgerline_tests::services::dynamodb_endpoint as endpoint;

/// Key schema, attribute types and indexes, in a comparable form.
async fn shape(client: &Client, table: &str) -> Vec<String> {
    let described = client
        .describe_table()
        .table_name(table)
        .send()
        .await
        .unwrap_or_else(|e| panic!("table {table} is missing ({e:?}); scripts/services.sh creates it from template.yaml"));
    let table = described.table().unwrap();
    let mut shape: Vec<String> = Vec::new();
    for key in table.key_schema() {
        shape.push(format!("key {} {}", key.attribute_name(), key.key_type().as_str()));
    }
    for attribute in table.attribute_definitions() {
        shape.push(format!("attribute {} {}", attribute.attribute_name(), attribute.attribute_type().as_str()));
    }
    for index in table.global_secondary_indexes() {
        let name = index.index_name().unwrap_or_default();
        for key in index.key_schema() {
            shape.push(format!("index {name} key {} {}", key.attribute_name(), key.key_type().as_str()));
        }
        let projection = index.projection().and_then(|p| p.projection_type()).map(|p| p.as_str().to_owned()).unwrap_or_default();
        shape.push(format!("index {name} projection {projection}"));
    }
    for index in table.local_secondary_indexes() {
        let name = index.index_name().unwrap_or_default();
        for key in index.key_schema() {
            shape.push(format!("local index {name} key {} {}", key.attribute_name(), key.key_type().as_str()));
        }
        let projection = index.projection();
        let kind = projection.and_then(|p| p.projection_type()).map(|p| p.as_str().to_owned()).unwrap_or_default();
        let attributes = projection.map(|p| p.non_key_attributes().join(",")).unwrap_or_default();
        shape.push(format!("local index {name} projection {kind} {attributes}"));
    }
    shape.sort();
    shape
}

#[tokio::test]
async fn the_code_creates_the_tables_the_template_deploys() {
    let client = local_client(&endpoint());
    let from_template = TableNames::default();
    let from_code = TableNames::prefixed(&format!("shape{}", uuid::Uuid::new_v4().simple()));
    create_tables(&client, &from_code).await.unwrap();
    assert_eq!(shape(&client, &from_code.accounts).await, shape(&client, &from_template.accounts).await);
    assert_eq!(shape(&client, &from_code.transactions).await, shape(&client, &from_template.transactions).await);
    assert_eq!(shape(&client, &from_code.holds).await, shape(&client, &from_template.holds).await);
    let holds = shape(&client, &from_code.holds).await;
    assert!(holds.contains(&"index expiring-index key expires_at RANGE".to_string()), "{holds:?}");
    let transactions = shape(&client, &from_code.transactions).await;
    assert!(transactions.contains(&"local index occurred-index key occurred_ns RANGE".to_string()), "{transactions:?}");
    assert!(transactions.contains(&"local index occurred-index projection INCLUDE balance_after".to_string()), "{transactions:?}");
    assert!(transactions.contains(&"index transfer_id-index key transfer_id HASH".to_string()), "{transactions:?}");
    assert!(transactions.contains(&"index entry_id-index key entry_id HASH".to_string()), "{transactions:?}");
    let accounts = shape(&client, &from_code.accounts).await;
    assert!(accounts.contains(&"index owner_id-index key owner_id HASH".to_string()), "{accounts:?}");
}
