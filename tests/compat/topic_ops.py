"""What an operator's tool does to a topic under a running flow, with confluent-kafka's
AdminClient:

- recreate: deletes the topic and creates it again. The deletion is awaited (Kafka deletes
  asynchronously and refuses to create a topic still being deleted with TOPIC_ALREADY_EXISTS);
  the new topic gets the broker's default replication factor and is waited for until every
  partition has a leader.
- delete-records: deletes the records of one partition below an offset (DeleteRecords).
- delete: deletes the topic, and waits until metadata no longer lists it.

Run: <venv python> tests/compat/topic_ops.py --bootstrap HOST:PORT --topic T recreate --partitions N
     <venv python> tests/compat/topic_ops.py --bootstrap HOST:PORT --topic T delete-records --partition P --before OFFSET
     <venv python> tests/compat/topic_ops.py --bootstrap HOST:PORT --topic T delete
"""

import time

from confluent_kafka import KafkaError, KafkaException, TopicPartition
from confluent_kafka.admin import AdminClient, NewTopic

import common


def body(args):
    admin = AdminClient({"bootstrap.servers": args.bootstrap})
    if args.op == "delete-records":
        tp = TopicPartition(args.topic, args.partition, args.before)
        deleted = admin.delete_records([tp], operation_timeout=30)[tp].result(30)
        common.check_eq(deleted.low_watermark, args.before, "the new low watermark")
        return f"records of {args.topic}/{args.partition} below {args.before} deleted"
    admin.delete_topics([args.topic], operation_timeout=30)[args.topic].result(30)
    if args.op == "delete":
        dl = common.Deadline(args.timeout, f"{args.topic} gone from metadata")
        while args.topic in admin.list_topics(timeout=10).topics:
            dl.check()
            time.sleep(0.2)
        return f"{args.topic} deleted"
    dl = common.Deadline(args.timeout, f"creating {args.topic} again")
    attempts = 0
    while True:
        attempts += 1
        try:
            admin.create_topics([NewTopic(args.topic, args.partitions)], operation_timeout=30)[args.topic].result(30)
            break
        except KafkaException as e:
            if e.args[0].code() != KafkaError.TOPIC_ALREADY_EXISTS:
                raise
            dl.check(str(e))
            time.sleep(0.2)
    dl = common.Deadline(args.timeout, f"leaders of the new {args.topic}")
    while True:
        md = admin.list_topics(args.topic, timeout=10).topics.get(args.topic)
        if md is not None and md.error is None and len(md.partitions) == args.partitions and all(p.leader >= 0 for p in md.partitions.values()):
            break
        dl.check()
        time.sleep(0.2)
    return f"{args.topic} deleted and created again with {args.partitions} partitions after {attempts} attempt(s)"


def extra(p):
    p.add_argument("--topic", required=True)
    ops = p.add_subparsers(dest="op", required=True)
    ops.add_parser("recreate").add_argument("--partitions", type=int, required=True)
    ops.add_parser("delete")
    d = ops.add_parser("delete-records")
    d.add_argument("--partition", type=int, required=True)
    d.add_argument("--before", type=int, required=True)


if __name__ == "__main__":
    a = common.parse_args(__doc__, extra)
    common.run_main("topic_ops", body, a)
