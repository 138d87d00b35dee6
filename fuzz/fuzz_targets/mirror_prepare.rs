//! The mirror's batch preparation: any bytes as a fetched record set (after an 8-byte start
//! offset), prepared, stamped and recorded as a partition's fetch loop and producer do; what
//! would be produced must be whole batches with valid CRCs and one source offset per record.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    tern_mirror::fuzzing::prepare_fetched(data);
});
