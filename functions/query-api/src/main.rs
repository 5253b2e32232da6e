//! The `query-api` Lambda function. Not built yet: see the issue tracker.

fn main() {
    eprintln!("query-api is not implemented yet");
    std::process::exit(1);
}
