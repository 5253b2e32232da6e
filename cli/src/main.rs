//! `ledgerline`: one command line for the people who run Ledgerline.
//!
//! Each subcommand lives in its own module; this file only parses arguments
//! and reports errors (as a message and a non-zero exit status).

mod dlq;
mod embedded;
mod gateway;
mod local_stack;
mod migrate;
mod outbox;
mod rebuild;
mod token;

use clap::{Parser, Subcommand};

#[derive(Parser)]
#[command(name = "ledgerline", version, about = "Run and operate Ledgerline")]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run Ledgerline locally behind one HTTP gateway (LEDGERLINE_HTTP_ADDR,
    /// default 127.0.0.1:3000). With --embedded: everything in this process,
    /// in memory. Without: the real functions under `cargo lambda watch`
    /// with PostgreSQL, Redis, Kafka and the DynamoDB emulator.
    Serve {
        /// All four functions in this process with in-memory adapters.
        #[arg(long)]
        embedded: bool,
    },
    /// Mint a local HS256 token (secret: LEDGERLINE_JWT_SECRET).
    Token {
        /// The caller id (`sub` claim).
        #[arg(long)]
        sub: String,
        /// Make the caller an administrator: the admin group in the groups
        /// claim (LEDGERLINE_ADMIN_GROUP in LEDGERLINE_ADMIN_GROUPS_CLAIM).
        #[arg(long)]
        admin: bool,
        /// How long the token lives, like 30m, 1h or 7d.
        #[arg(long, default_value = "1h")]
        ttl: String,
    },
    /// Apply pending database migrations (safe to run again).
    Migrate {
        /// The event store database.
        #[arg(long, env = "DATABASE_URL", default_value = ledgerline_shared::config::DEFAULT_DATABASE_URL)]
        database_url: String,
    },
    /// Rewrite every account of the read models (DynamoDB) from its whole
    /// history in the event store, in place: reads stay correct while it
    /// runs. Resumes an interrupted rebuild unless --fresh is given.
    RebuildProjections {
        /// Start over from the first account.
        #[arg(long)]
        fresh: bool,
        /// The event store database.
        #[arg(long, env = "DATABASE_URL", default_value = ledgerline_shared::config::DEFAULT_DATABASE_URL)]
        database_url: String,
    },
    /// Find the accounts whose read model is behind the event store and
    /// repair them (what the scheduled reconciler does); says what it did.
    Reconcile {
        /// Check every account, not only those changed since the last pass.
        #[arg(long)]
        full: bool,
        /// The event store database.
        #[arg(long, env = "DATABASE_URL", default_value = ledgerline_shared::config::DEFAULT_DATABASE_URL)]
        database_url: String,
    },
    /// The transactional outbox.
    Outbox {
        #[command(subcommand)]
        command: outbox::OutboxCommand,
    },
    /// The dead-letter topic.
    Dlq {
        #[command(subcommand)]
        command: dlq::DlqCommand,
    },
}

#[tokio::main]
async fn main() -> std::process::ExitCode {
    let cli = Cli::parse();
    let outcome = match cli.command {
        Command::Serve { embedded: true } => embedded::serve().await,
        Command::Serve { embedded: false } => local_stack::serve().await,
        Command::Token { sub, admin, ttl } => token::run(&sub, admin, &ttl),
        Command::Migrate { database_url } => migrate::run(&database_url).await,
        Command::RebuildProjections { fresh, database_url } => rebuild::rebuild(&database_url, fresh).await,
        Command::Reconcile { full, database_url } => rebuild::reconcile(&database_url, full).await,
        Command::Outbox { command } => outbox::run(command).await,
        Command::Dlq { command } => dlq::run(command).await,
    };
    match outcome {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(error) => {
            eprintln!("ledgerline: {error:#}");
            std::process::ExitCode::FAILURE
        }
    }
}
