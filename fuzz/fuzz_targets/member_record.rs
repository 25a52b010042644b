#![no_main]
libfuzzer_sys::fuzz_target!(|data: &[u8]| rafter_fuzz::member_record(data));
