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
    let code = match Cli::try_parse() {
        Ok(cli) => exit_code(execute(cli)),
        Err(error) => {
            // --help and --version are not errors.
            let code = if error.use_stderr() { EXIT_BAD_ARGS } else { 0 };
            let _ = error.print();
            code
        }
    };
    std::process::exit(code);
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
        Command::Check { run_dir } => run::check(&run_dir, Failure::BadArgs),
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
                seeds,
                run_time,
                store,
                node_bin,
            } => block_on(|interrupt| async move {
                faultline::detection::detection(
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
