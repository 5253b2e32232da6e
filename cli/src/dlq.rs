//! `ledgerline dlq ...`: not built yet.

#[derive(clap::Subcommand)]
pub enum DlqCommand {
    /// List what is in the dead-letter topic.
    List,
    /// Send dead letters back to where they came from.
    Redrive,
}

pub async fn run(_command: DlqCommand) -> anyhow::Result<()> {
    anyhow::bail!("dlq is not built yet")
}
