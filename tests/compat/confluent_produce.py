"""Writes records with confluent-kafka (librdkafka) for the replication tests, as a producer
application would: one producer per compression codec, keys (some null), values (some null),
headers in order with a repeated key and a null value, and distinct timestamps.

    confluent_produce.py --bootstrap HOST:PORT --topic T --partitions P --records N
                         [--codecs none,gzip,snappy,lz4,zstd] [--tag TAG] [--keyed] [--tombstones]

Partition i is written by the producer of codec i (modulo the codec list), so every codec ends
up in its own partitions. --keyed gives every record a key (compacted topics refuse records
without one); --tombstones makes every fifth record of a key a tombstone (null value).
Prints one line per partition: "partition P: N records".
"""

import common
from confluent_kafka import Producer


def extra(p):
    p.add_argument("--topic", required=True)
    p.add_argument("--partitions", type=int, required=True)
    p.add_argument("--records", type=int, required=True, help="records per partition")
    p.add_argument("--codecs", default="none,gzip,snappy,lz4,zstd")
    p.add_argument("--tag", default="r")
    p.add_argument("--keyed", action="store_true")
    p.add_argument("--tombstones", action="store_true")


def record(args, partition, n):
    """The n-th record of a partition: (key, value, headers, timestamp)."""
    key = f"{args.tag}-key-{partition}-{n % 17 if args.keyed else n}".encode()
    if not args.keyed and n % 5 == 0:
        key = None
    value = f"{args.tag}-value-{partition}-{n}-".encode() + b"x" * (n % 97)
    if (args.tombstones and n % 5 == 4) or (not args.keyed and n % 11 == 0):
        value = None
    headers = [("trace", f"t{n}".encode()), ("hop", b"first"), ("hop", b"second")]
    if n % 3 == 0:
        headers.append(("empty", None))
    if n % 7 == 0:
        headers = []
    # Distinct timestamps in the recent past (Kafka refuses those more than an hour ahead).
    timestamp = 1_760_000_000_000 + partition * 1_000_000 + n
    return key, value, headers, timestamp


def main(args):
    codecs = args.codecs.split(",")
    producers = {
        codec: Producer({
            "bootstrap.servers": args.bootstrap,
            "compression.type": codec,
            "linger.ms": 20,
            "batch.num.messages": 200,
            "enable.idempotence": True,
        })
        for codec in codecs
    }
    errors = []

    def delivered(err, msg):
        if err is not None:
            errors.append(f"{msg.topic()}/{msg.partition()}: {err}")

    for partition in range(args.partitions):
        producer = producers[codecs[partition % len(codecs)]]
        for n in range(args.records):
            key, value, headers, timestamp = record(args, partition, n)
            producer.produce(args.topic, value=value, key=key, headers=headers, partition=partition,
                             timestamp=timestamp, on_delivery=delivered)
            producer.poll(0)
    for producer in producers.values():
        left = producer.flush(args.timeout)
        common.check(left == 0, f"{left} records not delivered within {args.timeout} s")
    common.check(not errors, f"delivery errors: {errors[:5]}")
    for partition in range(args.partitions):
        common.log(f"partition {partition}: {args.records} records ({codecs[partition % len(codecs)]})")
    return f"{args.records * args.partitions} records to {args.topic}"


if __name__ == "__main__":
    common.run_main("confluent_produce", main, common.parse_args("confluent-kafka producer for the replication tests", extra))
