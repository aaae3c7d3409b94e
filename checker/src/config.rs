//! `test.json`: the whole configuration of a run as one typed value ([`TestConfig`], with the
//! harness's own settings in [`HarnessSettings`]), written first by the harness so the run can
//! be re-checked or replayed, and read first by the checker, which derives the run's guarantee
//! from it (the `guarantee` module). It owns this file's shape, the names of every setting that
//! takes one of a fixed set of values (the same words in test.json and on the command line),
//! and reading the file. It does not own the harness's command line or what a fault does.
//!
//! Every named setting is an enum that refuses unknown names: a misspelt `replication_protocol`
//! (now `kafka_version`) read as a string once weakened the guarantee and so silently excused committed loss. An
//! unknown name in test.json is a [`CheckError`] that names the field.

use crate::error::{CheckError, ConfigError};
use crate::history::Acks;
use serde::de::{self, Deserializer, Visitor};
use serde::{Deserialize, Serialize, Serializer};
use serde_json::{Map, Value};
use std::fmt;
use std::marker::PhantomData;
use std::path::{Path, PathBuf};
use std::str::FromStr;

/// The file's name inside a run directory.
pub const TEST_CONFIG_FILE: &str = "test.json";

/// `test.json`: the whole configuration of a run.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TestConfig {
    pub name: String,
    pub seed: u64,
    /// Wall-clock time (Unix milliseconds) at which `time_ns` = 0.
    pub start_unix_ms: u64,
    pub nodes: u32,
    pub topics: Vec<String>,
    pub partitions: u32,
    pub replication_factor: u32,
    pub acks: Acks,
    /// Kafka's `enable.idempotence` (`--idempotence`): each producer sends with a producer id,
    /// epoch and per-partition sequence numbers, so a retried send is never appended twice.
    /// Runs stored before it was a setting had none: false.
    #[serde(default)]
    pub idempotence: bool,
    /// Kafka's producer `retries` (`--retries`): how many times a producer re-sends a send
    /// whose attempt failed retriably. Runs stored before producers retried: 0.
    #[serde(default)]
    pub retries: u32,
    pub min_insync_replicas: u32,
    pub unclean_leader_election: bool,
    pub replica_lag_time_max_ms: u64,
    /// Read from `replication_protocol` in runs stored before the version was a setting.
    #[serde(alias = "replication_protocol")]
    pub kafka_version: KafkaVersion,
    pub workload: Workload,
    /// The random nemesis's faults, or `[schedule]` when a schedule replaced it.
    pub nemesis: Vec<NemesisKind>,
    pub nemesis_interval_ms: u64,
    pub max_faulty: u32,
    pub time_limit_ms: u64,
    pub rate: f64,
    pub concurrency: u32,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub schedule: Option<String>,
    /// The harness's own settings, kept under the key `extra` that stored runs already use.
    #[serde(default, rename = "extra")]
    pub harness: HarnessSettings,
    /// Set when the run put a system described by a system file under faults (`--system`,
    /// docs/systems.md) instead of faultline-node.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub system: Option<SystemInfo>,
}

/// What test.json records of a system file's system: its name and version (the report names
/// them), the file, whether it gives a dump of each node's surviving log (without one the
/// replicas' logs are not checked), and the guarantee it promises.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SystemInfo {
    pub name: String,
    pub version: String,
    pub file: PathBuf,
    pub dump: bool,
    /// The strongest acks the system promises to honour.
    pub promise_acks: Acks,
    /// The min.insync.replicas the system promises to honour.
    pub promise_min_insync_replicas: u32,
    /// It promises that an acknowledged write is on stable storage (fsynced): then a power
    /// loss (`--lazyfs`) excuses no loss. Absent in files from before it existed: false.
    #[serde(default)]
    pub promise_fsync: bool,
}

impl SystemInfo {
    /// `name version`, as the report and summary name the system.
    pub fn label(&self) -> String {
        format!("{} {}", self.name, self.version)
    }
}

impl Default for TestConfig {
    /// What `faultline test` runs with no arguments (its durable defaults: 3 brokers, topic `t`
    /// with one partition and 3 replicas, acks=all, min.insync.replicas 2, every fault), with
    /// seed 0 and a zero start time; tests and benches change what they need.
    fn default() -> Self {
        TestConfig {
            name: "produce-all".to_string(),
            seed: 0,
            start_unix_ms: 0,
            nodes: 3,
            topics: vec!["t".to_string()],
            partitions: 1,
            replication_factor: 3,
            acks: Acks::All,
            idempotence: false,
            retries: DEFAULT_RETRIES,
            min_insync_replicas: 2,
            unclean_leader_election: false,
            replica_lag_time_max_ms: 1000,
            kafka_version: KafkaVersion::V4_1,
            workload: Workload::Produce,
            nemesis: FaultKind::ALL
                .into_iter()
                .filter(|k| !matches!(k, FaultKind::PowerLoss | FaultKind::DropResponse))
                .map(NemesisKind::Fault)
                .collect(),
            nemesis_interval_ms: 2000,
            max_faulty: 2,
            time_limit_ms: 30_000,
            rate: 500.0,
            concurrency: 8,
            schedule: None,
            harness: HarnessSettings::default(),
            system: None,
        }
    }
}

impl TestConfig {
    /// Reads `run_dir/test.json`, the one file without which a run cannot be checked.
    pub fn read(run_dir: &Path) -> Result<TestConfig, CheckError> {
        if !run_dir.is_dir() {
            return Err(CheckError::NoRunDir(run_dir.to_path_buf()));
        }
        let path = run_dir.join(TEST_CONFIG_FILE);
        let text = std::fs::read(&path).map_err(|source| CheckError::TestConfigUnreadable {
            path: path.clone(),
            source,
        })?;
        TestConfig::parse(&text).map_err(|source| CheckError::TestConfigInvalid { path, source })
    }

    /// Parses the text of a test.json; the error names the field that is wrong.
    pub fn parse(bytes: &[u8]) -> Result<TestConfig, ConfigError> {
        let mut de = serde_json::Deserializer::from_slice(bytes);
        let config = serde_path_to_error::deserialize(&mut de).map_err(|e| ConfigError {
            field: field_name(e.path()),
            source: e.into_inner(),
        })?;
        de.end().map_err(|source| ConfigError {
            field: String::new(),
            source,
        })?;
        Ok(config)
    }
}

/// serde_path_to_error writes the root as `.`; a problem there belongs to no one field.
fn field_name(path: &serde_path_to_error::Path) -> String {
    match path.to_string() {
        root if root == "." => String::new(),
        field => field,
    }
}

/// The command line's `--retries`: Kafka's producer retries a send until its delivery timeout;
/// three retries bound it here. (test.json without `retries` reads 0: such runs never retried.)
pub const DEFAULT_RETRIES: u32 = 3;
/// The command line's `--request-timeout`, in test.json when a run does not say.
pub const DEFAULT_REQUEST_TIMEOUT_MS: u64 = 2_000;
/// The command line's `--recovery-timeout`, in test.json when a run does not say.
pub const DEFAULT_RECOVERY_TIMEOUT_MS: u64 = 30_000;
/// The command line's `--nemesis-targets`, in test.json when a run does not say.
pub const DEFAULT_NEMESIS_TARGETS: [&str; 4] = ["random", "leader", "follower", "controller"];

/// The settings only the harness acts on, stored in test.json's `extra` so that a run's
/// test.json alone describes it whole. Every field has a default, so an `extra` of `{}` (as
/// hand-written runs have) still reads.
///
/// The fields are in alphabetical order because `extra` used to be an untyped map, which
/// serde_json writes sorted: in this order a test.json is written byte for byte as before.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct HarnessSettings {
    /// How producers talk to the brokers.
    pub client: Client,
    /// Set when the run starts.
    pub cluster_id: String,
    pub harness_version: String,
    pub kill_signal: KillSignal,
    /// `--lazyfs`: the brokers' data dirs were lazy mounts, so power-loss faults could run.
    pub lazyfs: bool,
    /// Whom faults aim at, in the harness's words (`random`, `leader`, ...).
    pub nemesis_targets: Vec<String>,
    /// The flags every broker got (`--fsync` makes each append durable).
    pub node_args: Vec<String>,
    pub node_bin: PathBuf,
    pub recovery_timeout_ms: u64,
    pub request_timeout_ms: u64,
    /// Keys of `extra` this version does not know, kept so that rewriting a stored run's
    /// test.json drops nothing.
    #[serde(flatten)]
    pub other: Map<String, Value>,
}

impl Default for HarnessSettings {
    fn default() -> Self {
        HarnessSettings {
            client: Client::default(),
            cluster_id: String::new(),
            harness_version: String::new(),
            kill_signal: KillSignal::default(),
            lazyfs: false,
            nemesis_targets: DEFAULT_NEMESIS_TARGETS.map(String::from).to_vec(),
            node_args: Vec::new(),
            node_bin: PathBuf::new(),
            recovery_timeout_ms: DEFAULT_RECOVERY_TIMEOUT_MS,
            request_timeout_ms: DEFAULT_REQUEST_TIMEOUT_MS,
            other: Map::new(),
        }
    }
}

impl HarnessSettings {
    /// Whether every broker fsynced each append (`--fsync` among `node_args`).
    pub fn fsync(&self) -> bool {
        self.node_args.iter().any(|arg| arg == "--fsync")
    }
}

/// The Kafka version whose replication rules the brokers follow (`--kafka-version`): the
/// node's `version.rs` holds each version's rules, docs/replication.md cites Kafka's source
/// for each. What a version means for the guarantee is here ([`KafkaVersion::hw_truncation`]).
///
/// test.json written before the version became a setting has `replication_protocol`: its
/// `current` is read as 3.7 (the rules the node followed then) and `legacy-hw` as 0.10.2.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Default)]
pub enum KafkaVersion {
    /// Eligible Leader Replicas (KIP-966) on, as for new clusters from 4.1.
    #[default]
    V4_1,
    /// KRaft with leader epochs and broker epochs, without Eligible Leader Replicas.
    V3_7,
    /// Truncation to the HW checkpoint (before KIP-101): can lose committed records.
    V0_10_2,
}

impl KafkaVersion {
    pub const ALL: [KafkaVersion; 3] = [
        KafkaVersion::V4_1,
        KafkaVersion::V3_7,
        KafkaVersion::V0_10_2,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            KafkaVersion::V4_1 => "4.1",
            KafkaVersion::V3_7 => "3.7",
            KafkaVersion::V0_10_2 => "0.10.2",
        }
    }

    /// Whether a follower truncates to its HW when it follows a new leader (Kafka before 0.11,
    /// the flaw KIP-101 fixed): committed records can then be lost.
    pub fn hw_truncation(self) -> bool {
        self == KafkaVersion::V0_10_2
    }
}

/// What clients do.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Workload {
    /// Producers only.
    Produce,
    /// Producers plus one consumer per partition.
    ProduceConsume,
}

impl Workload {
    pub const ALL: [Workload; 2] = [Workload::Produce, Workload::ProduceConsume];

    pub fn as_str(self) -> &'static str {
        match self {
            Workload::Produce => "produce",
            Workload::ProduceConsume => "produce-consume",
        }
    }
}

/// What the random nemesis can inject: single faults and the harness's fault packages. What
/// each one does is the harness's.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum FaultKind {
    Kill,
    Pause,
    /// Read from `latency` too, the word of the first releases.
    Delay,
    Partition,
    IsrPressure,
    LeaderLoss,
    RollingRestart,
    /// Only with `--lazyfs`: SIGKILL a broker and drop what it did not fsync.
    PowerLoss,
    /// Only with Kafka-aware links (`--client kafka`, `--system`): drop Produce responses from
    /// the leader after the broker appended, closing the client's connection.
    DropResponse,
}

impl FaultKind {
    pub const ALL: [FaultKind; 9] = [
        FaultKind::Kill,
        FaultKind::Pause,
        FaultKind::Delay,
        FaultKind::Partition,
        FaultKind::IsrPressure,
        FaultKind::LeaderLoss,
        FaultKind::RollingRestart,
        FaultKind::PowerLoss,
        FaultKind::DropResponse,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            FaultKind::Kill => "kill",
            FaultKind::Pause => "pause",
            FaultKind::Delay => "delay",
            FaultKind::Partition => "partition",
            FaultKind::IsrPressure => "isr-pressure",
            FaultKind::LeaderLoss => "leader-loss",
            FaultKind::RollingRestart => "rolling-restart",
            FaultKind::PowerLoss => "power-loss",
            FaultKind::DropResponse => "drop-response",
        }
    }
}

/// One entry of test.json's `nemesis`: a fault of the random nemesis, or `schedule` when a
/// schedule file replaced it. Written as one string.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum NemesisKind {
    Schedule,
    Fault(FaultKind),
}

impl NemesisKind {
    pub const ALL: [NemesisKind; 10] = [
        NemesisKind::Schedule,
        NemesisKind::Fault(FaultKind::Kill),
        NemesisKind::Fault(FaultKind::Pause),
        NemesisKind::Fault(FaultKind::Delay),
        NemesisKind::Fault(FaultKind::Partition),
        NemesisKind::Fault(FaultKind::IsrPressure),
        NemesisKind::Fault(FaultKind::LeaderLoss),
        NemesisKind::Fault(FaultKind::RollingRestart),
        NemesisKind::Fault(FaultKind::PowerLoss),
        NemesisKind::Fault(FaultKind::DropResponse),
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            NemesisKind::Schedule => "schedule",
            NemesisKind::Fault(kind) => kind.as_str(),
        }
    }
}

/// How the workload's producers reach the brokers.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Default)]
pub enum Client {
    /// The node's HTTP API.
    #[default]
    Http,
    /// The Kafka wire protocol, through a second proxied client→broker link per broker.
    Kafka,
}

impl Client {
    pub const ALL: [Client; 2] = [Client::Http, Client::Kafka];

    pub fn as_str(self) -> &'static str {
        match self {
            Client::Http => "http",
            Client::Kafka => "kafka",
        }
    }
}

/// How a `kill` fault ends a broker. Read from `sigkill` and `sigterm` too.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Default)]
pub enum KillSignal {
    /// SIGKILL: a crash.
    #[default]
    Kill,
    /// SIGTERM: a clean shutdown.
    Term,
}

impl KillSignal {
    pub const ALL: [KillSignal; 2] = [KillSignal::Kill, KillSignal::Term];

    pub fn as_str(self) -> &'static str {
        match self {
            KillSignal::Kill => "kill",
            KillSignal::Term => "term",
        }
    }
}

/// A setting with a fixed set of values, each spelt one way when written and read under its
/// name or an alias. Names are matched ignoring ASCII case, because test.json once stored the
/// kill signal as typed (`SIGKILL`) and such runs must still read.
trait Named: Copy + 'static {
    /// What the setting is, in an error message.
    const WHAT: &'static str;
    /// Every value, in the order error messages list them.
    const VALUES: &'static [Self];
    /// Other spellings that are read, and what they mean.
    const ALIASES: &'static [(&'static str, Self)];
    fn name(self) -> &'static str;
}

/// Gives a [`Named`] enum its trait and `Display`, `FromStr`, `Serialize` and `Deserialize`,
/// all by its `as_str` names.
macro_rules! named {
    ($ty:ident, $what:literal, [$(($alias:literal, $value:expr)),*]) => {
        impl Named for $ty {
            const WHAT: &'static str = $what;
            const VALUES: &'static [Self] = &$ty::ALL;
            const ALIASES: &'static [(&'static str, Self)] = &[$(($alias, $value)),*];
            fn name(self) -> &'static str {
                self.as_str()
            }
        }

        impl fmt::Display for $ty {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(self.as_str())
            }
        }

        impl FromStr for $ty {
            type Err = String;
            fn from_str(s: &str) -> Result<Self, String> {
                from_name(s).ok_or_else(|| unknown_name::<$ty>(s))
            }
        }

        impl Serialize for $ty {
            fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
                s.serialize_str(self.as_str())
            }
        }

        impl<'de> Deserialize<'de> for $ty {
            fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
                d.deserialize_str(NameVisitor(PhantomData))
            }
        }
    };
}

named!(
    KafkaVersion,
    "Kafka version",
    [
        ("4.1.0", KafkaVersion::V4_1),
        ("3.7.0", KafkaVersion::V3_7),
        ("0.10.2.1", KafkaVersion::V0_10_2),
        ("current", KafkaVersion::V3_7),
        ("legacy-hw", KafkaVersion::V0_10_2)
    ]
);
named!(Workload, "workload", []);
named!(FaultKind, "fault", [("latency", FaultKind::Delay)]);
named!(
    NemesisKind,
    "nemesis",
    [("latency", NemesisKind::Fault(FaultKind::Delay))]
);
named!(Client, "client", []);
named!(
    KillSignal,
    "kill signal",
    [("sigkill", KillSignal::Kill), ("sigterm", KillSignal::Term)]
);

fn from_name<T: Named>(s: &str) -> Option<T> {
    let names = T::VALUES.iter().map(|&value| (value.name(), value));
    names
        .chain(T::ALIASES.iter().copied())
        .find(|(name, _)| name.eq_ignore_ascii_case(s))
        .map(|(_, value)| value)
}

/// `unknown Kafka version "4.11" (known: 4.1, 3.7, 0.10.2)`: for the command line.
fn unknown_name<T: Named>(s: &str) -> String {
    let known: Vec<&str> = T::VALUES.iter().map(|v| v.name()).collect();
    format!("unknown {} {s:?} (known: {})", T::WHAT, known.join(", "))
}

/// `unknown variant "4.11", expected one of "4.1", "3.7", "0.10.2"`: for test.json, where
/// serde_path_to_error puts the field before it.
fn unknown_variant<T: Named>(s: &str) -> String {
    let known: Vec<String> = T::VALUES
        .iter()
        .map(|v| format!("{:?}", v.name()))
        .collect();
    format!(
        "unknown variant {s:?}, expected one of {}",
        known.join(", ")
    )
}

struct NameVisitor<T>(PhantomData<T>);

impl<T: Named> Visitor<'_> for NameVisitor<T> {
    type Value = T;

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        write!(f, "a {} name", T::WHAT)
    }

    fn visit_str<E: de::Error>(self, s: &str) -> Result<T, E> {
        from_name(s).ok_or_else(|| E::custom(unknown_variant::<T>(s)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every value of `T` is written as its name and read back from it, on both paths.
    fn round_trips<T>()
    where
        T: Named + fmt::Debug + PartialEq + FromStr<Err = String> + Serialize,
        T: for<'de> Deserialize<'de>,
    {
        for &value in T::VALUES {
            let name = value.name();
            assert_eq!(name.parse::<T>(), Ok(value));
            assert_eq!(serde_json::to_string(&value).unwrap(), format!("{name:?}"));
            let back: T = serde_json::from_str(&format!("{name:?}")).unwrap();
            assert_eq!(back, value);
        }
    }

    #[test]
    fn every_name_round_trips() {
        round_trips::<KafkaVersion>();
        round_trips::<Workload>();
        round_trips::<FaultKind>();
        round_trips::<NemesisKind>();
        round_trips::<Client>();
        round_trips::<KillSignal>();
    }

    #[test]
    fn an_unknown_name_lists_the_known_ones() {
        assert_eq!(
            "3.8".parse::<KafkaVersion>(),
            Err(r#"unknown Kafka version "3.8" (known: 4.1, 3.7, 0.10.2)"#.into())
        );
        // Runs stored before the version was a setting name their rules the old way.
        assert_eq!("current".parse(), Ok(KafkaVersion::V3_7));
        assert_eq!("legacy-hw".parse(), Ok(KafkaVersion::V0_10_2));
        assert_eq!("3.7.0".parse(), Ok(KafkaVersion::V3_7));
        assert_eq!(
            "sigint".parse::<KillSignal>(),
            Err(r#"unknown kill signal "sigint" (known: kill, term)"#.into())
        );
        let e = serde_json::from_str::<Workload>(r#""produce_consume""#).unwrap_err();
        assert!(e.to_string().starts_with(
            r#"unknown variant "produce_consume", expected one of "produce", "produce-consume""#
        ));
    }

    #[test]
    fn aliases_are_read_and_never_written() {
        assert_eq!("latency".parse(), Ok(FaultKind::Delay));
        assert_eq!("SIGTERM".parse(), Ok(KillSignal::Term));
        let nemesis: Vec<NemesisKind> = serde_json::from_str(r#"["latency","kill"]"#).unwrap();
        assert_eq!(
            nemesis,
            [FaultKind::Delay, FaultKind::Kill].map(NemesisKind::Fault)
        );
        assert_eq!(
            serde_json::to_string(&nemesis).unwrap(),
            r#"["delay","kill"]"#
        );
    }

    #[test]
    fn the_fault_kinds_are_listed_in_their_documented_order() {
        let names = FaultKind::ALL.map(FaultKind::as_str);
        assert_eq!(
            names,
            [
                "kill",
                "pause",
                "delay",
                "partition",
                "isr-pressure",
                "leader-loss",
                "rolling-restart",
                "power-loss",
                "drop-response"
            ]
        );
    }
}
