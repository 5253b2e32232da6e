//! `ledgerline`: one command line for the people who run Ledgerline.
//!
//! Each subcommand lives in its own module; this file only parses arguments
//! and reports errors (as a message and a non-zero exit status).

mod migrate;
mod rebuild;

use clap::{Parser, Subcommand};

#[derive(Parser)]
#[command(name = "ledgerline", version, about = "Run and operate Ledgerline")]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Apply pending database migrations (safe to run again).
    Migrate {
        /// The event store database.
        #[arg(long, env = "DATABASE_URL", default_value = ledgerline_shared::config::DEFAULT_DATABASE_URL)]
        database_url: String,
    },
    /// Replay the event store into the read models (DynamoDB) and clear the
    /// cache. Resumes an interrupted rebuild unless --fresh is given.
    RebuildProjections {
        /// Start over: empty the tables and the cache first.
        #[arg(long)]
        fresh: bool,
        /// The event store database.
        #[arg(long, env = "DATABASE_URL", default_value = ledgerline_shared::config::DEFAULT_DATABASE_URL)]
        database_url: String,
    },
}

#[tokio::main]
async fn main() -> std::process::ExitCode {
    let cli = Cli::parse();
    let outcome = match cli.command {
        Command::Migrate { database_url } => migrate::run(&database_url).await,
        Command::RebuildProjections { fresh, database_url } => rebuild::run(&database_url, fresh).await,
    };
    match outcome {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(error) => {
            eprintln!("ledgerline: {error:#}");
            std::process::ExitCode::FAILURE
        }
    }
}
