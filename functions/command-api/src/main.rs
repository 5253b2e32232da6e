//! The `command-api` Lambda function. Not built yet: see the issue tracker.

fn main() {
    eprintln!("command-api is not implemented yet");
    std::process::exit(1);
}
