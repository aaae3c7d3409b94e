//! The one place a broker process starts its listeners: the HTTP API ([`crate::broker_http`])
//! and, with `--kafka-listen`, the Kafka wire protocol ([`crate::kafka`]), both over one
//! [`Broker`]; then the broker's background loops, and the clean shutdown once the HTTP server
//! stops (SIGTERM or SIGINT). Both transports depend on the broker and the broker on neither,
//! so this module, which knows all three, is where they meet.

use std::net::SocketAddr;

use crate::broker::{Broker, BrokerConfig};
use crate::{broker_http, kafka, server};

/// Runs a broker until SIGTERM/SIGINT: the HTTP API on `listen` and, when `kafka_listen` is
/// given, the Kafka wire protocol beside it.
pub async fn run_broker(
    config: BrokerConfig,
    listen: SocketAddr,
    kafka_listen: Option<SocketAddr>,
) -> anyhow::Result<()> {
    let broker = Broker::new(config)?;
    if let Some(addr) = kafka_listen {
        let listener = kafka::bind(addr).await?;
        tokio::spawn(kafka::serve(broker.clone(), listener));
    }
    broker.start_background();
    let result = server::serve(listen, broker_http::router(broker.clone())).await;
    broker.shutdown();
    result
}
