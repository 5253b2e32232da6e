//! What every request shares: built once per Lambda container.

use std::sync::Arc;

use ledgerline_shared::cache::AccountCache;
use ledgerline_shared::read_model::ReadModelStore;

use crate::config::QuerySettings;
use crate::cursor::CursorCodec;
use crate::metrics::Metrics;
use crate::reader::{AccountReader, ReaderSettings};
use crate::shed::LoadShedder;

#[derive(Clone)]
pub struct AppState {
    inner: Arc<Inner>,
}

struct Inner {
    reader: AccountReader,
    cursors: CursorCodec,
    shedder: LoadShedder,
    metrics: Metrics,
}

impl AppState {
    /// `redis: None` runs without the L2 cache.
    pub fn new(source: Arc<dyn ReadModelStore>, redis: Option<Arc<AccountCache>>, settings: &QuerySettings, metrics: Metrics) -> Self {
        let reader_settings = ReaderSettings {
            l1_capacity: settings.l1_capacity,
            l1_ttl: settings.l1_ttl,
            redis_breaker: settings.redis_breaker,
            dynamodb_breaker: settings.dynamodb_breaker,
        };
        let reader = AccountReader::new(source, redis, &reader_settings, &metrics);
        Self {
            inner: Arc::new(Inner {
                reader,
                cursors: CursorCodec::new(&settings.cursor_secret),
                shedder: LoadShedder::new(settings.max_in_flight, settings.queue_wait),
                metrics,
            }),
        }
    }

    pub fn reader(&self) -> &AccountReader {
        &self.inner.reader
    }

    pub fn cursors(&self) -> &CursorCodec {
        &self.inner.cursors
    }

    pub fn shedder(&self) -> &LoadShedder {
        &self.inner.shedder
    }

    pub fn metrics(&self) -> &Metrics {
        &self.inner.metrics
    }
}
