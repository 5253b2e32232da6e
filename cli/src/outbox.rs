//! `ledgerline outbox ...`: not built yet.

#[derive(clap::Subcommand)]
pub enum OutboxCommand {
    /// Pending rows, the oldest one's age, dead rows.
    Status,
}

pub async fn run(_command: OutboxCommand) -> anyhow::Result<()> {
    anyhow::bail!("outbox status is not built yet")
}
