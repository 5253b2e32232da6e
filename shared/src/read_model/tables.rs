//! Table names and their shapes: the one definition the code, the test
//! services and `template.yaml` share (a test checks the template agrees).

/// The owner index on the accounts table.
pub const OWNER_INDEX: &str = "owner_id-index";

/// Names of the read-model tables, from `LEDGERLINE_ACCOUNTS_TABLE` and
/// `LEDGERLINE_TRANSACTIONS_TABLE`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TableNames {
    pub accounts: String,
    pub transactions: String,
}

impl Default for TableNames {
    fn default() -> Self {
        Self { accounts: "ledgerline-accounts".into(), transactions: "ledgerline-transactions".into() }
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
        }
    }

    /// Names with a prefix, so tests can each have their own tables.
    pub fn prefixed(prefix: &str) -> Self {
        let defaults = Self::default();
        Self { accounts: format!("{prefix}-{}", defaults.accounts), transactions: format!("{prefix}-{}", defaults.transactions) }
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
}
