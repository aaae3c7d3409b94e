//! The `faultline-node` binary: `controller`, `broker` and `dump`. Flags use Kafka's setting
//! names where Kafka has one; docs/node-cli.md lists them with our defaults beside Kafka's.

use clap::{Parser, Subcommand, ValueEnum};
use std::collections::HashMap;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;

use faultline_node::broker::shutdown::StopRequests;
use faultline_node::broker::BrokerConfig;
use faultline_node::controller::{self, ControllerConfig};
use faultline_node::listeners;
use faultline_node::storage::LogConfig;
use faultline_node::version::KafkaVersion;

#[derive(Parser)]
#[command(
    name = "faultline-node",
    version,
    about = "A Kafka-style ISR-replicated log: controller and broker"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Clone, Copy, ValueEnum)]
enum ProtocolArg {
    Current,
    LegacyHw,
}

/// The Kafka version of `--kafka-version`, or of its older alias `--replication-protocol`
/// (current = the default version, legacy-hw = 0.10.2); the later of the two on the line wins,
/// as clap keeps only the flag given.
fn version_of(version: Option<KafkaVersion>, protocol: Option<ProtocolArg>) -> KafkaVersion {
    match (version, protocol) {
        (Some(version), _) => version,
        (None, Some(ProtocolArg::LegacyHw)) => KafkaVersion::V0_10_2,
        (None, Some(ProtocolArg::Current)) | (None, None) => KafkaVersion::default(),
    }
}

#[derive(Subcommand)]
enum Command {
    /// Hold the cluster metadata, track broker liveness, elect leaders.
    Controller {
        #[arg(long, default_value = "127.0.0.1:9000")]
        listen: SocketAddr,
        #[arg(long)]
        data: PathBuf,
        #[arg(long, default_value = "faultline")]
        cluster_id: String,
        /// The Kafka version whose rules the controller follows: 4.1, 3.7 or 0.10.2
        /// (docs/replication.md "Kafka versions").
        #[arg(long, default_value_t = KafkaVersion::default())]
        kafka_version: KafkaVersion,
        /// Broker session timeout: a broker silent this long is fenced (Kafka: 9000 ms).
        #[arg(long, default_value_t = faultline_node::controller::DEFAULT_SESSION_TIMEOUT_MS, value_parser = clap::value_parser!(u64).range(10..=600_000))]
        session_timeout_ms: u64,
    },
    /// Host partition replicas.
    Broker {
        #[arg(long, value_parser = clap::value_parser!(u32).range(0..=1_000_000))]
        id: u32,
        #[arg(long, default_value = "127.0.0.1:9001")]
        listen: SocketAddr,
        #[arg(long)]
        data: PathBuf,
        /// The controller's address (host:port).
        #[arg(long)]
        controller: String,
        /// How to reach another broker: ID=HOST:PORT (repeat for each).
        #[arg(long = "peer", value_parser = parse_peer)]
        peers: Vec<(u32, String)>,
        #[arg(long, default_value = "faultline")]
        cluster_id: String,
        /// replica.lag.time.max.ms (Kafka: 30000).
        #[arg(long, default_value_t = faultline_node::broker::DEFAULT_REPLICA_LAG_TIME_MAX_MS, value_parser = clap::value_parser!(u64).range(1..=600_000))]
        replica_lag_time_max_ms: u64,
        /// replica.fetch.wait.max.ms (Kafka: 500).
        #[arg(long, default_value_t = 100, value_parser = clap::value_parser!(u64).range(0..=60_000))]
        replica_fetch_wait_max_ms: u64,
        /// replica.lag.max.messages, removed from Kafka in 0.9 (0 = off, the default).
        #[arg(long, default_value_t = 0)]
        replica_lag_max_messages: u64,
        /// The Kafka version whose replication rules the broker follows: 4.1, 3.7 or 0.10.2
        /// (default 4.1; docs/replication.md "Kafka versions").
        #[arg(long, conflicts_with = "replication_protocol")]
        kafka_version: Option<KafkaVersion>,
        /// The setting of earlier releases, an alias: current = --kafka-version 4.1, legacy-hw =
        /// --kafka-version 0.10.2.
        #[arg(long, value_enum)]
        replication_protocol: Option<ProtocolArg>,
        /// broker.heartbeat.interval.ms (Kafka: 2000).
        #[arg(long, default_value_t = 100, value_parser = clap::value_parser!(u64).range(1..=60_000))]
        heartbeat_interval_ms: u64,
        /// replica.high.watermark.checkpoint.interval.ms (Kafka: 5000).
        #[arg(long, default_value_t = 1000, value_parser = clap::value_parser!(u64).range(1..=3_600_000))]
        hw_checkpoint_interval_ms: u64,
        /// log.segment.bytes (Kafka: 1 GiB).
        #[arg(long, default_value_t = 16 << 20, value_parser = clap::value_parser!(u64).range(1024..))]
        segment_bytes: u64,
        /// fsync every append (Kafka's default, like ours, is to rely on replication).
        #[arg(long)]
        fsync: bool,
        /// The largest request body accepted (HTTP body or Kafka request frame).
        #[arg(long, default_value_t = 4 << 20)]
        max_request_bytes: usize,
        /// Also serve the Kafka wire protocol on this address (127.0.0.1 only); see
        /// docs/kafka-api.md.
        #[arg(long, value_parser = parse_loopback)]
        kafka_listen: Option<SocketAddr>,
        /// The HOST:PORT Kafka clients are told to connect to (Kafka's advertised.listeners);
        /// defaults to the --kafka-listen address.
        #[arg(long, requires = "kafka_listen", value_parser = parse_host_port)]
        kafka_advertise: Option<String>,
    },
    /// Print the surviving on-disk log of a broker's data dir, one record a line.
    Dump {
        #[arg(long)]
        data: PathBuf,
    },
}

fn parse_peer(text: &str) -> Result<(u32, String), String> {
    let (id, addr) = text
        .split_once('=')
        .ok_or_else(|| format!("--peer must be ID=HOST:PORT (got {text:?})"))?;
    let id = id
        .parse()
        .map_err(|_| format!("--peer id {id:?} is not a number"))?;
    if addr.is_empty() || !addr.contains(':') {
        return Err(format!("--peer address {addr:?} must be HOST:PORT"));
    }
    Ok((id, addr.to_string()))
}

fn parse_loopback(text: &str) -> Result<SocketAddr, String> {
    let addr: SocketAddr = text
        .parse()
        .map_err(|_| format!("{text:?} must be IP:PORT"))?;
    if !addr.ip().is_loopback() {
        return Err(format!("{addr}: the Kafka listener serves 127.0.0.1 only"));
    }
    Ok(addr)
}

fn parse_host_port(text: &str) -> Result<String, String> {
    let (host, port) = text
        .rsplit_once(':')
        .ok_or_else(|| format!("{text:?} must be HOST:PORT"))?;
    if host.is_empty() || port.parse::<u16>().map_or(true, |p| p == 0) {
        return Err(format!("{text:?} must be HOST:PORT with a port 1 to 65535"));
    }
    Ok(text.to_string())
}

fn init_tracing() {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| {
        tracing_subscriber::EnvFilter::new("warn,faultline_node=info,events=off")
    });
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        // node.log is a file: colour codes there are noise.
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .init();
}

fn run(cli: Cli) -> anyhow::Result<()> {
    match cli.command {
        Command::Dump { data } => {
            let stdout = std::io::stdout();
            let mut out = std::io::BufWriter::new(stdout.lock());
            faultline_node::dump::dump(&data, &mut out)?;
            std::io::Write::flush(&mut out)?;
            Ok(())
        }
        Command::Controller {
            listen,
            data,
            cluster_id,
            kafka_version,
            session_timeout_ms,
        } => {
            let config = ControllerConfig {
                data,
                cluster_id,
                session_timeout_ms,
                version: kafka_version,
            };
            runtime()?.block_on(controller::run(config, listen))
        }
        Command::Broker {
            id,
            listen,
            data,
            controller,
            peers,
            cluster_id,
            replica_lag_time_max_ms,
            replica_fetch_wait_max_ms,
            replica_lag_max_messages,
            kafka_version,
            replication_protocol,
            heartbeat_interval_ms,
            hw_checkpoint_interval_ms,
            segment_bytes,
            fsync,
            max_request_bytes,
            kafka_listen,
            kafka_advertise,
        } => {
            let kafka_advertise = kafka_advertise.or_else(|| kafka_listen.map(|a| a.to_string()));
            let config = BrokerConfig {
                id,
                data,
                controller,
                peers: peers.into_iter().collect::<HashMap<_, _>>(),
                cluster_id,
                replica_lag_time_max_ms,
                replica_fetch_wait_max_ms,
                replica_lag_max_messages,
                version: version_of(kafka_version, replication_protocol),
                heartbeat_interval_ms,
                hw_checkpoint_interval_ms,
                log: LogConfig {
                    segment_bytes,
                    fsync,
                },
                max_request_bytes,
                kafka_advertise,
            };
            runtime()?.block_on(async {
                let stops = stop_requests()?;
                listeners::run_broker(config, listen, kafka_listen, stops).await
            })
        }
    }
}

/// How many stop requests may wait to be read; more are dropped (the first starts the
/// controlled shutdown, the second ends it).
const STOP_REQUESTS_BOUND: usize = 4;

/// A broker's signals: every SIGTERM and SIGINT becomes a stop request. The first starts a
/// controlled shutdown, the next one forces the stop (`broker::shutdown`), as a second Ctrl-C
/// would. Caught from the start, so a signal during log recovery waits for the broker to be up.
fn stop_requests() -> anyhow::Result<StopRequests> {
    use tokio::signal::unix::{signal, SignalKind};
    let mut term = signal(SignalKind::terminate())?;
    let mut int = signal(SignalKind::interrupt())?;
    let (tx, rx) = tokio::sync::mpsc::channel(STOP_REQUESTS_BOUND);
    tokio::spawn(async move {
        loop {
            let name = tokio::select! {
                Some(()) = term.recv() => "SIGTERM",
                Some(()) = int.recv() => "SIGINT",
                else => return,
            };
            if let Err(tokio::sync::mpsc::error::TrySendError::Closed(_)) = tx.try_send(name) {
                return;
            }
        }
    });
    Ok(rx)
}

fn runtime() -> anyhow::Result<tokio::runtime::Runtime> {
    Ok(tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()?)
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    init_tracing();
    match run(cli) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("faultline-node: {e:#}");
            ExitCode::from(1)
        }
    }
}
