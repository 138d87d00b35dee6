//! The broker's request decoding: any bytes as a request frame (without its size prefix),
//! through prefix, version, header and body, and a Produce request's records through Kafka's
//! client rules and the record-level reads.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    tern_broker::fuzzing::request(data);
});
