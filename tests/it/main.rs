//! End-to-end tests: real brokers on ephemeral ports, real third-party clients.

mod helpers;
mod apache_kafka;
mod clusters;
mod reference;
mod produce_rules;
mod leaders;
mod protocol;
mod durability;
mod compat;
mod mirror;
mod admin;
mod idempotence;
mod compaction;
mod terraform;
mod groups;
mod groups_restart;
mod groups_reference;
mod offsets;
mod security;
mod dashboard;
mod drills;
mod kafka_tools;
mod mm2;
mod lag;
mod history;
mod reload;
