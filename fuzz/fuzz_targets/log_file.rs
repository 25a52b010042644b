#![no_main]
libfuzzer_sys::fuzz_target!(|data: &[u8]| rafter_fuzz::log_file(data));
