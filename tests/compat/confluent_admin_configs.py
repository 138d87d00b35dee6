"""confluent-kafka (librdkafka) admin checks against a running Tern broker: topic configs,
partitions and record deletion, each observed through describe/metadata AND in behaviour.

Run: <venv python> tests/compat/confluent_admin_configs.py --bootstrap 127.0.0.1:PORT

The broker must run its maintenance (segment rolls, retention) at least every second.

1. describe_configs: an override (DYNAMIC_TOPIC_CONFIG, not default, synonyms) next to
   defaults (DEFAULT_CONFIG); the broker resource lists its log.* defaults, read-only.
2. incremental_alter_configs: SET (max.message.bytes enforced: a larger message is refused
   with MSG_SIZE_TOO_LARGE; message.timestamp.type=LogAppendTime stamps records; retention.ms
   with segment.ms deletes old data, moving the low watermark), DELETE (back to the default,
   large message accepted again), APPEND/SUBTRACT on cleanup.policy (compact refuses keyless
   records), validate_only changes nothing.
3. alter_configs (legacy) replaces the whole override set.
4. Errors: unknown key, bad value, APPEND to a non-list key -> INVALID_CONFIG.
5. create_partitions grows a topic (metadata shows it; producing to and consuming from a new
   partition works); shrinking or keeping the count -> INVALID_PARTITIONS; validate_only does
   nothing.
6. delete_records moves the low watermark; a consumer from the beginning starts there; past
   the high watermark -> OFFSET_OUT_OF_RANGE; OFFSET_END deletes everything.

Exit 0 only when every check passed.
"""

import time
import warnings

from confluent_kafka import (
    OFFSET_BEGINNING,
    OFFSET_END,
    TIMESTAMP_LOG_APPEND_TIME,
    Consumer,
    KafkaError,
    KafkaException,
    Producer,
    TopicPartition,
)
from confluent_kafka.admin import (
    AdminClient,
    AlterConfigOpType,
    ConfigEntry,
    ConfigResource,
    ConfigSource,
    NewPartitions,
    NewTopic,
    ResourceType,
)

import common
from common import Deadline, check, check_eq, fail, log

NAME = "confluent_admin_configs"
RT = 30.0  # per admin call


def result(fut, what):
    try:
        return fut.result(timeout=RT)
    except KafkaException as e:
        fail(f"{what}: failed: {e.args[0]}")
    except Exception as e:  # concurrent.futures.TimeoutError and friends
        fail(f"{what}: no result within {RT:.0f}s: {e!r}")


def expect_error(fut, code, what):
    try:
        fut.result(timeout=RT)
    except KafkaException as e:
        err = e.args[0]
        if err.code() != code:
            fail(f"{what}: expected {KafkaError(code).name()}, got {err.name()}: {err.str()}")
        return err
    except Exception as e:
        fail(f"{what}: no result within {RT:.0f}s: {e!r}")
    fail(f"{what}: succeeded, expected {KafkaError(code).name()}")


def one(futures):
    check_eq(len(futures), 1, "number of results")
    return next(iter(futures.values()))


def describe(admin, topic):
    res = ConfigResource(ResourceType.TOPIC, topic)
    return result(one(admin.describe_configs([res], request_timeout=RT)), f"describe_configs({topic})")


def incremental(admin, topic, ops, validate_only=False):
    entries = [ConfigEntry(k, v, incremental_operation=op) for k, v, op in ops]
    res = ConfigResource(ResourceType.TOPIC, topic, incremental_configs=entries)
    return one(admin.incremental_alter_configs([res], validate_only=validate_only, request_timeout=RT))


def check_entry(configs, key, value, source, what):
    e = configs.get(key)
    check(e is not None, f"{what}: {key} missing from describe_configs")
    check_eq(e.value, value, f"{what}: value of {key}")
    check_eq(ConfigSource(e.source), source, f"{what}: source of {key}")
    check_eq(e.is_default, source == ConfigSource.DEFAULT_CONFIG, f"{what}: is_default of {key}")
    return e


def producer(args, **extra):
    return Producer({"bootstrap.servers": args.bootstrap, "linger.ms": 5, "message.timeout.ms": 20000, **extra})


def produce_one(p, topic, value, key=b"k", partition=0, timestamp=0):
    """Produces one message; returns the delivery report (err, msg)."""
    out = []
    p.produce(topic, value=value, key=key, partition=partition, timestamp=timestamp,
              on_delivery=lambda err, msg: out.append((err, msg)))
    dl = Deadline(30, f"waiting for the delivery report of a message to {topic}[{partition}]")
    while not out:
        p.poll(0.1)
        dl.check()
    return out[0]


def consume(args, topic, partition, start, count, what):
    c = Consumer({"bootstrap.servers": args.bootstrap, "group.id": common.unique("g"),
                  "enable.auto.commit": False, "auto.offset.reset": "earliest"})
    try:
        c.assign([TopicPartition(topic, partition, start)])
        got = []
        dl = Deadline(args.timeout, what)
        while len(got) < count:
            m = c.poll(0.2)
            if m is not None:
                check(m.error() is None, f"{what}: consumer error {m.error()}")
                got.append(m)
            dl.check(f"{len(got)} of {count} messages")
        return got
    finally:
        c.close()


def watermarks(args, topic, partition):
    c = Consumer({"bootstrap.servers": args.bootstrap, "group.id": common.unique("g")})
    try:
        return c.get_watermark_offsets(TopicPartition(topic, partition), timeout=10)
    finally:
        c.close()


def describe_checks(args, admin, topic):
    configs = describe(admin, topic)
    e = check_entry(configs, "retention.ms", "3600000", ConfigSource.DYNAMIC_TOPIC_CONFIG, "override")
    syn = list(e.synonyms.values())
    check(syn, "retention.ms has no synonyms (librdkafka asks for them)")
    check_eq(ConfigSource(syn[0].source), ConfigSource.DYNAMIC_TOPIC_CONFIG, "first synonym of retention.ms")
    # As Kafka lists them: log.retention.ms has no default of its own (log.retention.hours
    # carries it), so the override is the only synonym.
    check_eq(sorted(e.synonyms), ["retention.ms"], "synonyms of retention.ms")
    check_entry(configs, "segment.bytes", "1073741824", ConfigSource.DEFAULT_CONFIG, "default")
    check_entry(configs, "cleanup.policy", "delete", ConfigSource.DEFAULT_CONFIG, "default")
    e = check_entry(configs, "max.message.bytes", "1048588", ConfigSource.DEFAULT_CONFIG, "default")
    check_eq(sorted(e.synonyms), ["message.max.bytes"], "synonyms of max.message.bytes")
    check(not configs["retention.ms"].is_read_only, "topic configs are not read-only")

    broker = ConfigResource(ResourceType.BROKER, "1")
    bconf = result(one(admin.describe_configs([broker], request_timeout=RT)), "describe_configs(broker 1)")
    for key, value in [("log.segment.bytes", "1073741824"), ("log.retention.ms", None), ("log.retention.hours", "168"),
                       ("message.max.bytes", "1048588"), ("log.cleanup.policy", "delete"),
                       ("broker.id", "1")]:
        check(key in bconf, f"broker config {key} missing (got {len(bconf)} keys)")
        check_eq(bconf[key].value, value, f"broker config {key}")
        check(bconf[key].is_read_only, f"broker config {key} is read-only")
    log(f"  describe_configs: {len(configs)} topic keys (override + defaults with sources), "
        f"retention.ms synonyms {[(s.name, ConfigSource(s.source).name) for s in syn]}, {len(bconf)} broker keys")


def incremental_checks(args, admin, topic):
    p = producer(args)
    big = b"x" * 5000
    err, _ = produce_one(p, topic, big)
    check(err is None, f"5000-byte message before the limit: {err}")

    result(incremental(admin, topic, [("max.message.bytes", "2000", AlterConfigOpType.SET)], validate_only=True),
           "validate_only SET")
    check_entry(describe(admin, topic), "max.message.bytes", "1048588", ConfigSource.DEFAULT_CONFIG,
                "after validate_only")

    result(incremental(admin, topic, [("max.message.bytes", "2000", AlterConfigOpType.SET),
                                      ("message.timestamp.type", "LogAppendTime", AlterConfigOpType.SET)]),
           "SET max.message.bytes, message.timestamp.type")
    configs = describe(admin, topic)
    check_entry(configs, "max.message.bytes", "2000", ConfigSource.DYNAMIC_TOPIC_CONFIG, "after SET")
    check_entry(configs, "retention.ms", "3600000", ConfigSource.DYNAMIC_TOPIC_CONFIG, "SET keeps other overrides")
    err, _ = produce_one(p, topic, big)
    check(err is not None and err.code() == KafkaError.MSG_SIZE_TOO_LARGE,
          f"5000-byte message over max.message.bytes=2000: expected MSG_SIZE_TOO_LARGE, got {err}")
    err, msg = produce_one(p, topic, b"stamped", timestamp=1_000_000)
    check(err is None, f"small message: {err}")
    (m,) = consume(args, topic, 0, msg.offset(), 1, "reading the LogAppendTime record")
    ts_type, ts = m.timestamp()
    check(ts_type == TIMESTAMP_LOG_APPEND_TIME and abs(ts - time.time() * 1000) < 120_000,
          f"LogAppendTime record: timestamp {m.timestamp()}")

    result(incremental(admin, topic, [("max.message.bytes", None, AlterConfigOpType.DELETE),
                                      ("message.timestamp.type", None, AlterConfigOpType.DELETE)]),
           "DELETE max.message.bytes")
    check_entry(describe(admin, topic), "max.message.bytes", "1048588", ConfigSource.DEFAULT_CONFIG, "after DELETE")
    err, _ = produce_one(p, topic, big)
    check(err is None, f"5000-byte message after DELETE: {err}")
    log("  incremental SET/DELETE: max.message.bytes enforced then lifted; LogAppendTime stamps records")

    result(incremental(admin, topic, [("cleanup.policy", "compact", AlterConfigOpType.APPEND)]), "APPEND compact")
    check_entry(describe(admin, topic), "cleanup.policy", "delete,compact", ConfigSource.DYNAMIC_TOPIC_CONFIG,
                "after APPEND")
    err, _ = produce_one(p, topic, b"no key", key=None)
    check(err is not None and err.code() == KafkaError.INVALID_RECORD,
          f"keyless message to a compacted topic: expected INVALID_RECORD, got {err}")
    result(incremental(admin, topic, [("cleanup.policy", "compact", AlterConfigOpType.SUBTRACT)]), "SUBTRACT compact")
    check_entry(describe(admin, topic), "cleanup.policy", "delete", ConfigSource.DYNAMIC_TOPIC_CONFIG,
                "after SUBTRACT")
    err, _ = produce_one(p, topic, b"no key", key=None)
    check(err is None, f"keyless message after SUBTRACT compact: {err}")
    log("  incremental APPEND/SUBTRACT cleanup.policy: compact refuses keyless records, then accepts them again")

    # Retention: records a day old go once their segment rolls (segment.ms) and
    # retention.ms is shorter than their age.
    lo, hi = watermarks(args, topic, 2)
    old = int(time.time() * 1000) - 2 * 86_400_000
    for i in range(10):
        err, _ = produce_one(p, topic, b"old %d" % i, partition=2, timestamp=old + i)
        check(err is None, f"old record {i}: {err}")
    result(incremental(admin, topic, [("retention.ms", "86400000", AlterConfigOpType.SET),
                                      ("segment.ms", "100", AlterConfigOpType.SET)]), "SET retention.ms")
    dl = Deadline(args.timeout, "waiting for retention to delete the old records")
    while True:
        lo, hi = watermarks(args, topic, 2)
        if lo == hi == 10:
            break
        dl.check(f"watermarks of partition 2: ({lo}, {hi})")
        time.sleep(0.3)
    log(f"  incremental SET retention.ms=1d, segment.ms=100: day-old records deleted, low watermark {lo}")
    p.flush(10)


def legacy_and_error_checks(admin, topic):
    res = ConfigResource(ResourceType.TOPIC, topic, set_config={"retention.ms": "5000"})
    result(one(admin.alter_configs([res], request_timeout=RT)), "alter_configs")
    configs = describe(admin, topic)
    check_entry(configs, "retention.ms", "5000", ConfigSource.DYNAMIC_TOPIC_CONFIG, "after alter_configs")
    check_entry(configs, "segment.ms", "604800000", ConfigSource.DEFAULT_CONFIG, "alter_configs replaces all overrides")
    log("  alter_configs (legacy): replaced the whole override set")

    bad = [
        ("unknown key", [("no.such.config", "1", AlterConfigOpType.SET)]),
        ("bad value", [("retention.ms", "soon", AlterConfigOpType.SET)]),
        ("APPEND to a non-list key", [("retention.ms", "5", AlterConfigOpType.APPEND)]),
    ]
    for what, ops in bad:
        err = expect_error(incremental(admin, topic, ops), KafkaError.INVALID_CONFIG, f"incremental_alter_configs {what}")
        log(f"  incremental {what}: {err.name()} ({err.str()!r})")
    res = ConfigResource(ResourceType.TOPIC, topic, set_config={"no.such.config": "1"})
    err = expect_error(one(admin.alter_configs([res], request_timeout=RT)), KafkaError.INVALID_CONFIG,
                       "alter_configs unknown key")
    log(f"  alter_configs unknown key: {err.name()} ({err.str()!r})")
    check_entry(describe(admin, topic), "retention.ms", "5000", ConfigSource.DYNAMIC_TOPIC_CONFIG,
                "a refused change changes nothing")


def partition_checks(args, admin, topic):
    fs = admin.create_partitions([NewPartitions(topic, 5)], validate_only=True, request_timeout=RT)
    result(one(fs), "create_partitions validate_only")
    check_eq(len(admin.list_topics(topic, timeout=10).topics[topic].partitions), 3, "partitions after validate_only")
    result(one(admin.create_partitions([NewPartitions(topic, 5)], request_timeout=RT)), "create_partitions(5)")
    dl = Deadline(args.timeout, "waiting for 5 partitions in metadata")
    while len(admin.list_topics(topic, timeout=10).topics[topic].partitions) != 5:
        dl.check()
        time.sleep(0.1)
    p = producer(args)
    err, msg = produce_one(p, topic, b"in a new partition", partition=4)
    check(err is None, f"producing to new partition 4: {err}")
    check_eq((msg.partition(), msg.offset()), (4, 0), "delivery report of the new partition")
    (m,) = consume(args, topic, 4, OFFSET_BEGINNING, 1, "reading new partition 4")
    check_eq(m.value(), b"in a new partition", "record read from partition 4")
    for count, what in [(2, "shrinking to 2"), (5, "keeping 5")]:
        err = expect_error(one(admin.create_partitions([NewPartitions(topic, count)], request_timeout=RT)),
                           KafkaError.INVALID_PARTITIONS, f"create_partitions {what}")
        log(f"  create_partitions {what}: {err.name()} ({err.str()!r})")
    log("  create_partitions: grown to 5; new partition takes and serves records")


def delete_records_checks(args, admin, topic):
    p = producer(args)
    for i in range(100):
        p.produce(topic, value=b"r%d" % i, key=b"k", partition=1)
    check_eq(p.flush(30), 0, "messages left after flush")
    lo, hi = watermarks(args, topic, 1)
    check_eq((lo, hi), (0, 100), "watermarks before delete_records")
    res = result(one(admin.delete_records([TopicPartition(topic, 1, 40)], request_timeout=RT)), "delete_records(40)")
    check_eq(res.low_watermark, 40, "low watermark returned by delete_records")
    check_eq(watermarks(args, topic, 1), (40, 100), "watermarks after delete_records")
    first = consume(args, topic, 1, OFFSET_BEGINNING, 1, "reading from the beginning")[0]
    check_eq((first.offset(), first.value()), (40, b"r40"), "first record from the beginning")
    expect_error(one(admin.delete_records([TopicPartition(topic, 1, 500)], request_timeout=RT)),
                 KafkaError.OFFSET_OUT_OF_RANGE, "delete_records past the high watermark")
    res = result(one(admin.delete_records([TopicPartition(topic, 1, OFFSET_END)], request_timeout=RT)),
                 "delete_records(OFFSET_END)")
    check_eq(res.low_watermark, 100, "low watermark after deleting everything")
    log("  delete_records: low watermark 0 -> 40 -> 100; consumers start at it; past the end refused")


def body(args):
    # The legacy AlterConfigs is exercised on purpose.
    warnings.filterwarnings("ignore", category=DeprecationWarning)
    admin = AdminClient({"bootstrap.servers": args.bootstrap})
    topic = common.unique("compat-admin-configs")
    fs = admin.create_topics([NewTopic(topic, num_partitions=3, replication_factor=1,
                                       config={"retention.ms": "3600000"})], request_timeout=RT)
    result(fs[topic], f"create_topics({topic})")
    describe_checks(args, admin, topic)
    incremental_checks(args, admin, topic)
    legacy_and_error_checks(admin, topic)
    partition_checks(args, admin, topic)
    delete_records_checks(args, admin, topic)
    md = admin.list_topics(timeout=10)
    check(topic in md.topics, "the broker still serves metadata after the refused requests")
    return "configs, partitions and delete_records behave as on Apache Kafka"


if __name__ == "__main__":
    common.run_main(NAME, body, common.parse_args(__doc__.splitlines()[0]))
