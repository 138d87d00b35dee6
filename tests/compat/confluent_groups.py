"""confluent-kafka (librdkafka) consumer groups against a running Tern broker.

Run: <venv python> tests/compat/confluent_groups.py --bootstrap 127.0.0.1:PORT

Three Consumers in one group (range assignor, manual commits: every 50 records and on
revocation) read a fresh 6-partition topic: they must split it 2/2/2; the first then closes
without committing its last records, and the other two must take over 3/3. Every produced
record must be delivered with its content, every assignment must resume exactly at the last
commit, and the only duplicates are the leaver's uncommitted records (see groups_common).

Exit 0 only when every check passed.
"""

from confluent_kafka import Consumer, KafkaException, Producer, TopicPartition
from confluent_kafka.admin import AdminClient, NewTopic

import common
import groups_common as gc
from common import check_eq, fail, log

NAME = "confluent_groups"


class Client:
    def __init__(self, args, name, topic, group, ledger):
        self.name, self.topic, self.ledger = name, topic, ledger
        self.commit_on_revoke = True
        self.c = Consumer({
            "bootstrap.servers": args.bootstrap,
            "group.id": group,
            "client.id": name,
            "enable.auto.commit": False,
            "auto.offset.reset": "earliest",
            "partition.assignment.strategy": "range",
            "heartbeat.interval.ms": 500,
            "session.timeout.ms": 10000,
        })
        self.c.subscribe([topic], on_assign=self._on_assign, on_revoke=self._on_revoke)

    def _on_assign(self, consumer, partitions):
        self.ledger.assigned(self.name, [tp.partition for tp in partitions])

    def _on_revoke(self, consumer, partitions):
        if self.commit_on_revoke:
            commit(self)
        self.ledger.revoked(self.name, [tp.partition for tp in partitions])


    def poll(self, timeout):
        out = []
        for m in self.c.consume(num_messages=20, timeout=timeout):
            if m.error():
                fail(f"{self.name}: consume error {m.error()}")
            out.append((m.partition(), m.offset(), m.key(), m.value()))
        return out


def commit(client):
    offsets = client.ledger.processed_offsets(client.name)
    if not offsets:
        return
    tps = [TopicPartition(client.topic, p, o) for p, o in offsets.items()]
    try:
        result = client.c.commit(offsets=tps, asynchronous=False)
    except KafkaException as e:
        fail(f"{client.name}: commit {offsets} failed: {e.args[0]}")
    for tp in result:
        if tp.error:
            fail(f"{client.name}: commit of partition {tp.partition} failed: {tp.error}")
    client.ledger.commit_done(client.name, offsets)


def leave(client):
    client.commit_on_revoke = False
    client.c.close()


def producer(args, topic):
    p = Producer({"bootstrap.servers": args.bootstrap, "acks": "all", "linger.ms": 5})

    def produce(records):
        errors, placed = [], {}

        def report(err, msg):
            if err:
                errors.append(err)
            else:
                placed[(msg.partition(), msg.offset())] = (msg.key(), msg.value())

        for part, key, value in records:
            p.produce(topic, key=key, value=value, partition=part, on_delivery=report)
            p.poll(0)
        check_eq(p.flush(30), 0, "records still queued after flush")
        check_eq(errors, [], "delivery errors")
        check_eq(len(placed), len(records), "delivery reports")
        log(f"  produced {len(records)} records")
        return placed

    return produce


def body(args):
    admin = AdminClient({"bootstrap.servers": args.bootstrap})
    topic = common.unique("compat-confluent-groups")
    group = common.unique("compat-confluent-group")
    admin.create_topics([NewTopic(topic, num_partitions=gc.PARTITIONS, replication_factor=1)])[topic].result(30)
    ledger = gc.Ledger()
    make = lambda: [Client(args, f"consumer-{i}", topic, group, ledger) for i in range(3)]
    return gc.run(args, ledger, producer(args, topic), make, commit, leave, lambda c: c.c.close(), commit_every=50)


def extra_args(p):
    p.add_argument("--records", type=int, default=3042, help="records to produce (default 3042)")


if __name__ == "__main__":
    common.run_main(NAME, body, common.parse_args(__doc__.splitlines()[0], extra_args))
