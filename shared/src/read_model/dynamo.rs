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
//! Holds: the account item keeps its active holds as attributes of their
//! own (`hold:<id>`, a map of amount and expiry), set and removed by the
//! same conditional write that moves the version, so `held` is read with
//! the account. Each hold also has an item in the holds table, written
//! before the account (like history rows) and conditional on its own
//! `version`, so a hold never goes back to an older state whatever order
//! duplicates arrive in.
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
    AttributeDefinition, AttributeValue, BillingMode, GlobalSecondaryIndex, KeySchemaElement, KeyType, KeysAndAttributes,
    LocalSecondaryIndex, Projection, ProjectionType, Put, PutRequest, ReturnValue, ScalarAttributeType, TransactWriteItem, Update,
    WriteRequest,
};
use chrono::{DateTime, Utc};
use uuid::Uuid;

use super::tables::{ENTRY_INDEX, EXPIRING_INDEX, OCCURRED_INDEX, OWNER_INDEX, TRANSFER_INDEX, TableNames, schema};
use super::{
    AccountUpdate, AccountView, ActiveHold, ApplyOutcome, BalanceMark, Change, HoldChange, HoldFilter, HoldPage, HoldView, MovementId,
    ReadModelError, ReadModelStore, TransactionKind, TransactionPage, TransactionView,
};
use crate::config::{ConfigError, Env};
use crate::domain::HoldStatus;
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

    /// Writes one hold change to the holds table unless the stored hold is
    /// at its version or newer (an end of a hold not stored is skipped).
    async fn write_hold(&self, account_id: Uuid, change: &HoldChange) -> Result<(), ReadModelError> {
        match change {
            HoldChange::Placed(hold) => {
                let result = self
                    .client
                    .put_item()
                    .table_name(&self.tables.holds)
                    .set_item(Some(hold_item(hold)))
                    .condition_expression("attribute_not_exists(#version) OR #version < :version")
                    .expression_attribute_names("#version", "version")
                    .expression_attribute_values(":version", number(hold.version))
                    .send()
                    .await;
                conditional_write(result).map(|_| ())
            }
            HoldChange::Ended { hold_id, version, end } => {
                let mut set = vec!["#status = :status", "released = :released", "ended_at = :ended_at", "#version = :version"];
                let mut update = self
                    .client
                    .update_item()
                    .table_name(&self.tables.holds)
                    .key(schema::HOLDS_PARTITION_KEY, string(account_id))
                    .key(schema::HOLDS_SORT_KEY, string(hold_id))
                    .condition_expression("attribute_exists(#version) AND #version < :version")
                    .expression_attribute_names("#version", "version")
                    .expression_attribute_names("#status", "status")
                    .expression_attribute_names("#expiring", schema::EXPIRING_KEY)
                    .expression_attribute_values(":status", string(end.status.as_str()))
                    .expression_attribute_values(":released", number(end.released))
                    .expression_attribute_values(":ended_at", string(instant(end.at)))
                    .expression_attribute_values(":version", number(*version));
                if let Some(captured) = end.captured {
                    set.push("captured = :captured");
                    update = update.expression_attribute_values(":captured", number(captured));
                }
                if let (Some(transfer), Some(to)) = (end.transfer_id, end.to_account_id) {
                    set.push("transfer_id = :transfer");
                    set.push("to_account_id = :to");
                    update =
                        update.expression_attribute_values(":transfer", string(transfer)).expression_attribute_values(":to", string(to));
                }
                let result = update.update_expression(format!("SET {} REMOVE #expiring", set.join(", "))).send().await;
                conditional_write(result).map(|_| ())
            }
        }
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
            Change::Update { version, at, update, transaction, hold, .. } => {
                if let Some(hold) = hold {
                    self.write_hold(account_id, hold).await?;
                }
                let (set, name, value) = match update {
                    AccountUpdate::Balance(balance) => ("balance = :value, ", None, Some(number(*balance))),
                    AccountUpdate::Status(status) => ("#status = :value, ", Some(("#status", "status")), Some(string(status.as_str()))),
                    AccountUpdate::VersionOnly => ("", None, None),
                };
                // The account's own copy of its active holds.
                let (hold_set, hold_remove) = match hold {
                    Some(HoldChange::Placed(_)) => (", #hold = :hold", ""),
                    Some(HoldChange::Ended { .. }) => ("", " REMOVE #hold"),
                    None => ("", ""),
                };
                let mut builder = Update::builder()
                    .table_name(&self.tables.accounts)
                    .key(schema::ACCOUNTS_KEY, string(account_id))
                    .update_expression(format!("SET {set}#version = :version, updated_at = :at{hold_set}{hold_remove}"))
                    .condition_expression("#version = :previous")
                    .expression_attribute_names("#version", "version")
                    .expression_attribute_values(":version", number(*version))
                    .expression_attribute_values(":previous", number(version - 1))
                    .expression_attribute_values(":at", string(at.to_rfc3339()));
                if let Some(value) = value {
                    builder = builder.expression_attribute_values(":value", value);
                }
                if let Some((placeholder, attribute)) = name {
                    builder = builder.expression_attribute_names(placeholder, attribute);
                }
                if let Some(hold) = hold {
                    builder = builder.expression_attribute_names("#hold", hold_attribute(hold.hold_id()));
                    if let HoldChange::Placed(hold) = hold {
                        builder = builder.expression_attribute_values(":hold", active_hold_value(hold.amount, hold.expires_at));
                    }
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
        // The holds, one conditional write each (their content changes).
        for change in changes {
            if let Change::Update { hold: Some(hold), .. } = change {
                self.write_hold(account_id, hold).await?;
            }
        }
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
                // Each attribute takes its last value in the run; a hold
                // placed and ended within it touches nothing.
                let (mut balance, mut status) = (None, None);
                let (mut placed, mut ended): (Vec<ActiveHold>, Vec<Uuid>) = (Vec::new(), Vec::new());
                for change in changes {
                    let Change::Update { update, hold, .. } = change else { return Ok(None) }; // a second opening is not a run
                    match update {
                        AccountUpdate::Balance(b) => balance = Some(*b),
                        AccountUpdate::Status(s) => status = Some(*s),
                        AccountUpdate::VersionOnly => {}
                    }
                    match hold {
                        Some(HoldChange::Placed(h)) => {
                            placed.push(ActiveHold { hold_id: h.hold_id, amount: h.amount, expires_at: h.expires_at })
                        }
                        Some(HoldChange::Ended { hold_id, .. }) => {
                            let before = placed.len();
                            placed.retain(|h| h.hold_id != *hold_id);
                            if placed.len() == before {
                                ended.push(*hold_id);
                            }
                        }
                        None => {}
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
                let mut assignments = Vec::new();
                for (n, hold) in placed.iter().enumerate() {
                    assignments.push(format!("#placed{n} = :placed{n}"));
                    update = update
                        .expression_attribute_names(format!("#placed{n}"), hold_attribute(hold.hold_id))
                        .expression_attribute_values(format!(":placed{n}"), active_hold_value(hold.amount, hold.expires_at));
                }
                let mut removals = Vec::new();
                for (n, hold_id) in ended.iter().enumerate() {
                    removals.push(format!("#ended{n}"));
                    update = update.expression_attribute_names(format!("#ended{n}"), hold_attribute(*hold_id));
                }
                let mut expression = format!("SET {}", set.iter().map(|s| s.to_string()).chain(assignments).collect::<Vec<_>>().join(", "));
                if !removals.is_empty() {
                    expression.push_str(&format!(" REMOVE {}", removals.join(", ")));
                }
                // The account as written comes back with the write, so the
                // caller caches it without a read of its own.
                let result = update.update_expression(expression).return_values(ReturnValue::AllNew).send().await;
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

    async fn last_movement_before(
        &self,
        account_id: Uuid,
        before: DateTime<Utc>,
        consistent: bool,
    ) -> Result<Option<BalanceMark>, ReadModelError> {
        let output = self
            .client
            .query()
            .table_name(&self.tables.transactions)
            .index_name(OCCURRED_INDEX)
            .key_condition_expression("account_id = :account AND #occurred < :before")
            .expression_attribute_names("#occurred", schema::OCCURRED_KEY)
            .expression_attribute_values(":account", string(account_id))
            .expression_attribute_values(":before", number(occurred_ns(before)))
            .scan_index_forward(false)
            .consistent_read(consistent)
            .limit(1)
            .send()
            .await
            .map_err(map_sdk_error)?;
        output
            .items()
            .first()
            .map(|item| Ok(BalanceMark { version: parsed(item, "version")?, balance: parsed(item, schema::OCCURRED_INDEX_ATTRIBUTE)? }))
            .transpose()
    }

    async fn movements_between(
        &self,
        account_id: Uuid,
        after_version: u64,
        up_to_version: u64,
        limit: usize,
        consistent: bool,
    ) -> Result<Vec<TransactionView>, ReadModelError> {
        if after_version >= up_to_version || limit == 0 {
            return Ok(vec![]);
        }
        let output = self
            .client
            .query()
            .table_name(&self.tables.transactions)
            .key_condition_expression("account_id = :account AND #version BETWEEN :first AND :last")
            .expression_attribute_names("#version", "version")
            .expression_attribute_values(":account", string(account_id))
            .expression_attribute_values(":first", number(after_version + 1))
            .expression_attribute_values(":last", number(up_to_version))
            .scan_index_forward(true)
            .consistent_read(consistent)
            .limit(i32::try_from(limit).unwrap_or(i32::MAX))
            .send()
            .await
            .map_err(map_sdk_error)?;
        output.items().iter().map(transaction_from_item).collect()
    }

    async fn movements_of(&self, id: MovementId) -> Result<Vec<(Uuid, TransactionView)>, ReadModelError> {
        let (index, key, value) = match id {
            MovementId::Transfer(id) => (TRANSFER_INDEX, schema::TRANSFER_KEY, id),
            MovementId::Entry(id) => (ENTRY_INDEX, schema::ENTRY_KEY, id),
        };
        // At most 16 legs (an entry), so one page holds them all.
        let output = self
            .client
            .query()
            .table_name(&self.tables.transactions)
            .index_name(index)
            .key_condition_expression("#id = :id")
            .expression_attribute_names("#id", key)
            .expression_attribute_values(":id", string(value))
            .send()
            .await
            .map_err(map_sdk_error)?;
        let mut found = output
            .items()
            .iter()
            .map(|item| Ok((parsed(item, "account_id")?, transaction_from_item(item)?)))
            .collect::<Result<Vec<_>, ReadModelError>>()?;
        found.sort_by_key(|(account, row)| (*account, row.version));
        Ok(found)
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

    async fn replace(&self, view: &AccountView, rows: &[TransactionView], holds: &[HoldChange]) -> Result<bool, ReadModelError> {
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
        for hold in holds {
            self.write_hold(view.account_id, hold).await?;
        }
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

    async fn hold(&self, account_id: Uuid, hold_id: Uuid, consistent: bool) -> Result<Option<HoldView>, ReadModelError> {
        let output = self
            .client
            .get_item()
            .table_name(&self.tables.holds)
            .key(schema::HOLDS_PARTITION_KEY, string(account_id))
            .key(schema::HOLDS_SORT_KEY, string(hold_id))
            .consistent_read(consistent)
            .send()
            .await
            .map_err(map_sdk_error)?;
        output.item.as_ref().map(hold_from_item).transpose()
    }

    async fn holds(
        &self,
        account_id: Uuid,
        filter: HoldFilter,
        limit: usize,
        before: Option<Uuid>,
        consistent: bool,
    ) -> Result<HoldPage, ReadModelError> {
        // A filter is applied after DynamoDB's own limit, so a page may
        // come back short: read on until `limit + 1` match (one more tells
        // whether there is a next page), or a bounded number of rounds
        // (then the page ends where the reading stopped).
        const ROUNDS: usize = 20;
        let limit = limit.max(1);
        let mut items = Vec::new();
        let mut start = None;
        let mut last_read = before;
        for _ in 0..ROUNDS {
            let mut query = self
                .client
                .query()
                .table_name(&self.tables.holds)
                .expression_attribute_values(":account", string(account_id))
                .scan_index_forward(false)
                .consistent_read(consistent)
                .limit(i32::try_from(limit + 1).unwrap_or(i32::MAX))
                .set_exclusive_start_key(start.take());
            query = match before {
                Some(before) => query
                    .key_condition_expression("account_id = :account AND hold_id < :before")
                    .expression_attribute_values(":before", string(before)),
                None => query.key_condition_expression("account_id = :account"),
            };
            if let Some(status) = filter.status {
                let now = string(instant(filter.at));
                query = query.expression_attribute_names("#status", "status");
                query = match status {
                    HoldStatus::Active => query
                        .filter_expression("#status = :active AND expires_at > :now")
                        .expression_attribute_values(":active", string(HoldStatus::Active.as_str()))
                        .expression_attribute_values(":now", now),
                    HoldStatus::Expired => query
                        .filter_expression("#status = :expired OR (#status = :active AND expires_at <= :now)")
                        .expression_attribute_values(":active", string(HoldStatus::Active.as_str()))
                        .expression_attribute_values(":expired", string(HoldStatus::Expired.as_str()))
                        .expression_attribute_values(":now", now),
                    ended => query.filter_expression("#status = :status").expression_attribute_values(":status", string(ended.as_str())),
                };
            }
            let output = query.send().await.map_err(map_sdk_error)?;
            for item in output.items() {
                items.push(hold_from_item(item)?);
            }
            start = output.last_evaluated_key;
            if let Some(key) = &start {
                last_read = key.get(schema::HOLDS_SORT_KEY).and_then(|v| v.as_s().ok()).and_then(|s| s.parse().ok());
            }
            if items.len() > limit || start.is_none() {
                break;
            }
        }
        let more = items.len() > limit || start.is_some();
        items.truncate(limit);
        let next_before = match (more, items.len() == limit) {
            (false, _) => None,
            (true, true) => items.last().map(|h| h.hold_id),
            (true, false) => last_read, // stopped reading before the page filled
        };
        Ok(HoldPage { items, next_before })
    }

    async fn due_holds(&self, at: DateTime<Utc>, limit: usize) -> Result<Vec<(Uuid, Uuid)>, ReadModelError> {
        let output = self
            .client
            .query()
            .table_name(&self.tables.holds)
            .index_name(EXPIRING_INDEX)
            .key_condition_expression("#expiring = :active AND expires_at <= :now")
            .expression_attribute_names("#expiring", schema::EXPIRING_KEY)
            .expression_attribute_values(":active", string(HoldStatus::Active.as_str()))
            .expression_attribute_values(":now", string(instant(at)))
            .limit(i32::try_from(limit.max(1)).unwrap_or(i32::MAX))
            .send()
            .await
            .map_err(map_sdk_error)?;
        output.items().iter().map(|item| Ok((parsed(item, "account_id")?, parsed(item, "hold_id")?))).collect()
    }
}

/// Creates the three tables (on-demand billing) unless they exist, and waits
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
        .attribute_definitions(attribute(schema::OCCURRED_KEY, ScalarAttributeType::N))
        .attribute_definitions(attribute(schema::TRANSFER_KEY, ScalarAttributeType::S))
        .attribute_definitions(attribute(schema::ENTRY_KEY, ScalarAttributeType::S))
        .key_schema(key(schema::TRANSACTIONS_PARTITION_KEY, KeyType::Hash))
        .key_schema(key(schema::TRANSACTIONS_SORT_KEY, KeyType::Range))
        .local_secondary_indexes(
            LocalSecondaryIndex::builder()
                .index_name(OCCURRED_INDEX)
                .key_schema(key(schema::TRANSACTIONS_PARTITION_KEY, KeyType::Hash))
                .key_schema(key(schema::OCCURRED_KEY, KeyType::Range))
                .projection(
                    Projection::builder()
                        .projection_type(ProjectionType::Include)
                        .non_key_attributes(schema::OCCURRED_INDEX_ATTRIBUTE)
                        .build(),
                )
                .build()
                .expect("complete"),
        )
        .global_secondary_indexes(
            GlobalSecondaryIndex::builder()
                .index_name(TRANSFER_INDEX)
                .key_schema(key(schema::TRANSFER_KEY, KeyType::Hash))
                .projection(Projection::builder().projection_type(ProjectionType::All).build())
                .build()
                .expect("complete"),
        )
        .global_secondary_indexes(
            GlobalSecondaryIndex::builder()
                .index_name(ENTRY_INDEX)
                .key_schema(key(schema::ENTRY_KEY, KeyType::Hash))
                .projection(Projection::builder().projection_type(ProjectionType::All).build())
                .build()
                .expect("complete"),
        )
        .send()
        .await;
    ignore_existing(transactions)?;
    let holds = client
        .create_table()
        .table_name(&tables.holds)
        .billing_mode(BillingMode::PayPerRequest)
        .attribute_definitions(attribute(schema::HOLDS_PARTITION_KEY, ScalarAttributeType::S))
        .attribute_definitions(attribute(schema::HOLDS_SORT_KEY, ScalarAttributeType::S))
        .attribute_definitions(attribute(schema::EXPIRING_KEY, ScalarAttributeType::S))
        .attribute_definitions(attribute(schema::EXPIRES_KEY, ScalarAttributeType::S))
        .key_schema(key(schema::HOLDS_PARTITION_KEY, KeyType::Hash))
        .key_schema(key(schema::HOLDS_SORT_KEY, KeyType::Range))
        .global_secondary_indexes(
            GlobalSecondaryIndex::builder()
                .index_name(EXPIRING_INDEX)
                .key_schema(key(schema::EXPIRING_KEY, KeyType::Hash))
                .key_schema(key(schema::EXPIRES_KEY, KeyType::Range))
                .projection(Projection::builder().projection_type(ProjectionType::KeysOnly).build())
                .build()
                .expect("complete"),
        )
        .send()
        .await;
    ignore_existing(holds)?;
    for table in [&tables.accounts, &tables.transactions, &tables.holds] {
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

/// A moment as the holds table stores it: RFC 3339 in UTC with
/// microseconds, always the same width, so text order is time order (the
/// expiry index and the status filters compare them as text).
fn instant(at: DateTime<Utc>) -> String {
    at.to_rfc3339_opts(chrono::SecondsFormat::Micros, true)
}

const HOLD_PREFIX: &str = "hold:";

/// The account item's attribute for one of its active holds.
fn hold_attribute(hold_id: Uuid) -> String {
    format!("{HOLD_PREFIX}{hold_id}")
}

fn active_hold_value(amount: i64, expires_at: DateTime<Utc>) -> AttributeValue {
    AttributeValue::M(HashMap::from([("amount".into(), number(amount)), ("expires_at".into(), string(instant(expires_at)))]))
}

/// The DynamoDB item of an account view (tests write damaged items with it).
pub fn account_item(view: &AccountView) -> HashMap<String, AttributeValue> {
    let mut item = HashMap::from([
        ("account_id".into(), string(view.account_id)),
        ("owner_id".into(), string(&view.owner_id)),
        ("currency".into(), string(&view.currency)),
        ("balance".into(), number(view.balance)),
        ("overdraft_limit".into(), number(view.overdraft_limit)),
        ("status".into(), string(&view.status)),
        ("version".into(), number(view.version)),
        ("updated_at".into(), string(view.updated_at.to_rfc3339())),
    ]);
    for hold in &view.holds {
        item.insert(hold_attribute(hold.hold_id), active_hold_value(hold.amount, hold.expires_at));
    }
    item
}

fn hold_item(hold: &HoldView) -> HashMap<String, AttributeValue> {
    let mut item = HashMap::from([
        ("account_id".into(), string(hold.account_id)),
        ("hold_id".into(), string(hold.hold_id)),
        ("amount".into(), number(hold.amount)),
        ("status".into(), string(hold.status.as_str())),
        ("placed_at".into(), string(instant(hold.placed_at))),
        ("expires_at".into(), string(instant(hold.expires_at))),
        ("version".into(), number(hold.version)),
    ]);
    if hold.status == HoldStatus::Active {
        item.insert(schema::EXPIRING_KEY.into(), string(HoldStatus::Active.as_str()));
    }
    let optional = [
        ("reference", hold.reference.as_ref().map(string)),
        ("captured", hold.captured.map(number)),
        ("released", hold.released.map(number)),
        ("ended_at", hold.ended_at.map(|t| string(instant(t)))),
        ("transfer_id", hold.transfer_id.map(string)),
        ("to_account_id", hold.to_account_id.map(string)),
    ];
    item.extend(optional.into_iter().filter_map(|(name, value)| Some((name.to_owned(), value?))));
    item
}

/// A moment as the time index orders it: nanoseconds since 1970 (the
/// range a `DateTime` can take in nanoseconds covers 1677 to 2262).
fn occurred_ns(at: DateTime<Utc>) -> i64 {
    at.timestamp_nanos_opt().unwrap_or(if at.timestamp() < 0 { i64::MIN } else { i64::MAX })
}

fn transaction_item(account_id: Uuid, row: &TransactionView) -> HashMap<String, AttributeValue> {
    let mut item = HashMap::from([
        ("account_id".into(), string(account_id)),
        ("version".into(), number(row.version)),
        ("kind".into(), string(row.kind.as_str())),
        ("amount".into(), number(row.amount)),
        ("balance_after".into(), number(row.balance_after)),
        ("occurred_at".into(), string(row.occurred_at.to_rfc3339())),
        (schema::OCCURRED_KEY.into(), number(occurred_ns(row.occurred_at))),
    ]);
    if let Some(id) = row.counterparty_account_id {
        item.insert("counterparty_account_id".into(), string(id));
    }
    if let Some(id) = row.transfer_id {
        item.insert("transfer_id".into(), string(id));
    }
    if let Some(id) = row.entry_id {
        item.insert("entry_id".into(), string(id));
    }
    if let Some(id) = row.hold_id {
        item.insert("hold_id".into(), string(id));
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
        holds: active_holds(item)?,
    })
}

fn active_holds(item: &Item) -> Result<Vec<ActiveHold>, ReadModelError> {
    let mut holds = item
        .iter()
        .filter_map(|(name, value)| Some((name.strip_prefix(HOLD_PREFIX)?, value)))
        .map(|(id, value)| {
            let AttributeValue::M(fields) = value else { return Err(ReadModelError::Corrupt(format!("hold {id} is not a map"))) };
            Ok(ActiveHold {
                hold_id: id.parse().map_err(|_| ReadModelError::Corrupt(format!("hold id {id:?}")))?,
                amount: parsed(fields, "amount")?,
                expires_at: time(fields, "expires_at")?,
            })
        })
        .collect::<Result<Vec<_>, _>>()?;
    // Hold ids are time-ordered: this is the order they were placed in.
    holds.sort_by_key(|h| h.hold_id);
    Ok(holds)
}

fn hold_from_item(item: &Item) -> Result<HoldView, ReadModelError> {
    let status = text(item, "status")?;
    let optional_time = |name: &str| item.get(name).map(|_| time(item, name)).transpose();
    Ok(HoldView {
        account_id: parsed(item, "account_id")?,
        hold_id: parsed(item, "hold_id")?,
        amount: parsed(item, "amount")?,
        status: HoldStatus::parse(status).ok_or_else(|| ReadModelError::Corrupt(format!("hold status {status:?}")))?,
        reference: optional_text(item, "reference").map(str::to_owned),
        placed_at: time(item, "placed_at")?,
        expires_at: time(item, "expires_at")?,
        captured: item.get("captured").map(|_| parsed(item, "captured")).transpose()?,
        released: item.get("released").map(|_| parsed(item, "released")).transpose()?,
        ended_at: optional_time("ended_at")?,
        transfer_id: optional_text(item, "transfer_id").and_then(|s| s.parse().ok()),
        to_account_id: optional_text(item, "to_account_id").and_then(|s| s.parse().ok()),
        version: parsed(item, "version")?,
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
        hold_id: optional_text(item, "hold_id").and_then(|s| s.parse().ok()),
        entry_id: optional_text(item, "entry_id").and_then(|s| s.parse().ok()),
        reference: optional_text(item, "reference").map(str::to_owned),
        occurred_at: time(item, "occurred_at")?,
    })
}
