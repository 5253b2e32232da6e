//! `ledgerline rebuild-projections` and `ledgerline reconcile`: the read
//! models repaired or rewritten from the event store
//! (`ledgerline_shared::reconcile`). DynamoDB comes from the standard AWS
//! settings (`AWS_ENDPOINT_URL_DYNAMODB` locally), the tables from
//! `LEDGERLINE_ACCOUNTS_TABLE` / `LEDGERLINE_TRANSACTIONS_TABLE`, the cache
//! from `REDIS_URL`.

use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use indicatif::{ProgressBar, ProgressStyle};
use ledgerline_shared::cache::{AccountCache, CacheSettings};
use ledgerline_shared::config::DatabaseSettings;
use ledgerline_shared::event_store::{PostgresEventStore, StoreSettings};
use ledgerline_shared::read_model::dynamo::{DynamoReadModel, client_from_aws_config};
use ledgerline_shared::read_model::tables::TableNames;
use ledgerline_shared::reconcile::{PassReport, PostgresProgress, ReconcileSettings, Reconciler};

const UNREACHABLE: &str = "are PostgreSQL, DynamoDB and Redis reachable? scripts/services.sh starts them";

async fn reconciler(database_url: &str) -> anyhow::Result<Reconciler> {
    let settings = DatabaseSettings { url: database_url.to_owned(), ..DatabaseSettings::from_env()? };
    let pool = ledgerline_shared::db::pool(&settings).context("DATABASE_URL")?;
    Ok(Reconciler {
        event_store: Arc::new(PostgresEventStore::new(pool.clone(), StoreSettings::default())),
        read_model: Arc::new(DynamoReadModel::new(client_from_aws_config(Duration::from_secs(10)).await, TableNames::from_env())),
        cache: Some(Arc::new(AccountCache::new(CacheSettings::from_env()?).context("REDIS_URL")?)),
        progress: Arc::new(PostgresProgress::new(pool)),
        settings: ReconcileSettings::from_env()?,
    })
}

pub async fn rebuild(database_url: &str, fresh: bool) -> anyhow::Result<()> {
    let reconciler = reconciler(database_url).await?;
    let bar = ProgressBar::new(0);
    bar.set_style(
        ProgressStyle::with_template("{spinner} [{elapsed_precise}] {bar:40} {pos}/{len} accounts ({per_sec}, {eta} left)")
            .expect("a valid template"),
    );
    let done = reconciler
        .rebuild(fresh, |progress| {
            bar.set_length(progress.streams_total);
            bar.set_position(progress.streams_done);
        })
        .await
        .with_context(|| format!("rebuilding the read models ({UNREACHABLE})"))?;
    bar.finish_and_clear();
    println!(
        "rebuilt {} accounts from {} events: {} written, {} already newer (the projector moved on)",
        done.streams_done,
        done.events_replayed,
        done.accounts_written,
        done.streams_done - done.accounts_written
    );
    Ok(())
}

pub async fn reconcile(database_url: &str, full: bool) -> anyhow::Result<()> {
    let reconciler = reconciler(database_url).await?;
    let report = if full { reconciler.sweep().await } else { reconciler.pass(None).await }
        .with_context(|| format!("reconciling the read models ({UNREACHABLE})"))?;
    print!("{}", describe(&report, full));
    let expiry =
        reconciler.expire_due_holds(chrono::Utc::now()).await.with_context(|| format!("recording hold expiries ({UNREACHABLE})"))?;
    if expiry.holds_expired > 0 || expiry.failed > 0 {
        println!(
            "recorded the expiry of {} holds ({} accounts could not be written; the next run tries again)",
            expiry.holds_expired, expiry.failed
        );
    }
    Ok(())
}

/// What a pass did, as the operator reads it.
fn describe(report: &PassReport, full: bool) -> String {
    let scope = if full { "every account" } else { "accounts changed since the last pass, and one page of the sweep" };
    let mut text = format!("checked {} accounts ({scope})\n", report.checked);
    if report.behind == 0 {
        text.push_str("the read model is up to date: nothing to repair\n");
    } else {
        text.push_str(&format!(
            "{} behind, {} repaired with {} events (the longest had waited {:.1}s):\n",
            report.behind,
            report.repaired,
            report.events_applied,
            report.oldest_lag_ms as f64 / 1000.0
        ));
        for account in &report.repaired_accounts {
            text.push_str(&format!("  repaired {account}\n"));
        }
    }
    if report.cache_errors > 0 {
        text.push_str(&format!("the cache could not be refreshed ({} errors): is Redis up?\n", report.cache_errors));
    }
    text
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_report_names_what_was_repaired() {
        let id = uuid::Uuid::from_u128(7);
        let report = PassReport {
            checked: 3,
            behind: 1,
            repaired: 1,
            events_applied: 4,
            oldest_lag_ms: 2500,
            repaired_accounts: vec![id],
            ..PassReport::default()
        };
        let text = describe(&report, false);
        assert!(text.contains("checked 3 accounts"), "{text}");
        assert!(text.contains("1 behind, 1 repaired with 4 events (the longest had waited 2.5s)"), "{text}");
        assert!(text.contains(&format!("repaired {id}")), "{text}");
        assert!(describe(&PassReport::default(), true).contains("nothing to repair"));
    }
}
