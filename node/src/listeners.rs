//! The one place a broker process starts its listeners: the HTTP API ([`crate::broker_http`])
//! and, with `--kafka-listen`, the Kafka wire protocol ([`crate::kafka`]), both over one
//! [`Broker`]; then the broker's background loops; and its stop. The first stop request
//! (SIGTERM or SIGINT, caught in `main.rs`) starts a controlled shutdown
//! ([`crate::broker::shutdown`]) while the listeners keep serving; once it ends, the HTTP server
//! finishes the requests in flight and the logs are closed cleanly. Both transports depend on
//! the broker and the broker on neither, so this module, which knows all three, is where they
//! meet.

use std::net::SocketAddr;

use crate::broker::shutdown::{self, StopRequests};
use crate::broker::{Broker, BrokerConfig};
use crate::{broker_http, kafka};

/// Runs a broker until it has stopped after a stop request from `stops`: the HTTP API on
/// `listen` and, when `kafka_listen` is given, the Kafka wire protocol beside it.
pub async fn run_broker(
    config: BrokerConfig,
    listen: SocketAddr,
    kafka_listen: Option<SocketAddr>,
    mut stops: StopRequests,
) -> anyhow::Result<()> {
    let broker = Broker::new(config)?;
    if let Some(addr) = kafka_listen {
        let listener = kafka::bind(addr).await?;
        tokio::spawn(kafka::serve(broker.clone(), listener));
    }
    broker.start_background();
    let stopping = broker.clone();
    let stop = async move {
        // A closed channel means no signal can come any more: stop as if one had.
        let signal = stops.recv().await.unwrap_or("end of stop requests");
        shutdown::stop(&stopping, signal, &mut stops).await;
    };
    let result =
        crate::server::serve_until(listen, broker_http::router(broker.clone()), stop).await;
    broker.shutdown();
    result
}
