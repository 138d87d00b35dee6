"""kafka-python consumer groups against a running Tern broker.

Run: <venv python> tests/compat/kafka_python_groups.py --bootstrap 127.0.0.1:PORT

The scenario of confluent_groups.py with kafka-python's KafkaConsumer (group protocol,
range assignor, a synchronous commit after every processed batch; kafka-python 3's
synchronous rebalance listeners cannot commit): three consumers split a
6-partition topic 2/2/2, the first closes without committing its last records, the other two
take over 3/3; no record is lost, every assignment resumes at the last commit, duplicates are
exactly the leaver's uncommitted records. The producer runs without idempotence.

Exit 0 only when every check passed.
"""

from kafka import KafkaAdminClient, KafkaConsumer, KafkaProducer, TopicPartition
from kafka.admin import NewTopic
from kafka.consumer.subscription_state import ConsumerRebalanceListener
from kafka.coordinator.assignors.range import RangePartitionAssignor
from kafka.structs import OffsetAndMetadata

import common
import groups_common as gc
from common import fail, log

NAME = "kafka_python_groups"


class Listener(ConsumerRebalanceListener):
    def __init__(self, client):
        self.client = client

    def on_partitions_revoked(self, revoked):
        self.client.ledger.revoked(self.client.name, [tp.partition for tp in revoked])

    def on_partitions_assigned(self, assigned):
        self.client.ledger.assigned(self.client.name, [tp.partition for tp in assigned])


class Client:
    def __init__(self, args, name, topic, group, ledger):
        self.name, self.topic, self.ledger = name, topic, ledger
        self.commit_on_revoke = False  # kafka-python 3's synchronous listeners cannot commit
        self.c = KafkaConsumer(
            bootstrap_servers=args.bootstrap,
            group_id=group,
            client_id=name,
            enable_auto_commit=False,
            auto_offset_reset="earliest",
            partition_assignment_strategy=[RangePartitionAssignor],
            heartbeat_interval_ms=500,
            session_timeout_ms=10000,
        )
        self.c.subscribe([topic], listener=Listener(self))


    def poll(self, timeout):
        out = []
        for tp, records in self.c.poll(timeout_ms=int(timeout * 1000), max_records=20).items():
            for r in records:
                out.append((tp.partition, r.offset, r.key, r.value))
        return out


def commit(client):
    offsets = client.ledger.processed_offsets(client.name)
    if not offsets:
        return
    try:
        client.c.commit({TopicPartition(client.topic, p): OffsetAndMetadata(o, "", -1) for p, o in offsets.items()})
    except Exception as e:  # kafka-python raises its own error classes
        fail(f"{client.name}: commit {offsets} failed: {e!r}")
    client.ledger.commit_done(client.name, offsets)


def leave(client):
    client.c.close(autocommit=False)


def body(args):
    admin = KafkaAdminClient(bootstrap_servers=args.bootstrap)
    topic = common.unique("compat-kafka-python-groups")
    group = common.unique("compat-kafka-python-group")
    admin.create_topics([NewTopic(topic, gc.PARTITIONS, 1)])
    # enable_idempotence=False: idempotent producing needs InitProducerId, not part of this test.
    producer = KafkaProducer(bootstrap_servers=args.bootstrap, acks="all", enable_idempotence=False, linger_ms=5)

    def produce(records):
        futures = [(k, v, producer.send(topic, key=k, value=v, partition=p)) for p, k, v in records]
        producer.flush(30)
        placed = {}
        for k, v, f in futures:
            md = f.get(timeout=30)
            placed[(md.partition, md.offset)] = (k, v)
        log(f"  produced {len(records)} records")
        return placed

    ledger = gc.Ledger()
    make = lambda: [Client(args, f"consumer-{i}", topic, group, ledger) for i in range(3)]
    summary = gc.run(args, ledger, produce, make, commit, leave, lambda c: c.c.close(autocommit=False), commit_every=1)
    producer.close()
    admin.close()
    return summary


def extra_args(p):
    p.add_argument("--records", type=int, default=3042, help="records to produce (default 3042)")


if __name__ == "__main__":
    common.run_main(NAME, body, common.parse_args(__doc__.splitlines()[0], extra_args))
