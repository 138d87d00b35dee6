"""kafka-python on SASL_SSL against a running Tern broker.

Run: <venv python> tests/compat/kafka_python_sasl_ssl.py --bootstrap 127.0.0.1:PORT \
        --ca ca.pem --user USER [--mechanism SCRAM-SHA-512]
with the password in TERN_SASL_PASSWORD and a wrong one in TERN_SASL_WRONG_PASSWORD.

With the right password: KafkaAdminClient creates a 2-partition topic, KafkaProducer
(acks='all', certificate and hostname checked against the CA) writes 1000 keyed records, a
KafkaConsumer assigned to both partitions reads them back, compared per partition in order.
With the wrong password an admin client must fail within its own 5 s bootstrap timeout,
having reported the broker's SASL authentication failure (error 58), not hang.

Exit 0 only when every check passed.
"""

import logging
import os
import time

import kafka.errors as Errors
from kafka import KafkaAdminClient, KafkaConsumer, KafkaProducer, TopicPartition
from kafka.admin import NewTopic

import common
from common import Deadline, check, check_eq, fail, log

NAME = "kafka_python_sasl_ssl"
RECORDS = 1000
PARTITIONS = 2


def client_kw(args, password):
    return dict(
        bootstrap_servers=args.bootstrap,
        security_protocol="SASL_SSL",
        sasl_mechanism=args.mechanism,
        sasl_plain_username=args.user,
        sasl_plain_password=password,
        ssl_cafile=args.ca,
        ssl_check_hostname=True,
    )


def body(args):
    password = os.environ["TERN_SASL_PASSWORD"]
    wrong = os.environ["TERN_SASL_WRONG_PASSWORD"]
    kw = client_kw(args, password)
    topic = common.unique("kp-sasl-ssl")

    admin = KafkaAdminClient(**kw)
    admin.create_topics([NewTopic(topic, PARTITIONS, 1)])
    admin.close()
    log(f"created {topic} over SASL_SSL ({args.mechanism})")

    producer = KafkaProducer(acks="all", **kw)
    sent = {}
    futures = []
    for i in range(RECORDS):
        part = i % PARTITIONS
        key, value = f"key-{i % 41}".encode(), f"kp-secure-{i}".encode()
        sent.setdefault(part, []).append((key, value))
        futures.append(producer.send(topic, key=key, value=value, partition=part))
    producer.flush(timeout=args.timeout)
    for f in futures:
        f.get(timeout=args.timeout)
    producer.close()

    consumer = KafkaConsumer(group_id=None, enable_auto_commit=False, **kw)
    tps = [TopicPartition(topic, p) for p in range(PARTITIONS)]
    consumer.assign(tps)
    consumer.seek_to_beginning(*tps)
    got = {}
    count = 0
    deadline = Deadline(args.timeout, f"consuming {RECORDS} records")
    while count < RECORDS:
        deadline.check(f"{count} read")
        for tp, records in consumer.poll(timeout_ms=1000).items():
            for r in records:
                got.setdefault(tp.partition, []).append((r.key, r.value))
                count += 1
    consumer.close()
    for part in range(PARTITIONS):
        check_eq(got.get(part), sent.get(part), f"partition {part} read back")
    log(f"read back {count} records in order per partition")

    # kafka-python 3 retries a failed authentication until its bootstrap timeout and then
    # raises KafkaTimeoutError; the SASL error itself is logged on every attempt. So: the
    # client fails within its own timeout, and what it logged is the broker's error 58.
    seen = []

    class Capture(logging.Handler):
        def emit(self, record):
            seen.append(record.getMessage())

    handler = Capture(level=logging.WARNING)
    logging.getLogger("kafka").addHandler(handler)
    t0 = time.monotonic()
    error = None
    try:
        KafkaAdminClient(bootstrap_timeout_ms=5000, request_timeout_ms=5000, **client_kw(args, wrong))
    except Exception as e:  # noqa: BLE001 - the type is checked below
        error = e
    elapsed = time.monotonic() - t0
    logging.getLogger("kafka").removeHandler(handler)
    check(error is not None, "a wrong password was accepted")
    text = f"{type(error).__name__}: {error}"
    check(isinstance(error, (Errors.KafkaTimeoutError, Errors.SaslAuthenticationFailedError)), f"unexpected error: {text}")
    auth = [m for m in seen if "SaslAuthenticationFailedError" in m and "Authentication failed" in m]
    check(auth, f"no SASL authentication failure was reported; logged: {seen[:5]}")
    check(elapsed < 10, f"the failure took {elapsed:.1f}s")
    check(not any(wrong in m for m in seen) and wrong not in text, "the error must not echo the password")
    text = auth[0]
    log(f"wrong password: {text} after {elapsed:.2f}s")
    return f"{RECORDS} records over SASL_SSL/{args.mechanism}; wrong password rejected in {elapsed:.2f}s"


if __name__ == "__main__":
    common.run_main(NAME, body, common.parse_args(__doc__, common.sasl_ssl_args))
