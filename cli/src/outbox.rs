//! `ledgerline outbox status`: how far behind publishing is.

use std::time::Duration;

use anyhow::Context;
use chrono::Utc;
use ledgerline_shared::config::DatabaseSettings;
use ledgerline_shared::event_store::{PostgresEventStore, StoreSettings};
use ledgerline_shared::outbox::OutboxStore;

#[derive(clap::Subcommand)]
pub enum OutboxCommand {
    /// Pending rows (and how many are due now), the oldest pending row's
    /// age, published rows still kept, dead rows.
    Status {
        /// The event store database.
        #[arg(long, env = "DATABASE_URL", default_value = ledgerline_shared::config::DEFAULT_DATABASE_URL)]
        database_url: String,
    },
}

pub async fn run(command: OutboxCommand) -> anyhow::Result<()> {
    match command {
        OutboxCommand::Status { database_url } => status(&database_url).await,
    }
}

async fn status(database_url: &str) -> anyhow::Result<()> {
    let store = store(database_url)?;
    let counts = store.counts().await.context("reading the outbox (is PostgreSQL up? scripts/services.sh starts it)")?;
    println!("pending:   {} ({} due now)", counts.pending, counts.due);
    match counts.oldest_pending_at {
        Some(at) => println!("oldest:    {} ({} ago)", at.to_rfc3339(), human(Utc::now().signed_duration_since(at).to_std().unwrap_or_default())),
        None => println!("oldest:    none pending"),
    }
    println!("published: {} (kept until the retention period ends)", counts.published);
    println!("dead:      {}{}", counts.dead, if counts.dead > 0 { " (see `ledgerline dlq list`; `ledgerline dlq redrive` retries them)" } else { "" });
    Ok(())
}

pub fn store(database_url: &str) -> anyhow::Result<PostgresEventStore> {
    let settings = DatabaseSettings { url: database_url.to_owned(), ..DatabaseSettings::from_env()? };
    let pool = ledgerline_shared::db::pool(&settings).context("DATABASE_URL")?;
    Ok(PostgresEventStore::new(pool, StoreSettings::default()))
}

/// "3s", "4m 10s", "2h 5m", "3d 4h".
fn human(age: Duration) -> String {
    let s = age.as_secs();
    match s {
        0..60 => format!("{s}s"),
        60..3600 => format!("{}m {}s", s / 60, s % 60),
        3600..86400 => format!("{}h {}m", s / 3600, s % 3600 / 60),
        _ => format!("{}d {}h", s / 86400, s % 86400 / 3600),
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn ages_read_like_a_person_would_say_them() {
        use std::time::Duration;
        assert_eq!(super::human(Duration::from_secs(3)), "3s");
        assert_eq!(super::human(Duration::from_secs(250)), "4m 10s");
        assert_eq!(super::human(Duration::from_secs(7500)), "2h 5m");
        assert_eq!(super::human(Duration::from_secs(3 * 86400 + 4 * 3600)), "3d 4h");
    }
}
