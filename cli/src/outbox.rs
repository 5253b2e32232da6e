//! `ledgerline outbox status`: how far behind publishing is.

use std::time::Duration;

use anyhow::Context;
use chrono::Utc;
use ledgerline_shared::config::{DatabaseSettings, Env, defaults};
use ledgerline_shared::event_store::{PostgresEventStore, StoreSettings};
use ledgerline_shared::outbox::OutboxStore;

#[derive(clap::Subcommand)]
pub enum OutboxCommand {
    /// Pending rows (and how many are due now), the oldest pending row's
    /// age, dead rows. (Acknowledged rows leave the outbox.)
    Status {
        /// The event store database.
        #[arg(long, env = "DATABASE_URL", default_value = ledgerline_shared::config::DEFAULT_DATABASE_URL)]
        database_url: String,
    },
    /// Send every event recorded since a moment again, queued from the
    /// event log for `LEDGERLINE_EVENTS_TOPIC`: after the broker lost what
    /// it had acknowledged (reset, storage deleted). Pick a moment before
    /// the oldest event it may have lost: an event recorded earlier but
    /// acknowledged later (a backlog) is not included otherwise. Safe to
    /// repeat: the projector skips what it has already applied.
    Replay {
        /// How far back: a duration like 30m, 2h or 1d, or an RFC 3339 time.
        #[arg(long)]
        since: String,
        /// The event store database.
        #[arg(long, env = "DATABASE_URL", default_value = ledgerline_shared::config::DEFAULT_DATABASE_URL)]
        database_url: String,
    },
}

pub async fn run(command: OutboxCommand) -> anyhow::Result<()> {
    match command {
        OutboxCommand::Status { database_url } => status(&database_url).await,
        OutboxCommand::Replay { since, database_url } => replay(&database_url, &since).await,
    }
}

async fn replay(database_url: &str, since: &str) -> anyhow::Result<()> {
    let since = parse_since(since, Utc::now())?;
    let store = store(database_url)?;
    let replayed = store.replay_events(since).await.context("queueing events (is PostgreSQL up? scripts/services.sh starts it)")?;
    println!("{replayed} events recorded since {} are queued again; the outbox publisher sends them on its next run", since.to_rfc3339());
    Ok(())
}

/// `30m`, `2h`, `1d` (before `now`) or an RFC 3339 time.
fn parse_since(text: &str, now: chrono::DateTime<Utc>) -> anyhow::Result<chrono::DateTime<Utc>> {
    if let Ok(at) = chrono::DateTime::parse_from_rfc3339(text) {
        return Ok(at.with_timezone(&Utc));
    }
    let ago = crate::token::parse_ttl(text)
        .map_err(|_| anyhow::anyhow!("--since {text:?}: expected a duration like 30m, 2h or 1d, or an RFC 3339 time"))?;
    Ok(now - chrono::Duration::from_std(ago)?)
}

async fn status(database_url: &str) -> anyhow::Result<()> {
    let store = store(database_url)?;
    let counts = store.counts().await.context("reading the outbox (is PostgreSQL up? scripts/services.sh starts it)")?;
    println!("pending:   {} ({} due now)", counts.pending, counts.due);
    match counts.oldest_pending_at {
        Some(at) => {
            println!("oldest:    {} ({} ago)", at.to_rfc3339(), human(Utc::now().signed_duration_since(at).to_std().unwrap_or_default()))
        }
        None => println!("oldest:    none pending"),
    }
    println!(
        "dead:      {}{}",
        counts.dead,
        if counts.dead > 0 { " (see `ledgerline dlq list`; `ledgerline dlq redrive` retries them)" } else { "" }
    );
    Ok(())
}

pub fn store(database_url: &str) -> anyhow::Result<PostgresEventStore> {
    let settings = DatabaseSettings { url: database_url.to_owned(), ..DatabaseSettings::from_env()? };
    let pool = ledgerline_shared::db::pool(&settings).context("DATABASE_URL")?;
    // The topic a replay queues events for: the deployment's, as the
    // command API writes it (`LEDGERLINE_EVENTS_TOPIC`).
    let events_topic = Env::process().text_or("LEDGERLINE_EVENTS_TOPIC", defaults::EVENTS_TOPIC);
    Ok(PostgresEventStore::new(pool, StoreSettings { events_topic, ..StoreSettings::default() }))
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
    fn since_is_a_duration_back_or_a_time() {
        use chrono::TimeZone;
        let now = chrono::Utc.with_ymd_and_hms(2026, 1, 2, 12, 0, 0).unwrap();
        assert_eq!(super::parse_since("2h", now).unwrap(), now - chrono::Duration::hours(2));
        assert_eq!(super::parse_since("2026-01-01T00:00:00Z", now).unwrap(), chrono::Utc.with_ymd_and_hms(2026, 1, 1, 0, 0, 0).unwrap());
        assert!(super::parse_since("yesterday", now).unwrap_err().to_string().contains("expected a duration"));
    }

    #[test]
    fn ages_read_like_a_person_would_say_them() {
        use std::time::Duration;
        assert_eq!(super::human(Duration::from_secs(3)), "3s");
        assert_eq!(super::human(Duration::from_secs(250)), "4m 10s");
        assert_eq!(super::human(Duration::from_secs(7500)), "2h 5m");
        assert_eq!(super::human(Duration::from_secs(3 * 86400 + 4 * 3600)), "3d 4h");
    }
}
