//! `ledgerline migrate`: bring the event store's schema up to date.

use anyhow::Context;

pub async fn run(database_url: &str) -> anyhow::Result<()> {
    let applied = ledgerline_shared::migrate::run(database_url)
        .await
        .with_context(|| format!("migrating {} (is PostgreSQL up? scripts/services.sh starts it)", redact(database_url)))?;
    if applied.is_empty() {
        println!("schema is up to date");
    } else {
        for name in applied {
            println!("applied {name}");
        }
    }
    Ok(())
}

/// The URL without its password, for messages.
fn redact(url: &str) -> String {
    match (url.find("://"), url.rfind('@')) {
        (Some(scheme), Some(at)) if at > scheme => {
            let credentials = &url[scheme + 3..at];
            let user = credentials.split(':').next().unwrap_or("");
            format!("{}{user}:***{}", &url[..scheme + 3], &url[at..])
        }
        _ => url.to_owned(),
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn passwords_never_reach_messages() {
        assert_eq!(super::redact("postgres://postgres:secret@db:5432/x"), "postgres://postgres:***@db:5432/x");
        assert_eq!(super::redact("postgres://db/x"), "postgres://db/x");
    }
}
