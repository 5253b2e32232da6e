//! The Redis account cache against a real Redis (`REDIS_URL` or 127.0.0.1:6379).

use std::time::Duration;

use chrono::Utc;
use ledgerline_shared::cache::{AccountCache, CacheError, CacheSettings};
use ledgerline_shared::read_model::AccountView;
use uuid::Uuid;

fn settings() -> CacheSettings {
    CacheSettings {
        url: std::env::var("REDIS_URL").unwrap_or_else(|_| "redis://127.0.0.1:6379".into()),
        ttl: Duration::from_secs(60),
        timeout: Duration::from_millis(500),
    }
}

fn cache() -> AccountCache {
    AccountCache::with_namespace(settings(), &format!("test-{}:", Uuid::new_v4().simple())).unwrap()
}

fn view(account_id: Uuid, version: u64, balance: i64) -> AccountView {
    AccountView {
        account_id,
        owner_id: "alice".into(),
        currency: "EUR".into(),
        balance,
        overdraft_limit: 0,
        status: "open".into(),
        version,
        updated_at: Utc::now(),
        holds: vec![],
    }
}

#[tokio::test]
async fn a_view_round_trips_and_only_a_newer_one_replaces_it() {
    let cache = cache();
    let account = Uuid::new_v4();
    assert_eq!(cache.get(account).await.unwrap(), None);
    let stored = view(account, 3, 300);
    assert!(cache.put_if_newer(&stored).await.unwrap());
    assert_eq!(cache.get(account).await.unwrap(), Some(stored));
    // Older and equal versions lose; a newer one wins.
    assert!(!cache.put_if_newer(&view(account, 2, 200)).await.unwrap());
    assert!(!cache.put_if_newer(&view(account, 3, 999)).await.unwrap());
    assert_eq!(cache.get(account).await.unwrap().unwrap().balance, 300);
    assert!(cache.put_if_newer(&view(account, 4, 400)).await.unwrap());
    assert_eq!(cache.get(account).await.unwrap().unwrap().balance, 400);
}

#[tokio::test]
async fn racing_writers_leave_the_newest_version() {
    let cache = std::sync::Arc::new(cache());
    let account = Uuid::new_v4();
    let tasks: Vec<_> = (1..=50u64)
        .map(|version| {
            let cache = cache.clone();
            tokio::spawn(async move { cache.put_if_newer(&view(account, version, version as i64)).await.unwrap() })
        })
        .collect();
    for task in tasks {
        task.await.unwrap();
    }
    assert_eq!(cache.get(account).await.unwrap().unwrap().version, 50);
}

#[tokio::test]
async fn entries_expire_after_the_ttl() {
    let cache = AccountCache::with_namespace(
        CacheSettings { ttl: Duration::from_millis(200), ..settings() },
        &format!("test-{}:", Uuid::new_v4().simple()),
    )
    .unwrap();
    let account = Uuid::new_v4();
    cache.put_if_newer(&view(account, 1, 0)).await.unwrap();
    assert!(cache.get(account).await.unwrap().is_some());
    let deadline = tokio::time::Instant::now() + Duration::from_secs(5);
    while cache.get(account).await.unwrap().is_some() {
        assert!(tokio::time::Instant::now() < deadline, "the entry never expired");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test]
async fn remove_drops_one_entry_of_this_namespace() {
    let (mine, theirs) = (cache(), cache());
    let (a, b) = (Uuid::new_v4(), Uuid::new_v4());
    mine.put_if_newer(&view(a, 3, 0)).await.unwrap();
    mine.put_if_newer(&view(b, 1, 0)).await.unwrap();
    theirs.put_if_newer(&view(a, 1, 0)).await.unwrap();
    mine.remove(a).await.unwrap();
    assert_eq!(mine.get(a).await.unwrap(), None);
    assert!(mine.get(b).await.unwrap().is_some());
    assert!(theirs.get(a).await.unwrap().is_some());
    // Gone, an older version may be put again (a rebuilt view at the same version).
    assert!(mine.put_if_newer(&view(a, 2, 0)).await.unwrap());
}

#[tokio::test]
async fn an_unreachable_redis_is_an_error_not_a_hang() {
    let cache = AccountCache::new(CacheSettings { url: "redis://127.0.0.1:1".into(), ..settings() }).unwrap();
    let started = std::time::Instant::now();
    let error = cache.get(Uuid::new_v4()).await.unwrap_err();
    assert!(matches!(error, CacheError::Unavailable(_) | CacheError::Timeout(_)), "{error:?}");
    assert!(cache.put_if_newer(&view(Uuid::new_v4(), 1, 0)).await.is_err());
    assert!(started.elapsed() < Duration::from_secs(5));
}
