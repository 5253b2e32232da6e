//! The `projector` Lambda function. Not built yet: see the issue tracker.

fn main() {
    eprintln!("projector is not implemented yet");
    std::process::exit(1);
}
