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
        (
            "[[genesis]]\naddress = \"0x0000000000000000000000000000000000000003\"\nbalance = \"0x0\"\n",
            "an empty account cannot be in genesis",
        ),
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

fn run(args: &[&str]) -> (bool, String) {
    let out = optishard().args(args).output().unwrap();
    (
        out.status.success(),
        format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr)),
    )
}

#[test]
fn testnet_config_resolves_defaults_file_and_flags() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("testnet.toml");
    std::fs::write(&file, "base_port = 31000\n[network]\nshards = 3\nslot_ms = 800\n").unwrap();
    let (ok, out) =
        run(&["testnet", "up", "--dump-config", "--config", file.to_str().unwrap(), "--slot-ms", "300"]);
    assert!(ok, "{out}");
    let cfg: testnet::TestnetConfig = toml::from_str(&out).unwrap();
    assert_eq!((cfg.network.shards, cfg.network.slot_ms, cfg.base_port), (3, 300, 31000));
    assert_eq!(cfg.network.validators_per_shard, 2, "default kept");
    let (ok, out) = run(&["testnet", "up", "--dump-config"]);
    assert!(ok, "{out}");
    let cfg: testnet::TestnetConfig = toml::from_str(&out).unwrap();
    assert_eq!((cfg.network.shards, cfg.network.validators_per_shard), (4, 2), "the default testnet");
    assert!(cfg.network.slot_ms < 1000, "sub-second slots by default");
}

#[test]
fn network_commands_refuse_bad_input_clearly() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path().to_str().unwrap();
    let bad_toml = dir.path().join("t.toml");
    std::fs::write(&bad_toml, "[network]\nshards = \"many\"\n").unwrap();
    let garbage = dir.path().join("genesis.json");
    std::fs::write(&garbage, "{\"slot_ms\": 0}").unwrap();
    let cases: Vec<(Vec<&str>, &str)> = vec![
        (vec!["testnet", "up", "--config", bad_toml.to_str().unwrap()], "shards"),
        (vec!["testnet", "up", "--slot-ms", "1", "--datadir", d], "slot_ms"),
        (vec!["testnet", "up", "--validators-per-shard", "0", "--datadir", d], "validators_per_shard"),
        (vec!["testnet", "status", "--datadir", d], "no testnet"),
        (vec!["testnet", "down", "--datadir", d], "no testnet"),
        (vec!["beacon", "--datadir", d], "--genesis"),
        (vec!["beacon", "--genesis", garbage.to_str().unwrap(), "--datadir", d], "genesis"),
        (vec!["beacon", "--bootnodes", "not-a-multiaddr", "--dump-config"], "bootnode"),
        (vec!["shard", "--datadir", d], "--genesis"),
        (vec!["shard", "--genesis", garbage.to_str().unwrap(), "--datadir", d], "genesis"),
    ];
    for (args, expect) in cases {
        let (ok, out) = run(&args);
        assert!(!ok, "{args:?} should fail");
        assert!(out.contains(expect), "{args:?}: expected {expect:?} in {out}");
        assert!(!out.contains("panicked"), "{args:?}: {out}");
    }
}
