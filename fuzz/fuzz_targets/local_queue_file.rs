#![no_main]
libfuzzer_sys::fuzz_target!(|data: &[u8]| rafter_fuzz::local_queue_file(data));
