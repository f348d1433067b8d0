//! libFuzzer entry for `xfcc_bind`; the body is `peerguard_fuzz::xfcc_bind::run`, shared with the replay tests.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| peerguard_fuzz::xfcc_bind::run(data));
