//! The `faultline` binary: parses the command line, runs the command, and maps every outcome
//! to an exit code in one place (Jepsen's convention): 0 valid, 1 invalid, 2 unknown,
//! 254 bad arguments, 255 the harness itself failed.

use clap::Parser;
use faultline::cli::{BadArgs, Cli, Command, SuiteCommand};
use faultline::run::{self, Failure};
use tokio::sync::watch;

const EXIT_BAD_ARGS: i32 = 254;
const EXIT_HARNESS_FAILED: i32 = 255;

fn main() {
    init_logging();
    let code = match Cli::try_parse() {
        Ok(cli) => {
            let result = execute(cli);
            faultline::progress::finish();
            exit_code(result)
        }
        // --help and --version are not errors.
        Err(error) if !error.use_stderr() => {
            let _ = error.print();
            0
        }
        Err(error) => {
            eprintln!("faultline: bad arguments: {}", clap_message(&error));
            EXIT_BAD_ARGS
        }
    };
    std::process::exit(code);
}

/// clap's error in our one voice: its message without its own `error: ` prefix, and the hint
/// it gives (`try '--help'`) on the same line.
fn clap_message(error: &clap::Error) -> String {
    let text = error.render().to_string();
    let lines: Vec<&str> = text
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty() && !l.starts_with("Usage:"))
        .collect();
    let message = lines.join("; ");
    message
        .strip_prefix("error: ")
        .unwrap_or(&message)
        .to_string()
}

/// `RUST_LOG` sets the harness's log level (tracing; default: warnings only). The nodes inherit
/// the variable and read it themselves.
fn init_logging() {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("warn"));
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .try_init();
}

fn exit_code(result: anyhow::Result<i32>) -> i32 {
    match result {
        Ok(code) => code,
        Err(error) if error.downcast_ref::<BadArgs>().is_some() => {
            eprintln!("faultline: bad arguments: {error}");
            EXIT_BAD_ARGS
        }
        Err(error) => {
            eprintln!("faultline: error: {error:#}");
            EXIT_HARNESS_FAILED
        }
    }
}

fn execute(cli: Cli) -> anyhow::Result<i32> {
    match cli.command {
        Command::Check { run_dir } => {
            let run_dir = faultline::report::resolve_run_dir(&run_dir)?;
            run::check(&run_dir, Failure::BadArgs)
        }
        Command::Report { run_dir } => faultline::report::command(&run_dir),
        Command::List => {
            print!("{}", faultline::cli::list());
            Ok(0)
        }
        Command::Test(args) => {
            // Validate before starting anything, so bad arguments never leave a run behind.
            let opts = args.validate()?;
            block_on(|interrupt| run::run_test(opts, interrupt))
        }
        Command::Repro(args) => block_on(|interrupt| async move {
            faultline::repro::repro(
                &args.scenario,
                &args.store,
                args.seed,
                args.node_bin.as_deref(),
                interrupt,
            )
            .await
        }),
        Command::Suite { suite } => match suite {
            SuiteCommand::Ci(args) => block_on(|interrupt| async move {
                faultline::suite::ci(&args.store, args.node_bin.as_deref(), interrupt).await
            }),
            SuiteCommand::Nightly(args) => {
                let (nightly, store, node_bin) = args.validate()?;
                block_on(|interrupt| async move {
                    faultline::suite::nightly(&nightly, &store, node_bin.as_deref(), interrupt)
                        .await
                })
            }
            SuiteCommand::Detection {
                only,
                seeds,
                run_time,
                store,
                node_bin,
            } => block_on(|interrupt| async move {
                faultline::detection::detection(
                    only.as_deref(),
                    seeds,
                    run_time,
                    &store,
                    node_bin.as_deref(),
                    interrupt,
                )
                .await
            }),
            SuiteCommand::Merge { dirs, out } => faultline::suite::merge(&dirs, &out),
        },
    }
}

/// Runs a command on the harness's runtime, with Ctrl-C and SIGTERM watched.
fn block_on<F, Fut>(command: F) -> anyhow::Result<i32>
where
    F: FnOnce(run::Interrupt) -> Fut,
    Fut: std::future::Future<Output = anyhow::Result<i32>>,
{
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()?;
    runtime.block_on(async {
        let interrupt = watch_signals()?;
        command(interrupt).await
    })
}

/// Ctrl-C (SIGINT) and SIGTERM set the returned flag to the signal's name; the run then heals
/// and stops its nodes.
fn watch_signals() -> anyhow::Result<run::Interrupt> {
    use tokio::signal::unix::{signal, SignalKind};
    let (tx, rx) = watch::channel(None);
    let mut interrupt = signal(SignalKind::interrupt())?;
    let mut terminate = signal(SignalKind::terminate())?;
    tokio::spawn(async move {
        let name = tokio::select! {
            _ = interrupt.recv() => "SIGINT",
            _ = terminate.recv() => "SIGTERM",
        };
        eprintln!(
            "faultline: interrupted by {name}: healing and stopping the nodes (again to quit now)"
        );
        let _ = tx.send(Some(name));
        // A second signal quits at once; the nodes die with us (their parent-death signal).
        tokio::select! {
            _ = interrupt.recv() => {}
            _ = terminate.recv() => {}
        }
        eprintln!("faultline: interrupted twice: quitting without stopping the nodes in order");
        std::process::exit(EXIT_HARNESS_FAILED);
    });
    Ok(rx)
}
