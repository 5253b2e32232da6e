//! The Redis cache of account views (the query API's L2).
//!
//! One hash per account, `ledgerline:account:{id}`, with two fields: `v`
//! (the version, a number Lua can compare) and `d` (the bincode-encoded
//! [`AccountView`]), and a TTL. Writes go through a small Lua script that
//! stores the view only if it is newer than what Redis holds, atomically, so
//! a late or replayed event (or a slow reader filling the cache) never
//! overwrites fresher data.
//!
//! The cache is an optimisation: every call has a short timeout, and a
//! Redis that is down is an error the caller logs and steps around. The
//! connection is made lazily and re-made after a failure.

use std::time::Duration;

use redis::aio::{ConnectionManager, ConnectionManagerConfig};
use redis::{AsyncCommands, Script};
use thiserror::Error;
use tokio::sync::Mutex;
use uuid::Uuid;

use crate::config::{ConfigError, Env, defaults};
use crate::event_store::bincode_config;
use crate::read_model::AccountView;

const KEY_PREFIX: &str = "ledgerline:account:";

/// Stores ARGV[2] under version ARGV[1] unless a newer or equal version is
/// there; returns 1 when it wrote. What the projector and readers use.
const PUT_IF_NEWER: &str = r"
local current = redis.call('HGET', KEYS[1], 'v')
if current and tonumber(current) >= tonumber(ARGV[1]) then
  return 0
end
redis.call('HSET', KEYS[1], 'v', ARGV[1], 'd', ARGV[2])
redis.call('PEXPIRE', KEYS[1], ARGV[3])
return 1
";

/// Stores ARGV[2] under version ARGV[1] unless a strictly newer version is
/// there (an equal one is overwritten); returns 1 when it wrote. What a
/// rebuild uses: it corrects content at the same version, and the view it
/// leaves is the one a stale writer at that version can then no longer
/// replace (`PUT_IF_NEWER` refuses an equal version).
const PUT_UNLESS_NEWER: &str = r"
local current = redis.call('HGET', KEYS[1], 'v')
if current and tonumber(current) > tonumber(ARGV[1]) then
  return 0
end
redis.call('HSET', KEYS[1], 'v', ARGV[1], 'd', ARGV[2])
redis.call('PEXPIRE', KEYS[1], ARGV[3])
return 1
";

#[derive(Debug, Error)]
pub enum CacheError {
    #[error("cache unavailable: {0}")]
    Unavailable(String),
    #[error("cache timed out after {0:?}")]
    Timeout(Duration),
}

#[derive(Debug, Clone)]
pub struct CacheSettings {
    /// `REDIS_URL`, default [`defaults::REDIS_URL`].
    pub url: String,
    /// `LEDGERLINE_CACHE_TTL_SECONDS`, default 300.
    pub ttl: Duration,
    /// `LEDGERLINE_REDIS_TIMEOUT_MS`, default [`defaults::REDIS_TIMEOUT_MS`]:
    /// a cache slower than this is skipped.
    pub timeout: Duration,
}

impl CacheSettings {
    pub fn from_env() -> Result<Self, ConfigError> {
        Self::read(&Env::process())
    }

    pub fn read(env: &Env) -> Result<Self, ConfigError> {
        Ok(Self {
            url: env.text_or("REDIS_URL", defaults::REDIS_URL),
            ttl: Duration::from_secs(env.number("LEDGERLINE_CACHE_TTL_SECONDS", 300, |n: &u64| (1..=86_400 * 30).contains(n))?),
            timeout: env.millis("LEDGERLINE_REDIS_TIMEOUT_MS", defaults::REDIS_TIMEOUT_MS, |n| (1..=60_000).contains(n))?,
        })
    }
}

pub struct AccountCache {
    client: redis::Client,
    settings: CacheSettings,
    connection: Mutex<Option<ConnectionManager>>,
    put_if_newer: Script,
    put_unless_newer: Script,
    /// Prefixes keys, so tests can share one Redis.
    namespace: String,
}

impl AccountCache {
    /// Checks the URL only; the connection is made on first use.
    pub fn new(settings: CacheSettings) -> Result<Self, CacheError> {
        Self::with_namespace(settings, "")
    }

    pub fn with_namespace(settings: CacheSettings, namespace: &str) -> Result<Self, CacheError> {
        let client = redis::Client::open(settings.url.as_str()).map_err(|e| CacheError::Unavailable(e.to_string()))?;
        Ok(Self {
            client,
            settings,
            connection: Mutex::new(None),
            put_if_newer: Script::new(PUT_IF_NEWER),
            put_unless_newer: Script::new(PUT_UNLESS_NEWER),
            namespace: namespace.to_owned(),
        })
    }

    fn key(&self, account_id: Uuid) -> String {
        format!("{}{KEY_PREFIX}{account_id}", self.namespace)
    }

    async fn connection(&self) -> Result<ConnectionManager, CacheError> {
        let mut slot = self.connection.lock().await;
        if let Some(connection) = slot.as_ref() {
            return Ok(connection.clone());
        }
        let config = ConnectionManagerConfig::new()
            .set_connection_timeout(Some(self.settings.timeout))
            .set_response_timeout(Some(self.settings.timeout))
            .set_number_of_retries(1);
        let connection = self.bounded(ConnectionManager::new_with_config(self.client.clone(), config)).await?;
        *slot = Some(connection.clone());
        Ok(connection)
    }

    async fn bounded<T>(&self, call: impl std::future::Future<Output = redis::RedisResult<T>>) -> Result<T, CacheError> {
        match tokio::time::timeout(self.settings.timeout, call).await {
            Ok(Ok(value)) => Ok(value),
            Ok(Err(error)) => Err(CacheError::Unavailable(error.to_string())),
            Err(_) => Err(CacheError::Timeout(self.settings.timeout)),
        }
    }

    /// Stores `view` unless the cache already holds this version or a newer
    /// one. Returns whether it wrote.
    pub async fn put_if_newer(&self, view: &AccountView) -> Result<bool, CacheError> {
        self.put(&self.put_if_newer, view).await
    }

    /// Stores `view` unless the cache holds a strictly newer version: a view
    /// at the same version is replaced (a rebuild's corrected content).
    /// Returns whether it wrote.
    pub async fn put_unless_newer(&self, view: &AccountView) -> Result<bool, CacheError> {
        self.put(&self.put_unless_newer, view).await
    }

    async fn put(&self, script: &Script, view: &AccountView) -> Result<bool, CacheError> {
        let mut connection = self.connection().await?;
        let bytes = bincode::serde::encode_to_vec(view, bincode_config()).expect("a view always encodes");
        let ttl_ms = self.settings.ttl.as_millis().max(1) as u64;
        let wrote: i64 = self
            .bounded(script.key(self.key(view.account_id)).arg(view.version).arg(bytes).arg(ttl_ms).invoke_async(&mut connection))
            .await?;
        Ok(wrote == 1)
    }

    /// The cached view, if any. An entry that does not decode counts as a miss.
    pub async fn get(&self, account_id: Uuid) -> Result<Option<AccountView>, CacheError> {
        let mut connection = self.connection().await?;
        let bytes: Option<Vec<u8>> = self.bounded(connection.hget(self.key(account_id), "d")).await?;
        Ok(bytes.and_then(|bytes| bincode::serde::decode_from_slice::<AccountView, _>(&bytes, bincode_config()).ok().map(|(v, _)| v)))
    }

    /// Removes one account's cached view.
    pub async fn remove(&self, account_id: Uuid) -> Result<(), CacheError> {
        let mut connection = self.connection().await?;
        let _: u64 = self.bounded(connection.del(self.key(account_id))).await?;
        Ok(())
    }
}
