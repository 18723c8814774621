use std::process::Command;

fn optishard() -> Command {
    Command::new(env!("CARGO_BIN_EXE_optishard"))
}

#[test]
fn dump_config_shows_defaults_file_and_flags_in_order() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("node.toml");
    std::fs::write(&file, "block_time_ms = 250\nblock_gas_limit = 50000000\n").unwrap();
    let out = optishard()
        .args(["shard", "--dev", "--dump-config", "--config"])
        .arg(&file)
        .args(["--block-time-ms", "75", "--rpc-addr", "127.0.0.1:9999"])
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let cfg: shard::ShardConfig = toml::from_str(&String::from_utf8(out.stdout).unwrap()).unwrap();
    assert_eq!(cfg.block_time_ms, 75, "flag beats file");
    assert_eq!(cfg.block_gas_limit, 50_000_000, "file beats default");
    assert_eq!(cfg.mempool_max_txs, shard::ShardConfig::default().mempool_max_txs, "default kept");
    assert_eq!(cfg.rpc_addr.port(), 9999);
    assert_eq!(cfg.genesis.len(), 10, "dev accounts funded");
}

#[test]
fn bad_config_files_and_flags_are_clear_errors() {
    let dir = tempfile::tempdir().unwrap();
    let cases = [
        ("block_time_ms = \"fast\"\n", "block_time_ms"),
        ("no_such_option = 1\n", "no_such_option"),
        ("block_time_ms = 0\n", "block_time_ms must be > 0"),
    ];
    for (text, expect) in cases {
        let file = dir.path().join("bad.toml");
        std::fs::write(&file, text).unwrap();
        let out =
            optishard().args(["shard", "--dev", "--dump-config", "--config"]).arg(&file).output().unwrap();
        assert!(!out.status.success());
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(err.contains(expect), "{text:?}: {err}");
    }
    let out = optishard().args(["shard", "--dev", "--rpc-addr", "nowhere"]).output().unwrap();
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("--rpc-addr"));
    let out = optishard()
        .args(["shard", "--dev", "--dump-config", "--config", "/no/such/file.toml"])
        .output()
        .unwrap();
    assert!(String::from_utf8_lossy(&out.stderr).contains("/no/such/file.toml"));
}
