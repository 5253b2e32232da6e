//! `ledgerline token`: not built yet.

pub fn run(_sub: &str, _admin: bool, _ttl: &str) -> anyhow::Result<()> {
    anyhow::bail!("token is not built yet")
}
