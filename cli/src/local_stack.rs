//! `ledgerline serve`: not built yet.

pub async fn serve() -> anyhow::Result<()> {
    anyhow::bail!("serve (the full local stack) is not built yet")
}
