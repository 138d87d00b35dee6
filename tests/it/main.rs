//! End-to-end tests: real brokers on ephemeral ports, real third-party clients.

mod helpers;
mod protocol;
mod durability;
mod compat;
mod groups;
mod groups_restart;
