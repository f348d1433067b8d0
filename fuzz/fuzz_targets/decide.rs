//! libFuzzer entry for `decide`; the body is `peerguard_fuzz::decide::run`, shared with the replay tests.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| peerguard_fuzz::decide::run(data));
