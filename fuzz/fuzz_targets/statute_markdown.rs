//! Fuzz target: the `statute-markdown` parser and the chunker on arbitrary bytes (errors are fine,
//! panics are bugs; keep a crash under ingest/tests/crashers/statute-markdown/).
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    let parser = anjeon_ingest::formats::parser_named("statute-markdown").expect("parser");
    if let Ok(docs) = parser.parse("fuzz-input", data) {
        for doc in &docs {
            for p in anjeon_ingest::chunk_document(doc, anjeon_ingest::ChunkOptions::default()) {
                assert!(doc.text.get(p.range.clone()).is_some());
            }
        }
    }
});
