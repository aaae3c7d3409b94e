#!/usr/bin/env bash
# Installs the Kafka clients that the acceptance tests in node/tests/it/kafka_clients.rs drive
# against a real faultline-node cluster: kcat (Debian's package, librdkafka underneath),
# confluent-kafka and kafka-python (from the Python registry); and curl, for the faultline-node
# system file's setup. Safe to run twice.
set -euo pipefail

# curl: examples/systems/faultline-node.toml creates its topic through the controller's HTTP API.
if ! command -v kcat >/dev/null 2>&1 || ! command -v curl >/dev/null 2>&1; then
    if [ "$(id -u)" = 0 ]; then SUDO=""; else SUDO="sudo"; fi
    $SUDO apt-get update -qq
    DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq kcat curl
fi

PYTHON="${PYTHON:-python3}"
if ! "$PYTHON" -c 'import confluent_kafka, kafka' >/dev/null 2>&1; then
    "$PYTHON" -m pip install --quiet confluent-kafka kafka-python
fi

echo "kcat: $(command -v kcat)"
"$PYTHON" -c 'import confluent_kafka, kafka; print("confluent-kafka", confluent_kafka.version()[0], "/ librdkafka", confluent_kafka.libversion()[0]); print("kafka-python", kafka.__version__)'
