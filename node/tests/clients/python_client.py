"""Drives a real Python Kafka client against a faultline-node cluster for the acceptance tests
in node/tests/it/kafka_clients.rs: produces N values with the client's default settings, then
reads the partition back from the beginning without a consumer group (assign, no commits).

usage: python_client.py confluent|confluent-idempotent|confluent-retrying|kafka-python BOOTSTRAP TOPIC PREFIX N TIMEOUT_S

confluent-idempotent produces with enable.idempotence=true and acks=all, one value every 5 ms,
so that a test can kill the leader or drop responses while sends are in flight (librdkafka then
retries them with the same producer id and sequences). confluent-retrying produces the same way
with enable.idempotence=false: librdkafka still retries a send whose answer it did not get
(message.send.max.retries), blindly.
prints one JSON line: {"acked": [...values acknowledged...], "read": [...values read...]}
Every wait is bounded by TIMEOUT_S."""

import json
import sys
import time


def confluent(bootstrap, topic, values, timeout_s, idempotent=False, paced=False):
    from confluent_kafka import Consumer, Producer, TopicPartition, OFFSET_BEGINNING

    started = time.monotonic()
    acked = []
    settings = {"bootstrap.servers": bootstrap}
    if paced:
        settings.update({"enable.idempotence": idempotent, "acks": "all",
                         "message.timeout.ms": int(timeout_s * 1000)})
    producer = Producer(settings)

    def report(err, msg):
        if err is None:
            acked.append(msg.value().decode())
        else:
            print(f"delivery failed: {err}", file=sys.stderr)

    for v in values:
        producer.produce(topic, value=v.encode(), partition=0, on_delivery=report)
        producer.poll(0)
        if paced:
            time.sleep(0.005)
    sent = time.monotonic()
    left = producer.flush(timeout_s)
    if left:
        print(f"{left} messages not delivered within {timeout_s} s", file=sys.stderr)
    flushed = time.monotonic()

    consumer = Consumer(
        {"bootstrap.servers": bootstrap, "group.id": "faultline-acceptance",
         "enable.auto.commit": False}
    )
    consumer.assign([TopicPartition(topic, 0, OFFSET_BEGINNING)])
    read = []
    deadline = time.monotonic() + timeout_s
    while not set(acked) <= set(read) and time.monotonic() < deadline:
        msg = consumer.poll(0.5)
        if msg is None:
            continue
        if msg.error():
            print(f"consume error: {msg.error()}", file=sys.stderr)
            continue
        read.append(msg.value().decode())
    consumer.close()
    print(f"confluent: sent in {sent - started:.1f} s, flushed in {flushed - sent:.1f} s, "
          f"read back {len(read)} in {time.monotonic() - flushed:.1f} s", file=sys.stderr)
    return acked, read


def kafka_python(bootstrap, topic, values, timeout_s):
    from kafka import KafkaConsumer, KafkaProducer, TopicPartition

    producer = KafkaProducer(bootstrap_servers=bootstrap)
    futures = [(v, producer.send(topic, value=v.encode(), partition=0)) for v in values]
    acked = []
    for v, f in futures:
        try:
            f.get(timeout=timeout_s)
            acked.append(v)
        except Exception as e:  # noqa: BLE001 - a failed send is reported, not fatal
            print(f"send failed: {e!r}", file=sys.stderr)
    producer.close(timeout=timeout_s)

    consumer = KafkaConsumer(bootstrap_servers=bootstrap, enable_auto_commit=False)
    tp = TopicPartition(topic, 0)
    consumer.assign([tp])
    consumer.seek_to_beginning(tp)
    read = []
    deadline = time.monotonic() + timeout_s
    while not set(acked) <= set(read) and time.monotonic() < deadline:
        for records in consumer.poll(timeout_ms=500).values():
            read.extend(r.value.decode() for r in records)
    consumer.close()
    return acked, read


def main():
    client, bootstrap, topic, prefix, n, timeout_s = sys.argv[1:7]
    values = [f"{prefix}-{i}" for i in range(int(n))]
    run = {
        "confluent": confluent,
        "confluent-idempotent": lambda *a: confluent(*a, idempotent=True, paced=True),
        "confluent-retrying": lambda *a: confluent(*a, idempotent=False, paced=True),
        "kafka-python": kafka_python,
    }[client]
    acked, read = run(bootstrap, topic, values, float(timeout_s))
    print(json.dumps({"acked": acked, "read": read}))


if __name__ == "__main__":
    main()
