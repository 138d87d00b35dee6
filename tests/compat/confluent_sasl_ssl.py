"""confluent-kafka (librdkafka) on SASL_SSL against a running Tern broker.

Run: <venv python> tests/compat/confluent_sasl_ssl.py --bootstrap 127.0.0.1:PORT \
        --ca ca.pem --user USER [--mechanism SCRAM-SHA-512]
with the password in TERN_SASL_PASSWORD and a wrong one in TERN_SASL_WRONG_PASSWORD
(environment, so no password shows in a process listing).

With the right password: AdminClient creates a 3-partition topic, a Producer (acks=all,
hostname verification on) writes 1000 keyed records, a Consumer in a group reads them all
back, compared per partition in order, and commits. With the wrong password a Producer must
report an authentication error (librdkafka's _AUTHENTICATION) within 15 s, not hang.

Exit 0 only when every check passed.
"""

import os
import time

from confluent_kafka import Consumer, KafkaError, Producer
from confluent_kafka.admin import AdminClient, NewTopic

import common
from common import Deadline, check, check_eq, fail, log

NAME = "confluent_sasl_ssl"
RECORDS = 1000
PARTITIONS = 3


def client_conf(args, password):
    return {
        "bootstrap.servers": args.bootstrap,
        "security.protocol": "SASL_SSL",
        "sasl.mechanism": args.mechanism,
        "sasl.username": args.user,
        "sasl.password": password,
        "ssl.ca.location": args.ca,
        "ssl.endpoint.identification.algorithm": "https",
    }


def body(args):
    password = os.environ["TERN_SASL_PASSWORD"]
    wrong = os.environ["TERN_SASL_WRONG_PASSWORD"]
    conf = client_conf(args, password)
    topic = common.unique("sasl-ssl")

    admin = AdminClient(conf)
    admin.create_topics([NewTopic(topic, PARTITIONS, 1)])[topic].result(timeout=args.timeout)
    log(f"created {topic} over SASL_SSL ({args.mechanism})")

    errors = []
    delivered = []
    producer = Producer({**conf, "acks": "all", "error_cb": errors.append})
    sent = {}
    for i in range(RECORDS):
        key = f"key-{i % 37}".encode()
        value = f"secure-value-{i}".encode()
        part = i % PARTITIONS
        sent.setdefault(part, []).append((key, value))
        producer.produce(topic, value=value, key=key, partition=part,
                         on_delivery=lambda err, msg: delivered.append((err, msg)))
        producer.poll(0)
    left = producer.flush(args.timeout)
    check_eq(left, 0, "records still queued after flush")
    failed = [e for e, _ in delivered if e is not None]
    check(not failed, f"delivery errors: {failed[:3]}")
    check_eq(len(delivered), RECORDS, "delivery reports")
    check(not errors, f"producer errors: {errors[:3]}")

    consumer = Consumer({**conf, "group.id": common.unique("sasl-group"), "auto.offset.reset": "earliest",
                         "enable.auto.commit": False})
    consumer.subscribe([topic])
    got = {}
    deadline = Deadline(args.timeout, f"consuming {RECORDS} records")
    count = 0
    while count < RECORDS:
        deadline.check(f"{count} read")
        msg = consumer.poll(1.0)
        if msg is None:
            continue
        if msg.error():
            fail(f"consumer error: {msg.error()}")
        got.setdefault(msg.partition(), []).append((msg.key(), msg.value()))
        count += 1
    consumer.commit(asynchronous=False)
    consumer.close()
    for part in range(PARTITIONS):
        check_eq(got.get(part), sent.get(part), f"partition {part} read back")
    log(f"read back {count} records in order per partition, offsets committed")

    # The wrong password: an authentication error, reported quickly.
    auth_errors = []
    bad = Producer({**client_conf(args, wrong), "error_cb": auth_errors.append})
    bad.produce(topic, value=b"never")
    t0 = time.monotonic()
    while not auth_errors and time.monotonic() - t0 < 15:
        bad.poll(0.2)
    elapsed = time.monotonic() - t0
    check(auth_errors, f"no error reported within {elapsed:.1f}s for a wrong password")
    err = auth_errors[0]
    check_eq(err.code(), KafkaError._AUTHENTICATION, f"error code of {err}")
    check("Authentication failed" in err.str(), f"error text: {err.str()}")
    check(wrong not in err.str(), "the error must not echo the password")
    log(f"wrong password: {err.str()!r} after {elapsed:.2f}s")
    return f"{RECORDS} records over SASL_SSL/{args.mechanism}; wrong password rejected in {elapsed:.2f}s"


if __name__ == "__main__":
    common.run_main(NAME, body, common.parse_args(__doc__, common.sasl_ssl_args))
