//! Table names and their shapes: the one definition the code, the test
//! services and `template.yaml` share (a test checks the template agrees).

/// The owner index on the accounts table.
pub const OWNER_INDEX: &str = "owner_id-index";

/// The time index on the transactions table (a local secondary index:
/// strongly consistent reads, same partition).
pub const OCCURRED_INDEX: &str = "occurred-index";

/// The sparse indexes of history rows by transfer and by entry, on the
/// transactions table (only rows naming one are in each).
pub const TRANSFER_INDEX: &str = "transfer_id-index";
pub const ENTRY_INDEX: &str = "entry_id-index";

/// The sparse index of active holds by expiry on the holds table.
pub const EXPIRING_INDEX: &str = "expiring-index";

/// Names of the read-model tables, from `LEDGERLINE_ACCOUNTS_TABLE`,
/// `LEDGERLINE_TRANSACTIONS_TABLE` and `LEDGERLINE_HOLDS_TABLE`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TableNames {
    pub accounts: String,
    pub transactions: String,
    pub holds: String,
}

impl Default for TableNames {
    fn default() -> Self {
        Self { accounts: "ledgerline-accounts".into(), transactions: "ledgerline-transactions".into(), holds: "ledgerline-holds".into() }
    }
}

impl TableNames {
    pub fn from_env() -> Self {
        Self::read(&crate::config::Env::process())
    }

    pub fn read(env: &crate::config::Env) -> Self {
        let defaults = Self::default();
        Self {
            accounts: env.text("LEDGERLINE_ACCOUNTS_TABLE").unwrap_or(defaults.accounts),
            transactions: env.text("LEDGERLINE_TRANSACTIONS_TABLE").unwrap_or(defaults.transactions),
            holds: env.text("LEDGERLINE_HOLDS_TABLE").unwrap_or(defaults.holds),
        }
    }

    /// Names with a prefix, so tests can each have their own tables.
    pub fn prefixed(prefix: &str) -> Self {
        let defaults = Self::default();
        Self {
            accounts: format!("{prefix}-{}", defaults.accounts),
            transactions: format!("{prefix}-{}", defaults.transactions),
            holds: format!("{prefix}-{}", defaults.holds),
        }
    }
}

/// The key schema, as (table, partition key, sort key, index) facts. Both
/// [`super::dynamo::create_tables`] and the template test read these.
pub mod schema {
    /// Accounts: partition key `account_id` (S); index `owner_id-index` on `owner_id` (S), all attributes.
    pub const ACCOUNTS_KEY: &str = "account_id";
    pub const OWNER_KEY: &str = "owner_id";
    /// Transactions: partition key `account_id` (S), sort key `version` (N).
    pub const TRANSACTIONS_PARTITION_KEY: &str = "account_id";
    pub const TRANSACTIONS_SORT_KEY: &str = "version";
    /// Transactions' time index `occurred-index`: same partition key, sort
    /// key `occurred_ns` (N, nanoseconds since 1970), projecting the keys and
    /// `balance_after`: where a statement opens and closes.
    pub const OCCURRED_KEY: &str = "occurred_ns";
    pub const OCCURRED_INDEX_ATTRIBUTE: &str = "balance_after";
    /// Transactions' sparse global indexes `transfer_id-index` on
    /// `transfer_id` (S) and `entry_id-index` on `entry_id` (S), all
    /// attributes: a transfer's or an entry's legs on every account.
    pub const TRANSFER_KEY: &str = "transfer_id";
    pub const ENTRY_KEY: &str = "entry_id";
    /// Holds: partition key `account_id` (S), sort key `hold_id` (S); index
    /// `expiring-index` on `expiring` (S, present only while the hold is
    /// active, always "active") and `expires_at` (S, RFC 3339 in UTC with
    /// microseconds, so text order is time order), keys only.
    pub const HOLDS_PARTITION_KEY: &str = "account_id";
    pub const HOLDS_SORT_KEY: &str = "hold_id";
    pub const EXPIRING_KEY: &str = "expiring";
    pub const EXPIRES_KEY: &str = "expires_at";
}
