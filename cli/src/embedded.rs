//! `ledgerline serve --embedded`: not built yet.

pub async fn serve() -> anyhow::Result<()> {
    anyhow::bail!("serve --embedded is not built yet")
}
