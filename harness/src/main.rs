//! The `faultline` binary: everything it does is `faultline::main`, which maps every outcome
//! to an exit code in one place.

fn main() {
    std::process::exit(faultline::main());
}
