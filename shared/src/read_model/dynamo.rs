//! The read model in DynamoDB (aws-sdk-dynamodb).
//!
//! Every change is one `TransactWriteItems`: the account item's update is
//! conditional on the stored version being the one before (or on the item
//! not existing, for version 1), and a money movement's history row is put
//! in the same transaction. The row is put without a condition: its content
//! is fixed by the event, so writing it again changes nothing, and a row left
//! behind by an earlier, partly applied write (an emulator that broke
//! atomicity did this) can never block the account for good. A failed
//! condition is then classified by reading the stored version: already
//! there (duplicate) or behind (gap).
//!
//! A run of changes of one account (`apply_run`, what the projector does
//! with a batch) is cheaper: its history rows by `BatchWriteItem`, then ONE
//! conditional write of the account. No transaction: as in `replace`, the
//! rows may be visible a moment before the account catches up with them.
//! (Transactions also cost twice the write capacity, and moto copies every
//! table a transaction touches, once per item, which makes them slower the
//! larger the table.)
//!
//! The endpoint comes from the standard AWS settings
//! (`AWS_ENDPOINT_URL_DYNAMODB` or `AWS_ENDPOINT_URL`), so the same code
//! runs against AWS, the moto server, DynamoDB Local or LocalStack.
//!
//! The functions build their client from Lambda's environment alone
//! ([`client_from_env`]: region, the execution role's credentials, the
//! endpoint): aws-config's provider chain (profiles, SSO, STS, IMDS) is
//! megabytes of code a Lambda container never runs. The CLI, run by people
//! with profiles, uses that chain ([`client_from_aws_config`], feature
//! `aws-config`).

use std::collections::HashMap;
use std::time::Duration;

use async_trait::async_trait;
use aws_sdk_dynamodb::Client;
use aws_sdk_dynamodb::config::timeout::TimeoutConfig;
use aws_sdk_dynamodb::config::{BehaviorVersion, Credentials, Region};
use aws_sdk_dynamodb::error::{ProvideErrorMetadata, SdkError};
use aws_sdk_dynamodb::types::{
    AttributeDefinition, AttributeValue, BillingMode, GlobalSecondaryIndex, KeySchemaElement, KeyType, KeysAndAttributes, Projection,
    ProjectionType, Put, PutRequest, ReturnValue, ScalarAttributeType, TransactWriteItem, Update, WriteRequest,
};
use chrono::{DateTime, Utc};
use uuid::Uuid;

use super::tables::{OWNER_INDEX, TableNames, schema};
use super::{
    AccountUpdate, AccountView, ApplyOutcome, Change, ReadModelError, ReadModelStore, TransactionKind, TransactionPage, TransactionView,
};
use crate::config::{ConfigError, Env};
use crate::resilience::Backoff;

/// Every call is bounded: a slow DynamoDB becomes an error, not a hang.
fn timeout_config(operation: Duration) -> TimeoutConfig {
    TimeoutConfig::builder().operation_timeout(operation).connect_timeout(Duration::from_secs(2)).build()
}

/// Before each round of a batch call: nothing the first time; then, for
/// what DynamoDB left unprocessed (it does when throttling), a growing pause
/// (about 25 ms, doubling), and after 8 rounds the store counts as unavailable.
async fn back_off(attempt: &mut u32) -> Result<(), ReadModelError> {
    const ROUNDS: u32 = 8;
    const UNPROCESSED: Backoff = Backoff { base: Duration::from_millis(25), max: Duration::from_secs(2) };
    if *attempt >= ROUNDS {
        return Err(ReadModelError::Unavailable(format!("items still unprocessed after {ROUNDS} rounds")));
    }
    if *attempt > 0 {
        tokio::time::sleep(UNPROCESSED.delay(*attempt)).await;
    }
    *attempt += 1;
    Ok(())
}

/// The SDK's HTTP client: hyper with rustls on ring, the crypto the
/// PostgreSQL TLS already links (the SDK's default would add aws-lc).
fn http_client() -> aws_sdk_dynamodb::config::SharedHttpClient {
    aws_smithy_http_client::Builder::new()
        .tls_provider(aws_smithy_http_client::tls::Provider::Rustls(aws_smithy_http_client::tls::rustls_provider::CryptoMode::Ring))
        .build_https()
}

/// A client from Lambda's environment: `AWS_REGION` (or
/// `AWS_DEFAULT_REGION`), the credentials Lambda puts there
/// (`AWS_ACCESS_KEY_ID`, `AWS_SECRET_ACCESS_KEY`, `AWS_SESSION_TOKEN`; they
/// last as long as the container) and the endpoint settings.
pub fn client_from_env(operation_timeout: Duration) -> Result<Client, ConfigError> {
    let env = Env::process();
    let required = |name: &str| {
        env.text(name).ok_or_else(|| ConfigError {
            name: name.to_owned(),
            value: String::new(),
            reason: "must be set (Lambda sets it; locally any value works against an emulator)".into(),
        })
    };
    let region = env.text("AWS_REGION").or_else(|| env.text("AWS_DEFAULT_REGION")).map_or_else(|| required("AWS_REGION"), Ok)?;
    let credentials = Credentials::new(
        required("AWS_ACCESS_KEY_ID")?,
        required("AWS_SECRET_ACCESS_KEY")?,
        env.text("AWS_SESSION_TOKEN"),
        None,
        "lambda-environment",
    );
    let mut config = aws_sdk_dynamodb::Config::builder()
        .behavior_version(BehaviorVersion::latest())
        .region(Region::new(region))
        .credentials_provider(credentials)
        .http_client(http_client())
        .timeout_config(timeout_config(operation_timeout));
    if let Some(endpoint) = env.text("AWS_ENDPOINT_URL_DYNAMODB").or_else(|| env.text("AWS_ENDPOINT_URL")) {
        config = config.endpoint_url(endpoint);
    }
    Ok(Client::from_conf(config.build()))
}

/// A client from the whole AWS configuration chain (profiles, SSO, ...),
/// for people running the CLI.
#[cfg(feature = "aws-config")]
pub async fn client_from_aws_config(operation_timeout: Duration) -> Client {
    let config = aws_config::defaults(BehaviorVersion::latest())
        .http_client(http_client())
        .timeout_config(timeout_config(operation_timeout))
        .load()
        .await;
    Client::new(&config)
}

/// A client for a local emulator at `endpoint`, with dummy credentials.
pub fn local_client(endpoint: &str) -> Client {
    let config = aws_sdk_dynamodb::Config::builder()
        .behavior_version(BehaviorVersion::latest())
        .region(Region::new("us-east-1"))
        .endpoint_url(endpoint)
        .credentials_provider(Credentials::new("local", "local", None, None, "ledgerline-local"))
        .http_client(http_client())
        .timeout_config(timeout_config(Duration::from_secs(5)))
        .build();
    Client::from_conf(config)
}

#[derive(Clone)]
pub struct DynamoReadModel {
    client: Client,
    tables: TableNames,
}

impl DynamoReadModel {
    pub fn new(client: Client, tables: TableNames) -> Self {
        Self { client, tables }
    }

    pub fn client(&self) -> &Client {
        &self.client
    }

    pub fn tables(&self) -> &TableNames {
        &self.tables
    }

    async fn stored_version(&self, account_id: Uuid) -> Result<u64, ReadModelError> {
        Ok(self.account(account_id, true).await?.map_or(0, |a| a.version))
    }

    /// Writes `requests` to `table` 25 at a time, resending what DynamoDB
    /// hands back unprocessed (it does under load).
    async fn batch_write(&self, table: &str, requests: Vec<WriteRequest>) -> Result<(), ReadModelError> {
        for chunk in requests.chunks(25) {
            let mut pending = HashMap::from([(table.to_owned(), chunk.to_vec())]);
            let mut attempt = 0;
            while !pending.is_empty() {
                back_off(&mut attempt).await?;
                let result = self.client.batch_write_item().set_request_items(Some(pending)).send().await.map_err(map_sdk_error)?;
                pending = result.unprocessed_items.unwrap_or_default().into_iter().filter(|(_, v)| !v.is_empty()).collect();
            }
        }
        Ok(())
    }
}

#[async_trait]
impl ReadModelStore for DynamoReadModel {
    async fn apply(&self, change: &Change) -> Result<ApplyOutcome, ReadModelError> {
        let account_id = change.account_id();
        let version = change.version();
        let mut items = Vec::with_capacity(2);
        match change {
            Change::Open(view) => {
                let put = Put::builder()
                    .table_name(&self.tables.accounts)
                    .set_item(Some(account_item(view)))
                    .condition_expression("attribute_not_exists(account_id)")
                    .build()
                    .map_err(|e| ReadModelError::Other(e.to_string()))?;
                items.push(TransactWriteItem::builder().put(put).build());
            }
            Change::Update { version, at, update, transaction, .. } => {
                let (set, name, value) = match update {
                    AccountUpdate::Balance(balance) => ("balance = :value", None, number(*balance)),
                    AccountUpdate::Status(status) => ("#status = :value", Some(("#status", "status")), string(status.as_str())),
                };
                let mut builder = Update::builder()
                    .table_name(&self.tables.accounts)
                    .key(schema::ACCOUNTS_KEY, string(account_id))
                    .update_expression(format!("SET {set}, #version = :version, updated_at = :at"))
                    .condition_expression("#version = :previous")
                    .expression_attribute_names("#version", "version")
                    .expression_attribute_values(":value", value)
                    .expression_attribute_values(":version", number(*version))
                    .expression_attribute_values(":previous", number(version - 1))
                    .expression_attribute_values(":at", string(at.to_rfc3339()));
                if let Some((placeholder, attribute)) = name {
                    builder = builder.expression_attribute_names(placeholder, attribute);
                }
                let update = builder.build().map_err(|e| ReadModelError::Other(e.to_string()))?;
                items.push(TransactWriteItem::builder().update(update).build());
                if let Some(row) = transaction {
                    let put = Put::builder()
                        .table_name(&self.tables.transactions)
                        .set_item(Some(transaction_item(account_id, row)))
                        .build()
                        .map_err(|e| ReadModelError::Other(e.to_string()))?;
                    items.push(TransactWriteItem::builder().put(put).build());
                }
            }
        }
        match self.client.transact_write_items().set_transact_items(Some(items)).send().await {
            Ok(_) => Ok(ApplyOutcome::Applied),
            Err(error) if is_condition_failure(&error) => {
                let stored = self.stored_version(account_id).await?;
                if stored >= version {
                    Ok(ApplyOutcome::Duplicate { stored })
                } else if stored + 1 < version {
                    Ok(ApplyOutcome::Gap { stored })
                } else {
                    // The version fits now: someone applied in between and
                    // rolled back, or a stale read. Let the caller retry.
                    Err(ReadModelError::Unavailable(format!("condition failed at version {stored} for {version}; retry")))
                }
            }
            Err(error) => Err(map_sdk_error(error)),
        }
    }

    async fn apply_run(&self, changes: &[Change]) -> Result<Option<AccountView>, ReadModelError> {
        let Some(first) = changes.first() else { return Ok(None) };
        let account_id = first.account_id();
        let last = changes.last().expect("not empty");
        let consecutive = changes.windows(2).all(|w| w[1].account_id() == account_id && w[1].version() == w[0].version() + 1);
        if !consecutive {
            return Ok(None);
        }
        // The history rows first, in batches, without a condition (as in
        // `replace`): their content is fixed by their events, so a row
        // written by a run whose account write then fails is harmless, and
        // rewritten identically later.
        let mut rows = Vec::new();
        for change in changes {
            if let Change::Update { transaction: Some(row), .. } = change {
                let put = PutRequest::builder()
                    .set_item(Some(transaction_item(account_id, row)))
                    .build()
                    .map_err(|e| ReadModelError::Other(e.to_string()))?;
                rows.push(WriteRequest::builder().put_request(put).build());
            }
        }
        self.batch_write(&self.tables.transactions, rows).await?;
        // Then the account, once, conditional on the version before the run.
        match first {
            Change::Open(_) => {
                let view = changes.iter().try_fold(None, |view: Option<AccountView>, change| change.apply_to(view.as_ref()).map(Some));
                let Some(Some(view)) = view else { return Ok(None) };
                let result = self
                    .client
                    .put_item()
                    .table_name(&self.tables.accounts)
                    .set_item(Some(account_item(&view)))
                    .condition_expression("attribute_not_exists(account_id)")
                    .send()
                    .await;
                Ok(conditional_write(result)?.then_some(view))
            }
            Change::Update { .. } => {
                // Each attribute takes its last value in the run.
                let (mut balance, mut status) = (None, None);
                for change in changes {
                    match change {
                        Change::Update { update: AccountUpdate::Balance(b), .. } => balance = Some(*b),
                        Change::Update { update: AccountUpdate::Status(s), .. } => status = Some(*s),
                        Change::Open(_) => return Ok(None), // a second opening is not a run
                    }
                }
                let Change::Update { at, .. } = last else { return Ok(None) };
                let mut set = vec!["#version = :version", "updated_at = :at"];
                let mut update = self
                    .client
                    .update_item()
                    .table_name(&self.tables.accounts)
                    .key(schema::ACCOUNTS_KEY, string(account_id))
                    .condition_expression("#version = :previous")
                    .expression_attribute_names("#version", "version")
                    .expression_attribute_values(":version", number(last.version()))
                    .expression_attribute_values(":previous", number(first.version() - 1))
                    .expression_attribute_values(":at", string(at.to_rfc3339()));
                if let Some(balance) = balance {
                    set.push("balance = :balance");
                    update = update.expression_attribute_values(":balance", number(balance));
                }
                if let Some(status) = status {
                    set.push("#status = :status");
                    update = update
                        .expression_attribute_names("#status", "status")
                        .expression_attribute_values(":status", string(status.as_str()));
                }
                // The account as written comes back with the write, so the
                // caller caches it without a read of its own.
                let result = update.update_expression(format!("SET {}", set.join(", "))).return_values(ReturnValue::AllNew).send().await;
                match result {
                    Ok(output) => {
                        let item = output.attributes().ok_or_else(|| ReadModelError::Other("no attributes returned".into()))?;
                        Ok(Some(account_from_item(item)?))
                    }
                    Err(error) if is_condition_failure(&error) => Ok(None),
                    Err(error) => Err(map_sdk_error(error)),
                }
            }
        }
    }

    async fn account(&self, account_id: Uuid, consistent: bool) -> Result<Option<AccountView>, ReadModelError> {
        let output = self
            .client
            .get_item()
            .table_name(&self.tables.accounts)
            .key(schema::ACCOUNTS_KEY, string(account_id))
            .consistent_read(consistent)
            .send()
            .await
            .map_err(map_sdk_error)?;
        output.item.as_ref().map(account_from_item).transpose()
    }

    async fn accounts_of_owner(&self, owner_id: &str) -> Result<Vec<AccountView>, ReadModelError> {
        let mut accounts = Vec::new();
        let mut start = None;
        loop {
            let page = self
                .client
                .query()
                .table_name(&self.tables.accounts)
                .index_name(OWNER_INDEX)
                .key_condition_expression("owner_id = :owner")
                .expression_attribute_values(":owner", string(owner_id))
                .set_exclusive_start_key(start)
                .send()
                .await
                .map_err(map_sdk_error)?;
            for item in page.items() {
                accounts.push(account_from_item(item)?);
            }
            start = page.last_evaluated_key;
            if start.is_none() {
                break;
            }
        }
        accounts.sort_by_key(|a| a.account_id);
        Ok(accounts)
    }

    async fn transactions(
        &self,
        account_id: Uuid,
        limit: usize,
        before_version: Option<u64>,
        consistent: bool,
    ) -> Result<TransactionPage, ReadModelError> {
        let limit = limit.max(1);
        let mut query = self
            .client
            .query()
            .table_name(&self.tables.transactions)
            .expression_attribute_values(":account", string(account_id))
            .scan_index_forward(false)
            .consistent_read(consistent)
            // One more than asked tells whether there is a next page.
            .limit(i32::try_from(limit + 1).unwrap_or(i32::MAX));
        query = match before_version {
            Some(before) => query
                .key_condition_expression("account_id = :account AND #version < :before")
                .expression_attribute_names("#version", "version")
                .expression_attribute_values(":before", number(before)),
            None => query.key_condition_expression("account_id = :account"),
        };
        let output = query.send().await.map_err(map_sdk_error)?;
        let mut items = output.items().iter().map(transaction_from_item).collect::<Result<Vec<_>, _>>()?;
        let more = items.len() > limit;
        items.truncate(limit);
        let next_before_version = if more { items.last().map(|row| row.version) } else { None };
        Ok(TransactionPage { items, next_before_version })
    }

    async fn accounts(&self, ids: &[Uuid]) -> Result<Vec<AccountView>, ReadModelError> {
        // BatchGetItem refuses a key asked twice, takes 100 keys at a time,
        // and may leave some unprocessed (asked again).
        let mut ids = ids.to_vec();
        ids.sort();
        ids.dedup();
        let mut found = Vec::with_capacity(ids.len());
        for chunk in ids.chunks(100) {
            let keys = chunk.iter().map(|id| HashMap::from([(schema::ACCOUNTS_KEY.to_owned(), string(id))])).collect();
            let mut pending = Some(
                KeysAndAttributes::builder()
                    .set_keys(Some(keys))
                    .consistent_read(true)
                    .build()
                    .map_err(|e| ReadModelError::Other(e.to_string()))?,
            );
            let mut attempt = 0;
            while let Some(request) = pending.take() {
                back_off(&mut attempt).await?;
                let output =
                    self.client.batch_get_item().request_items(&self.tables.accounts, request).send().await.map_err(map_sdk_error)?;
                for item in output.responses.as_ref().and_then(|r| r.get(&self.tables.accounts)).into_iter().flatten() {
                    found.push(account_from_item(item)?);
                }
                pending = output.unprocessed_keys.and_then(|mut left| left.remove(&self.tables.accounts)).filter(|k| !k.keys().is_empty());
            }
        }
        found.sort_by_key(|a| a.account_id);
        Ok(found)
    }

    async fn replace(&self, view: &AccountView, rows: &[TransactionView]) -> Result<bool, ReadModelError> {
        let requests = rows
            .iter()
            .map(|row| {
                let put = PutRequest::builder()
                    .set_item(Some(transaction_item(view.account_id, row)))
                    .build()
                    .map_err(|e| ReadModelError::Other(e.to_string()))?;
                Ok(WriteRequest::builder().put_request(put).build())
            })
            .collect::<Result<Vec<_>, ReadModelError>>()?;
        self.batch_write(&self.tables.transactions, requests).await?;
        let written = self
            .client
            .put_item()
            .table_name(&self.tables.accounts)
            .set_item(Some(account_item(view)))
            .condition_expression("attribute_not_exists(account_id) OR #version <= :version")
            .expression_attribute_names("#version", "version")
            .expression_attribute_values(":version", number(view.version))
            .send()
            .await;
        match written {
            Ok(_) => Ok(true),
            Err(error) if is_condition_failure(&error) => Ok(false),
            Err(error) => Err(map_sdk_error(error)),
        }
    }
}

/// Creates both tables (on-demand billing) unless they exist, and waits
/// until they are active. Safe to run again.
pub async fn create_tables(client: &Client, tables: &TableNames) -> Result<(), ReadModelError> {
    let key = |name: &str, kind| KeySchemaElement::builder().attribute_name(name).key_type(kind).build().expect("complete");
    let attribute = |name: &str, kind| AttributeDefinition::builder().attribute_name(name).attribute_type(kind).build().expect("complete");
    let accounts = client
        .create_table()
        .table_name(&tables.accounts)
        .billing_mode(BillingMode::PayPerRequest)
        .attribute_definitions(attribute(schema::ACCOUNTS_KEY, ScalarAttributeType::S))
        .attribute_definitions(attribute(schema::OWNER_KEY, ScalarAttributeType::S))
        .key_schema(key(schema::ACCOUNTS_KEY, KeyType::Hash))
        .global_secondary_indexes(
            GlobalSecondaryIndex::builder()
                .index_name(OWNER_INDEX)
                .key_schema(key(schema::OWNER_KEY, KeyType::Hash))
                .projection(Projection::builder().projection_type(ProjectionType::All).build())
                .build()
                .expect("complete"),
        )
        .send()
        .await;
    ignore_existing(accounts)?;
    let transactions = client
        .create_table()
        .table_name(&tables.transactions)
        .billing_mode(BillingMode::PayPerRequest)
        .attribute_definitions(attribute(schema::TRANSACTIONS_PARTITION_KEY, ScalarAttributeType::S))
        .attribute_definitions(attribute(schema::TRANSACTIONS_SORT_KEY, ScalarAttributeType::N))
        .key_schema(key(schema::TRANSACTIONS_PARTITION_KEY, KeyType::Hash))
        .key_schema(key(schema::TRANSACTIONS_SORT_KEY, KeyType::Range))
        .send()
        .await;
    ignore_existing(transactions)?;
    for table in [&tables.accounts, &tables.transactions] {
        let deadline = tokio::time::Instant::now() + Duration::from_secs(120);
        loop {
            let described = client.describe_table().table_name(table).send().await.map_err(map_sdk_error)?;
            let active = described.table().and_then(|t| t.table_status()).is_some_and(|s| s.as_str() == "ACTIVE");
            if active {
                break;
            }
            if tokio::time::Instant::now() > deadline {
                return Err(ReadModelError::Unavailable(format!("table {table} did not become active")));
            }
            tokio::time::sleep(Duration::from_millis(500)).await;
        }
    }
    Ok(())
}

fn ignore_existing<T, E: ProvideErrorMetadata + std::error::Error + Send + Sync + 'static, R: std::fmt::Debug + Send + Sync + 'static>(
    result: Result<T, SdkError<E, R>>,
) -> Result<(), ReadModelError> {
    match result {
        Ok(_) => Ok(()),
        Err(error) if error.code() == Some("ResourceInUseException") => Ok(()),
        Err(error) => Err(map_sdk_error(error)),
    }
}

/// A conditional write's result: written, or refused by its condition.
fn conditional_write<T, E: ProvideErrorMetadata + std::error::Error + Send + Sync + 'static, R: std::fmt::Debug + Send + Sync + 'static>(
    result: Result<T, SdkError<E, R>>,
) -> Result<bool, ReadModelError> {
    match result {
        Ok(_) => Ok(true),
        Err(error) if is_condition_failure(&error) => Ok(false),
        Err(error) => Err(map_sdk_error(error)),
    }
}

fn is_condition_failure<E: ProvideErrorMetadata, R>(error: &SdkError<E, R>) -> bool {
    match error.code() {
        Some("ConditionalCheckFailedException") => true,
        // A cancelled transaction: its message lists a reason per item.
        Some("TransactionCanceledException") => error.message().is_some_and(|m| m.contains("ConditionalCheckFailed")),
        _ => false,
    }
}

/// Unreachable, throttled or failing service → `Unavailable` (retry later);
/// anything else is a bug or bad data.
fn map_sdk_error<E: ProvideErrorMetadata + std::error::Error + Send + Sync + 'static, R: std::fmt::Debug + Send + Sync + 'static>(
    error: SdkError<E, R>,
) -> ReadModelError {
    let retryable_codes = [
        "ProvisionedThroughputExceededException",
        "ThrottlingException",
        "RequestLimitExceeded",
        "InternalServerError",
        "ServiceUnavailable",
        "TransactionConflictException",
        "TransactionInProgressException",
    ];
    match &error {
        SdkError::DispatchFailure(_) | SdkError::TimeoutError(_) | SdkError::ResponseError(_) => {
            ReadModelError::Unavailable(format!("{}", aws_sdk_dynamodb::error::DisplayErrorContext(&error)))
        }
        _ if error.code().is_some_and(|code| retryable_codes.contains(&code)) => {
            ReadModelError::Unavailable(format!("{}", aws_sdk_dynamodb::error::DisplayErrorContext(&error)))
        }
        _ => ReadModelError::Other(format!("{}", aws_sdk_dynamodb::error::DisplayErrorContext(&error))),
    }
}

// ---- items ----

fn string(value: impl ToString) -> AttributeValue {
    AttributeValue::S(value.to_string())
}

fn number(value: impl ToString) -> AttributeValue {
    AttributeValue::N(value.to_string())
}

/// The DynamoDB item of an account view (tests write damaged items with it).
pub fn account_item(view: &AccountView) -> HashMap<String, AttributeValue> {
    HashMap::from([
        ("account_id".into(), string(view.account_id)),
        ("owner_id".into(), string(&view.owner_id)),
        ("currency".into(), string(&view.currency)),
        ("balance".into(), number(view.balance)),
        ("overdraft_limit".into(), number(view.overdraft_limit)),
        ("status".into(), string(&view.status)),
        ("version".into(), number(view.version)),
        ("updated_at".into(), string(view.updated_at.to_rfc3339())),
    ])
}

fn transaction_item(account_id: Uuid, row: &TransactionView) -> HashMap<String, AttributeValue> {
    let mut item = HashMap::from([
        ("account_id".into(), string(account_id)),
        ("version".into(), number(row.version)),
        ("kind".into(), string(row.kind.as_str())),
        ("amount".into(), number(row.amount)),
        ("balance_after".into(), number(row.balance_after)),
        ("occurred_at".into(), string(row.occurred_at.to_rfc3339())),
    ]);
    if let Some(id) = row.counterparty_account_id {
        item.insert("counterparty_account_id".into(), string(id));
    }
    if let Some(id) = row.transfer_id {
        item.insert("transfer_id".into(), string(id));
    }
    if let Some(reference) = &row.reference {
        item.insert("reference".into(), string(reference));
    }
    item
}

type Item = HashMap<String, AttributeValue>;

fn text<'a>(item: &'a Item, name: &str) -> Result<&'a str, ReadModelError> {
    match item.get(name) {
        Some(AttributeValue::S(value)) => Ok(value),
        _ => Err(ReadModelError::Corrupt(format!("attribute {name} is missing or not a string"))),
    }
}

fn optional_text<'a>(item: &'a Item, name: &str) -> Option<&'a str> {
    match item.get(name) {
        Some(AttributeValue::S(value)) => Some(value),
        _ => None,
    }
}

fn parsed<T: std::str::FromStr>(item: &Item, name: &str) -> Result<T, ReadModelError> {
    let raw = match item.get(name) {
        Some(AttributeValue::N(value)) | Some(AttributeValue::S(value)) => value,
        _ => {
            return Err(ReadModelError::Corrupt(format!("attribute {name} is missing")));
        }
    };
    raw.parse().map_err(|_| ReadModelError::Corrupt(format!("attribute {name} = {raw:?} does not parse")))
}

fn time(item: &Item, name: &str) -> Result<DateTime<Utc>, ReadModelError> {
    let raw = text(item, name)?;
    DateTime::parse_from_rfc3339(raw).map(|t| t.with_timezone(&Utc)).map_err(|_| ReadModelError::Corrupt(format!("{name} = {raw:?}")))
}

fn account_from_item(item: &Item) -> Result<AccountView, ReadModelError> {
    Ok(AccountView {
        account_id: parsed(item, "account_id")?,
        owner_id: text(item, "owner_id")?.to_owned(),
        currency: text(item, "currency")?.to_owned(),
        balance: parsed(item, "balance")?,
        overdraft_limit: parsed(item, "overdraft_limit")?,
        status: text(item, "status")?.to_owned(),
        version: parsed(item, "version")?,
        updated_at: time(item, "updated_at")?,
    })
}

fn transaction_from_item(item: &Item) -> Result<TransactionView, ReadModelError> {
    let kind = text(item, "kind")?;
    Ok(TransactionView {
        version: parsed(item, "version")?,
        kind: TransactionKind::parse(kind).ok_or_else(|| ReadModelError::Corrupt(format!("kind {kind:?}")))?,
        amount: parsed(item, "amount")?,
        balance_after: parsed(item, "balance_after")?,
        counterparty_account_id: optional_text(item, "counterparty_account_id").and_then(|s| s.parse().ok()),
        transfer_id: optional_text(item, "transfer_id").and_then(|s| s.parse().ok()),
        reference: optional_text(item, "reference").map(str::to_owned),
        occurred_at: time(item, "occurred_at")?,
    })
}
