//! The `outbox-publisher` Lambda function. Not built yet: see the issue tracker.

fn main() {
    eprintln!("outbox-publisher is not implemented yet");
    std::process::exit(1);
}
