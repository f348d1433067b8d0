//! libFuzzer entry for `policy_compile`; the body is `peerguard_fuzz::policy_compile::run`, shared with the replay tests.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| peerguard_fuzz::policy_compile::run(data));
