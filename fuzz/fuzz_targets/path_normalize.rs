//! libFuzzer entry for `path_normalize`; the body is `peerguard_fuzz::path_normalize::run`, shared with the replay tests.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| peerguard_fuzz::path_normalize::run(data));
