//! The run's network: one [`Link`] proxy per directed link — client→controller, client→broker,
//! broker→controller, broker→broker, and with `--client kafka` a second client→broker link to
//! each broker's Kafka listener (the address the broker advertises to Kafka clients) — and the
//! operations faults use on them (cut a set of
//! links, heal them all, set delays on a selection). Nodes are only ever given the links'
//! addresses, so every byte between two endpoints crosses a proxy the harness controls. The
//! Kafka links are Kafka-aware ([`Link::start_kafka`]): they rewrite the broker addresses in
//! Metadata and FindCoordinator responses to the Kafka links' own, so a Kafka client stays
//! behind the proxies even with a broker that advertises its own address (faultline-node
//! advertises the proxy, so for it the rewrite changes nothing). The harness's own admin calls
//! (readiness, leader lookups, the final read) go straight to the nodes and are never faulted.
//!
//! Message faults (`drop-response`, `delay-response`, `error-response`) act on the Kafka links
//! only, selected by [`KafkaLinks`]: every one, or the one to a broker.
//!
//! A system described by a system file (`--system`, docs/systems.md) gets a smaller network
//! ([`Network::start_system`]): the client→broker Kafka links, broker→broker links only
//! for the peer ports its command names with `{peer_port:N}`, and broker→service links for
//! the services it names with `{service_link:NAME}`. It has no controller links.

use std::collections::BTreeMap;
use std::fmt;
use std::net::SocketAddr;
use std::sync::Arc;

use faultline_workloads::Endpoints;

use crate::cluster::node::{Endpoint, Node};
use crate::cluster::proxy::kafka::faults::{Budget, ResponseFault, ResponseFaults};
use crate::cluster::proxy::kafka::AddressMap;
use crate::cluster::proxy::{Delay, Direction, Link};

/// Which links a delay applies to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LinkSelector {
    All,
    /// Every link from or to this endpoint.
    Touching(Endpoint),
    /// One directed link.
    Link(Endpoint, Endpoint),
}

impl LinkSelector {
    pub fn matches(self, from: Endpoint, to: Endpoint) -> bool {
        match self {
            LinkSelector::All => true,
            LinkSelector::Touching(e) => from == e || to == e,
            LinkSelector::Link(a, b) => from == a && to == b,
        }
    }
}

impl fmt::Display for LinkSelector {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            LinkSelector::All => f.write_str("all"),
            LinkSelector::Touching(e) => write!(f, "node {e}"),
            LinkSelector::Link(a, b) => write!(f, "link {a}->{b}"),
        }
    }
}

/// Which Kafka links a message fault acts on: every client→broker Kafka link, or the one to
/// a broker.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum KafkaLinks {
    All,
    Broker(u32),
}

impl KafkaLinks {
    pub fn matches(self, to: Endpoint) -> bool {
        match self {
            KafkaLinks::All => true,
            KafkaLinks::Broker(id) => to == Endpoint::broker(id),
        }
    }

    /// The broker it names, if one.
    pub fn broker(self) -> Option<u32> {
        match self {
            KafkaLinks::All => None,
            KafkaLinks::Broker(id) => Some(id),
        }
    }
}

impl fmt::Display for KafkaLinks {
    /// `all`, or the broker's id: the schedule language's `on all`, `on 2`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            KafkaLinks::All => f.write_str("all"),
            KafkaLinks::Broker(id) => write!(f, "{id}"),
        }
    }
}

pub struct Network {
    links: BTreeMap<(Endpoint, Endpoint), Link>,
    /// client→broker links to the brokers' Kafka listeners. They are the same directed links as
    /// the HTTP ones for every fault: cut, healed and delayed together with them.
    kafka_links: BTreeMap<(Endpoint, Endpoint), Link>,
}

impl Network {
    /// Starts a proxy for every directed link between the clients, the controller and the
    /// brokers, pointing at the nodes' real listen addresses.
    pub async fn start(
        controller: SocketAddr,
        brokers: &BTreeMap<u32, SocketAddr>,
        kafka_brokers: &BTreeMap<u32, SocketAddr>,
        seed: u64,
    ) -> std::io::Result<Network> {
        let mut wanted: Vec<(Endpoint, Endpoint, SocketAddr)> = Vec::new();
        wanted.push((Endpoint::Client, Endpoint::CONTROLLER, controller));
        for (&id, &addr) in brokers {
            wanted.push((Endpoint::Client, Endpoint::broker(id), addr));
            wanted.push((Endpoint::broker(id), Endpoint::CONTROLLER, controller));
            for &other in brokers.keys().filter(|&&o| o != id) {
                wanted.push((Endpoint::broker(other), Endpoint::broker(id), addr));
            }
        }
        let mut links = BTreeMap::new();
        for (i, (from, to, upstream)) in wanted.into_iter().enumerate() {
            let link = Link::start(&format!("{from}->{to}"), upstream, seed ^ i as u64).await?;
            links.insert((from, to), link);
        }
        let kafka_links = Network::start_kafka_links(kafka_brokers, seed).await?;
        Ok(Network { links, kafka_links })
    }

    /// The network of a system described by a system file: a Kafka-aware client→broker link to
    /// each broker's Kafka port, one broker→broker link per `(from, to)` in `peers`, to the
    /// peer port `to` listens on, and one broker→service link per `(from, service)` in
    /// `services`, to the service's port. Service links carry bytes only (PostgreSQL's
    /// protocol, faultline-node's HTTP): they are cut and delayed, never read.
    pub async fn start_system(
        kafka_brokers: &BTreeMap<u32, SocketAddr>,
        peers: &BTreeMap<(u32, u32), SocketAddr>,
        services: &BTreeMap<(u32, String), SocketAddr>,
        seed: u64,
    ) -> std::io::Result<Network> {
        let mut wanted: Vec<(Endpoint, Endpoint, SocketAddr)> = Vec::new();
        for (&(from, to), &upstream) in peers {
            wanted.push((Endpoint::broker(from), Endpoint::broker(to), upstream));
        }
        for ((from, name), &upstream) in services {
            wanted.push((Endpoint::broker(*from), Endpoint::service(name), upstream));
        }
        let mut links = BTreeMap::new();
        for (i, (from, to, upstream)) in wanted.into_iter().enumerate() {
            let link = Link::start(&format!("{from}->{to}"), upstream, seed ^ i as u64).await?;
            links.insert((from, to), link);
        }
        let kafka_links = Network::start_kafka_links(kafka_brokers, seed).await?;
        Ok(Network { links, kafka_links })
    }

    /// The services some broker reaches through a link: the endpoints a partition can cut a
    /// broker from besides its peers and the clients.
    pub fn service_endpoints(&self) -> Vec<Endpoint> {
        let mut services: Vec<Endpoint> = self
            .links
            .keys()
            .filter_map(|(_, to)| to.is_service().then_some(*to))
            .collect();
        services.sort();
        services.dedup();
        services
    }

    /// Which harness broker each Kafka port is: the brokers' real Kafka ports and their links'
    /// ports. Metadata is renumbered by it (`Metadata::renumber`), so a system whose brokers
    /// number themselves (every Tansu broker is node 111) is read in the harness's ids.
    pub fn kafka_ports(&self) -> BTreeMap<u16, u32> {
        self.kafka_links
            .iter()
            .filter_map(|((_, to), link)| match to {
                Endpoint::Node(Node::Broker(id)) => {
                    Some([(link.addr().port(), *id), (link.upstream().port(), *id)])
                }
                _ => None,
            })
            .flatten()
            .collect()
    }

    /// The client→broker links to the Kafka listeners, each rewriting broker addresses in the
    /// responses it carries to these links' addresses (a broker's Kafka node id is its id).
    async fn start_kafka_links(
        kafka_brokers: &BTreeMap<u32, SocketAddr>,
        seed: u64,
    ) -> std::io::Result<BTreeMap<(Endpoint, Endpoint), Link>> {
        let addresses = Arc::new(AddressMap::new());
        let mut kafka_links = BTreeMap::new();
        for (i, (&id, &upstream)) in kafka_brokers.iter().enumerate() {
            let (from, to) = (Endpoint::Client, Endpoint::broker(id));
            let name = format!("{from}->{to} (kafka)");
            let link_seed = seed.rotate_left(17) ^ i as u64;
            let link = Link::start_kafka(&name, upstream, link_seed, addresses.clone()).await?;
            let node_id = i32::try_from(id).map_err(|_| {
                std::io::Error::other(format!("broker id {id} is not a Kafka node id"))
            })?;
            // Filled before any client can connect: `start` returns after this loop.
            addresses.insert(node_id, link.addr());
            addresses.insert_port(upstream.port(), link.addr());
            kafka_links.insert((from, to), link);
        }
        Ok(kafka_links)
    }

    /// The proxy address of the client→broker link to `broker`'s Kafka listener.
    pub fn kafka_addr(&self, broker: u32) -> Option<SocketAddr> {
        self.kafka_links
            .get(&(Endpoint::Client, Endpoint::broker(broker)))
            .map(Link::addr)
    }

    /// Every link with its endpoints: the HTTP links, then the Kafka ones.
    fn all_links(&self) -> impl Iterator<Item = (&(Endpoint, Endpoint), &Link)> {
        self.links.iter().chain(self.kafka_links.iter())
    }

    /// The address `from` uses to reach `to`.
    pub fn addr(&self, from: Endpoint, to: Endpoint) -> Option<SocketAddr> {
        self.links.get(&(from, to)).map(Link::addr)
    }

    /// The addresses the workload's clients use.
    pub fn client_endpoints(&self) -> Endpoints {
        // Absent for a system file's system, which has no controller.
        let controller = self.addr(Endpoint::Client, Endpoint::CONTROLLER);
        let brokers = self
            .links
            .iter()
            .filter_map(|((from, to), link)| match (from, to) {
                (Endpoint::Client, Endpoint::Node(Node::Broker(id))) => Some((*id, link.addr())),
                _ => None,
            })
            .collect();
        let kafka_brokers = self
            .kafka_links
            .iter()
            .filter_map(|((_, to), link)| match to {
                Endpoint::Node(Node::Broker(id)) => Some((*id, link.addr())),
                _ => None,
            })
            .collect();
        Endpoints {
            controller,
            brokers,
            kafka_brokers,
            kafka_ports: self.kafka_ports(),
        }
    }

    /// Cuts the given directed links (those that exist); returns how many were cut.
    pub fn cut(&self, pairs: &[(Endpoint, Endpoint)]) -> usize {
        pairs
            .iter()
            .flat_map(|pair| [self.links.get(pair), self.kafka_links.get(pair)])
            .flatten()
            .map(Link::cut)
            .count()
    }

    /// Heals every cut link; returns how many were cut.
    pub fn heal(&self) -> usize {
        self.all_links()
            .map(|(_, link)| link)
            .filter(|link| link.control().cut)
            .map(Link::heal)
            .count()
    }

    /// Sets the delay of both directions of every selected link; returns how many.
    pub fn delay(&self, selector: LinkSelector, delay: Delay, one_way: bool) -> usize {
        self.all_links()
            .filter(|((from, to), _)| selector.matches(*from, *to))
            .map(|(_, link)| {
                link.set_delay(Direction::Forward, delay);
                if !one_way {
                    link.set_delay(Direction::Backward, delay);
                }
            })
            .count()
    }

    pub fn links(&self) -> impl Iterator<Item = (&(Endpoint, Endpoint), &Link)> {
        self.all_links()
    }

    /// Whether the clients reach the brokers through Kafka-aware links (`--client kafka`, or a
    /// system file's system): message faults need them.
    pub fn has_kafka_links(&self) -> bool {
        !self.kafka_links.is_empty()
    }

    /// The message faults of the selected Kafka links.
    fn response_faults(&self, links: KafkaLinks) -> impl Iterator<Item = &ResponseFaults> {
        self.kafka_links
            .iter()
            .filter(move |((_, to), _)| links.matches(*to))
            .filter_map(|(_, link)| link.response_faults())
    }

    /// Puts a message fault in force on the selected Kafka links, replacing one on the same
    /// API key; returns on how many links. Its count is shared: `count K` is the next K
    /// matching responses on any of them.
    pub fn set_response_fault(&self, links: KafkaLinks, fault: ResponseFault) -> usize {
        let budget = Budget::of(&fault);
        self.response_faults(links)
            .map(|faults| faults.set_shared(fault, budget.clone()))
            .count()
    }

    /// Removes the message fault on `api_key`'s responses from the selected Kafka links;
    /// returns how many links it was on.
    pub fn pass_responses(&self, links: KafkaLinks, api_key: i16) -> usize {
        self.response_faults(links)
            .filter(|faults| faults.remove(api_key))
            .count()
    }

    /// Removes every message fault from every link; returns how many there were.
    pub fn clear_response_faults(&self) -> usize {
        self.response_faults(KafkaLinks::All)
            .map(ResponseFaults::clear)
            .sum()
    }

    /// What message faults did, one line per link that they changed something on
    /// (`client->2 (kafka): responses 1 dropped`).
    pub fn message_fault_counts(&self) -> Vec<String> {
        self.kafka_links
            .values()
            .filter_map(|link| {
                let counts = link.stats().message_faults()?;
                Some(format!("{}: {counts}", link.name()))
            })
            .collect()
    }
}
