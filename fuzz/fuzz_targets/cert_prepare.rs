//! libFuzzer entry for `cert_prepare`; the body is `peerguard_fuzz::cert_prepare::run`, shared with the replay tests.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| peerguard_fuzz::cert_prepare::run(data));
