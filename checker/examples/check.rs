//! `cargo run -p faultline-checker --example check -- RUN_DIR`: checks a stored run without the
//! harness and prints the summary (writes nothing). For working on the checker itself; users run
//! `faultline check RUN_DIR`.

fn main() {
    let Some(dir) = std::env::args_os().nth(1) else {
        eprintln!("usage: check RUN_DIR");
        std::process::exit(254);
    };
    match faultline_checker::check_run(std::path::Path::new(&dir)) {
        Ok(results) => {
            print!("{}", results.summary());
            for a in results.anomalies.iter().take(20) {
                println!(
                    "  {} {}/{} {:?}: {}",
                    a.kind.as_str(),
                    a.topic,
                    a.partition,
                    a.offsets,
                    a.detail
                );
            }
            std::process::exit(results.exit_code());
        }
        Err(e) => {
            eprintln!("{e}");
            std::process::exit(254);
        }
    }
}
