//! Replays the committed fuzz corpus (`fuzz/corpus/<target>/*`) through the
//! same decoders the `cargo fuzz` targets drive: a decoder change that
//! panics on any input the fuzzer once found interesting fails here, in
//! every CI run, without a nightly toolchain.

use std::path::PathBuf;

#[test]
fn every_corpus_input_decodes_without_panicking() {
    let root = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../fuzz/corpus");
    let mut total = 0;
    for target in prover::fuzzing::TARGETS {
        let dir = root.join(target);
        let entries = std::fs::read_dir(&dir).unwrap_or_else(|e| panic!("corpus {}: {e}", dir.display()));
        let mut n = 0;
        for entry in entries {
            let path = entry.unwrap().path();
            let data = std::fs::read(&path).unwrap();
            prover::fuzzing::run(target, &data);
            n += 1;
        }
        assert!(n > 0, "the corpus of {target} is empty");
        total += n;
    }
    assert!(total >= prover::fuzzing::TARGETS.len());
}

#[test]
fn hostile_lengths_fail_fast() {
    // list prefixes claiming billions of elements, with almost no bytes
    for target in prover::fuzzing::TARGETS {
        for len in [u32::MAX, 1 << 26, 1 << 20, 65_536] {
            let mut data = len.to_be_bytes().to_vec();
            data.extend_from_slice(&[0xAB; 40]);
            prover::fuzzing::run(target, &data);
        }
    }
}
