//! The `faultline` command: parses the command line, runs the command on the harness's runtime
//! with Ctrl-C and SIGTERM watched, and maps every outcome to an exit code in one place
//! (`test::error`, Jepsen's convention): 0 valid, 1 invalid, 2 unknown, 254 bad arguments,
//! 255 the harness itself failed.

use std::sync::Arc;

use clap::Parser;
use tokio::sync::watch;

use crate::test::error::{exit_code, Failure, EXIT_BAD_ARGS, EXIT_HARNESS_FAILED};
use crate::test::observer::Observer;
use crate::test::run;
use crate::ui::cli::{clap_message, Cli, Command, SuiteCommand};
use crate::ui::progress::Terminal;

/// Runs the command line this process was given; returns the exit code.
pub fn main() -> i32 {
    init_logging();
    let code = match Cli::try_parse() {
        Ok(cli) => {
            let result = execute(cli);
            crate::ui::progress::finish();
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
    code
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

fn execute(cli: Cli) -> anyhow::Result<i32> {
    let observer: Arc<dyn Observer> = Arc::new(Terminal);
    match cli.command {
        Command::Check { run_dir } => {
            let run_dir = crate::ui::report::resolve_run_dir(&run_dir)?;
            run::check(&run_dir, Failure::BadArgs, &*observer)
        }
        Command::Report { run_dir } => crate::ui::report::command(&run_dir),
        Command::List => {
            print!("{}", crate::ui::cli::list());
            Ok(0)
        }
        Command::Test(args) => {
            // Validate before starting anything, so bad arguments never leave a run behind.
            let opts = args.validate()?;
            block_on(|interrupt| run::run_test(opts, interrupt, observer))
        }
        Command::Repro(args) => block_on(|interrupt| async move {
            crate::jobs::repro::repro(
                &args.scenario,
                args.kafka_version,
                &args.store,
                args.seed,
                args.node_bin.as_deref(),
                interrupt,
                observer,
            )
            .await
        }),
        Command::Suite { suite } => match suite {
            SuiteCommand::Ci(args) => block_on(|interrupt| async move {
                crate::jobs::suite::ci(
                    &args.store,
                    args.kafka_version,
                    args.node_bin.as_deref(),
                    interrupt,
                    observer,
                )
                .await
            }),
            SuiteCommand::Nightly(args) => {
                let (nightly, store, node_bin) = args.validate()?;
                block_on(|interrupt| async move {
                    crate::jobs::suite::nightly(
                        &nightly,
                        &store,
                        node_bin.as_deref(),
                        interrupt,
                        observer,
                    )
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
                crate::jobs::detection::detection(
                    only.as_deref(),
                    seeds,
                    run_time,
                    &store,
                    node_bin.as_deref(),
                    interrupt,
                    observer,
                )
                .await
            }),
            SuiteCommand::Merge { dirs, out } => crate::jobs::suite::merge(&dirs, &out),
        },
        Command::Shrink(args) => block_on(|interrupt| async move {
            crate::jobs::shrink::shrink(args.into_options(), replay_request, interrupt).await
        }),
    }
}

/// `shrink`'s reader of a run's replay line: the command line's own parser.
fn replay_request(args: &[String]) -> anyhow::Result<crate::test::options::TestRequest> {
    crate::ui::cli::parse_test_args(args)
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
