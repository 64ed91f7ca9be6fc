//! The configuration's tests: every key, every refusal with its line, the contract's example.

use super::*;

const CONTRACT_EXAMPLE: &str = include_str!("../../../tests/data/config/contract-example.toml");

fn data(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/data/config")
        .join(name)
}

fn parse(text: &str) -> Result<Config, ConfigError> {
    Config::parse(text, Some(Path::new("/etc/hookvisor/hookvisor.toml")))
}

fn one_plugin(text: &str) -> PluginConfig {
    match parse(text) {
        Ok(mut config) if config.plugins.len() == 1 => config.plugins.remove(0),
        other => panic!("expected one plugin, got {other:?}"),
    }
}

#[test]
fn host_limits_have_defaults_and_can_be_set() {
    let config = parse("").expect("empty config");
    assert_eq!(config.supervisor.host_limits, HostLimits::default());
    let config = parse(
        "[supervisor]\nmax_connections = 8\nmax_calls_in_flight = 9\n\
         max_calls_per_connection = 3\nhandshake_timeout_ms = 250\nidle_timeout_ms = 1000\n",
    )
    .expect("valid limits");
    assert_eq!(
        config.supervisor.host_limits,
        HostLimits {
            max_connections: 8,
            max_calls_in_flight: 9,
            max_calls_per_connection: 3,
            handshake_timeout_ms: 250,
            idle_timeout_ms: 1000,
            ..HostLimits::default()
        }
    );
}

#[test]
fn contract_example_loads() {
    let config =
        Config::load(&data("contract-example.toml")).expect("the contract's example loads");
    assert_eq!(config.source, Some(data("contract-example.toml")));
    assert_eq!(
        config.supervisor.socket,
        Path::new("/run/hookvisor/hookvisor.sock")
    );
    assert_eq!(config.supervisor.runtime_dir, Path::new("/run/hookvisor"));
    assert_eq!(config.hooks.before_tool_call.timeout_ms, 5000);
    assert!(config.hooks.before_tool_call.revalidate);
    let [plugin] = config.plugins.as_slice() else {
        panic!("one plugin expected")
    };
    assert_eq!(plugin.name, "deny-list");
    assert_eq!(
        plugin.command,
        Path::new("/usr/lib/hookvisor/plugins/deny-list")
    );
    assert!(plugin.args.is_empty());
    assert!(plugin.trusted);
    assert_eq!(plugin.priority, Some(100));
    assert_eq!(plugin.timeout_ms, Some(200));
    assert_eq!(plugin.on_failure, OnFailure::Deny);
    assert_eq!(
        plugin.env.get("LIST").map(String::as_str),
        Some("/etc/hookvisor/deny.txt")
    );
    assert_eq!(plugin.inherit_env, ["PATH", "LANG"]);
    assert_eq!(plugin.hooks, None);
    assert_eq!(
        config.plugin_socket(plugin, 1),
        Path::new("/run/hookvisor/deny-list/1.sock")
    );
    assert_eq!(
        parse(CONTRACT_EXAMPLE).map(|c| c.plugins.len()).ok(),
        Some(1)
    );
}

#[test]
fn empty_file_gives_defaults_and_no_plugins() {
    let config = Config::parse("", None).expect("an empty file is a valid configuration");
    assert_eq!(config.source, None);
    assert_eq!(
        config.supervisor.socket,
        Path::new("/run/hookvisor/hookvisor.sock")
    );
    assert_eq!(config.supervisor.runtime_dir, Path::new("/run/hookvisor"));
    assert_eq!(config.supervisor.socket_mode, 0o600);
    assert_eq!(config.supervisor.start_timeout_ms, DEFAULT_START_TIMEOUT_MS);
    assert_eq!(config.supervisor.stop_grace_ms, DEFAULT_STOP_GRACE_MS);
    assert_eq!(config.supervisor.worker_threads, DEFAULT_WORKER_THREADS);
    for hook in [
        Hook::Unspecified,
        Hook::BeforeToolCall,
        Hook::BeforeSessionCreate,
        Hook::SessionCreated,
    ] {
        assert_eq!(config.hook(hook).timeout_ms, DEFAULT_HOOK_TIMEOUT_MS);
        assert!(config.hook(hook).revalidate);
    }
    assert!(config.plugins.is_empty());
}

#[test]
fn every_setting_is_read() {
    let config = parse(
        r#"
[supervisor]
socket_mode = "0660"
start_timeout_ms = 600000
stop_grace_ms = 0
worker_threads = 4

[hooks.before_tool_call]
revalidate = false
[hooks.before_session_create]
timeout_ms = 1
[hooks.session_created]
timeout_ms = 250

[[plugin]]
name = "audit"
command = "/bin/audit"
args = ["--verbose", ""]
priority = -2147483648
on_failure = "skip"
hooks = ["session_created", "before_session_create", "session_created"]
"#,
    )
    .expect("valid");
    assert_eq!(config.supervisor.socket_mode, 0o660);
    assert_eq!(config.supervisor.start_timeout_ms, 600_000);
    assert_eq!(config.supervisor.stop_grace_ms, 0);
    assert_eq!(config.supervisor.worker_threads, 4);
    assert!(!config.hook(Hook::BeforeToolCall).revalidate);
    assert_eq!(config.hook(Hook::BeforeSessionCreate).timeout_ms, 1);
    assert_eq!(config.hook(Hook::SessionCreated).timeout_ms, 250);
    let plugin = &config.plugins[0];
    assert_eq!(plugin.args, ["--verbose", ""]);
    assert!(!plugin.trusted);
    assert_eq!(plugin.priority, Some(i32::MIN));
    assert_eq!(plugin.on_failure, OnFailure::Skip);
    assert_eq!(
        plugin.hooks,
        Some(vec![Hook::SessionCreated, Hook::BeforeSessionCreate])
    );
}

#[test]
fn relative_paths_resolve_against_the_config_directory() {
    let config = Config::load(&data("relative.toml")).expect("valid");
    let dir = data("");
    assert_eq!(config.supervisor.runtime_dir, dir.join("run"));
    assert_eq!(config.supervisor.socket, dir.join("run/host.sock"));
    assert_eq!(config.plugins[0].command, dir.join("plugins/nested"));
    assert_eq!(
        config.plugins[1].command,
        dir.join("bare-plugin"),
        "a bare name is not looked up in PATH"
    );
    assert_eq!(
        config.plugin_socket(&config.plugins[1], 1),
        dir.join("run/bare/1.sock")
    );

    let plugin = one_plugin("[[plugin]]\nname = \"x\"\ncommand = \"./bin/../x\"\n");
    assert_eq!(plugin.command, Path::new("/etc/hookvisor/bin/../x"));

    let cwd = std::env::current_dir().expect("a current directory");
    let config = Config::parse("[[plugin]]\nname = \"x\"\ncommand = \"x\"\n", None).expect("valid");
    assert_eq!(config.plugins[0].command, cwd.join("x"));
}

#[test]
fn unreadable_file_is_one_line() {
    let path = data("does-not-exist.toml");
    let err = Config::load(&path).expect_err("missing file");
    let text = err.to_string();
    assert!(
        text.starts_with(&format!("{}: cannot read: ", path.display())),
        "{text}"
    );
    assert!(!text.contains('\n'));
}

#[test]
fn errors_name_file_line_and_key() {
    const PLUGIN: &str = "[[plugin]]\nname = \"p\"\ncommand = \"/bin/p\"\n";
    let long = "a".repeat(64);
    let deep = format!("/{}", "d".repeat(100));
    // (what, text, line, message after "FILE:LINE: ")
    let cases: Vec<(&str, String, usize, String)> = vec![
        ("syntax", "[supervisor]\nsocket = [\n".into(), 2, "invalid TOML: ".into()),
        ("duplicate key", "[supervisor]\nsocket = \"/a\"\nsocket = \"/b\"\n".into(), 3, "invalid TOML: duplicate key at `socket`".into()),
        ("key with a line break", "\"a\\nb\" = 1\n".into(), 1, "unknown key `a\\nb` at the top level".into()),
        (
            "unknown key in plugin",
            format!("{PLUGIN}trused = true\n"),
            4,
            "unknown key `trused` in [[plugin]] (expected one of: name, command, endpoint, tls, args, trusted, \
             priority, timeout_ms, on_failure, env, inherit_env, hooks, mode, sha256, sandbox, speculative, \
             rewrites_params)"
                .into(),
        ),
        ("unknown top-level key", "\n\nplugins = []\n".into(), 3, "unknown key `plugins` at the top level".into()),
        ("shadow and trusted", format!("{PLUGIN}trusted = true\nmode = \"shadow\"\n"), 5, "key `mode`: a shadow plugin never runs in the policy stage; it cannot be trusted".into()),
        ("unknown mode", format!("{PLUGIN}mode = \"dry-run\"\n"), 4, "key `mode`: \"dry-run\" is not a mode".into()),
        (
            "speculative and trusted",
            format!("{PLUGIN}trusted = true\nspeculative = true\n"),
            5,
            "key `speculative`: a trusted plugin may run in the policy stage, which is never speculative".into(),
        ),
        (
            "speculative shadow",
            format!("{PLUGIN}mode = \"shadow\"\nspeculative = true\n"),
            5,
            "key `speculative`: a shadow plugin is never waited for".into(),
        ),
        (
            "speculative after a policy that may rewrite",
            format!("{PLUGIN}trusted = true\n\n[[plugin]]\nname = \"h\"\ncommand = \"/bin/h\"\nspeculative = true\n"),
            9,
            "key `speculative`: plugin `h` would be asked with the host's params before the trusted plugin `p` \
             (line 2) could rewrite them; set `rewrites_params = false` on `p` or remove `speculative`"
                .into(),
        ),
        ("metrics address", "[metrics]\nlisten = \"localhost\"\n".into(), 2, "key `listen`: \"localhost\" is not an address and port".into()),
        ("audit queue", "[audit]\npath = \"-\"\nqueue_lines = 0\n".into(), 3, "key `queue_lines`: 0 is out of range; expected 1..=1048576".into()),
        ("audit without path", "[audit]\nlog_params = true\n".into(), 1, "missing required key `path` in [audit]".into()),
        ("unknown table", "[supervsor]\nsocket = \"/a\"\n".into(), 1, "unknown key `supervsor` at the top level".into()),
        ("unknown key in supervisor", "[supervisor]\nsock = \"/a\"\n".into(), 2, "unknown key `sock` in [supervisor]".into()),
        ("unknown hook table", "[hooks.before_tool]\n".into(), 1, "unknown key `before_tool` in [hooks]".into()),
        (
            "revalidate outside before_tool_call",
            "[hooks.session_created]\nrevalidate = false\n".into(),
            2,
            "unknown key `revalidate` in [hooks.session_created] (expected: timeout_ms)".into(),
        ),
        ("missing name", "[[plugin]]\ncommand = \"/bin/p\"\n".into(), 1, "missing required key `name` in [[plugin]]".into()),
        ("missing command", format!("{PLUGIN}\n[[plugin]]\nname = \"q\"\n"), 6, "key `command`: missing: a plugin needs a `command` to start, or an `endpoint` to reach".into()),
        ("wrong type", "[[plugin]]\nname = 5\ncommand = \"/bin/p\"\n".into(), 2, "key `plugin.name`: invalid type".into()),
        ("name pattern", "[[plugin]]\ncommand = \"/bin/p\"\nname = \"Deny_List\"\n".into(), 3, "plugin name `Deny_List` must match [a-z0-9-]+".into()),
        ("empty name", "[[plugin]]\nname = \"\"\ncommand = \"/bin/p\"\n".into(), 2, "plugin name is empty".into()),
        ("long name", format!("[[plugin]]\nname = \"{long}\"\ncommand = \"/bin/p\"\n"), 2, format!("plugin name `{long}` is 64 characters; at most 63 are allowed")),
        (
            "duplicate name",
            format!("{PLUGIN}\n[[plugin]]\ncommand = \"/bin/q\"\nname = \"p\"\n"),
            7,
            "plugin name `p` is already used by the [[plugin]] on line 2; names must be unique".into(),
        ),
        ("empty command", "[[plugin]]\nname = \"p\"\ncommand = \"\"\n".into(), 3, "key `command`: the path must not be empty".into()),
        ("NUL in arg", format!("{PLUGIN}args = [\"a\\u0000\"]\n"), 4, "key `args`: \"a\\0\" contains a NUL byte".into()),
        (
            "skip on trusted",
            format!("{PLUGIN}trusted = true\n\non_failure = \"skip\"\n"),
            6,
            "key `on_failure`: \"skip\" is only allowed for plugins that are not trusted".into(),
        ),
        ("bad on_failure", format!("{PLUGIN}on_failure = \"allow\"\n"), 4, "key `on_failure`: \"allow\" is not a failure policy".into()),
        ("plugin timeout 0", format!("{PLUGIN}timeout_ms = 0\n"), 4, "key `timeout_ms`: 0 is out of range; expected 1..=600000 milliseconds".into()),
        ("plugin timeout too big", format!("{PLUGIN}timeout_ms = 600001\n"), 4, "key `timeout_ms`: 600001 is out of range".into()),
        ("negative hook timeout", "[hooks.before_tool_call]\ntimeout_ms = -1\n".into(), 2, "key `timeout_ms`: -1 is out of range".into()),
        ("start timeout 0", "[supervisor]\nstart_timeout_ms = 0\n".into(), 2, "key `start_timeout_ms`: 0 is out of range; expected 1..=600000".into()),
        ("stop grace too big", "[supervisor]\nstop_grace_ms = 9999999999\n".into(), 2, "key `stop_grace_ms`: 9999999999 is out of range; expected 0..=600000".into()),
        ("no worker threads", "[supervisor]\nworker_threads = 0\n".into(), 2, "key `worker_threads`: 0 is out of range; expected 1..=256".into()),
        ("too many worker threads", "[supervisor]\nworker_threads = 257\n".into(), 2, "key `worker_threads`: 257 is out of range; expected 1..=256".into()),
        ("no connections", "[supervisor]\nmax_connections = 0\n".into(), 2, "key `max_connections`: 0 is out of range; expected 1..=65536".into()),
        ("too many calls", "[supervisor]\nmax_calls_in_flight = 70000\n".into(), 2, "key `max_calls_in_flight`: 70000 is out of range; expected 1..=65536".into()),
        ("negative per connection", "[supervisor]\nmax_calls_per_connection = -1\n".into(), 2, "key `max_calls_per_connection`: -1 is out of range; expected 1..=65536".into()),
        ("handshake 0", "[supervisor]\nhandshake_timeout_ms = 0\n".into(), 2, "key `handshake_timeout_ms`: 0 is out of range; expected 1..=600000".into()),
        ("idle too long", "[supervisor]\nidle_timeout_ms = 600001\n".into(), 2, "key `idle_timeout_ms`: 600001 is out of range; expected 1..=600000".into()),
        ("priority too big", format!("{PLUGIN}priority = 2147483648\n"), 4, "key `priority`: 2147483648 does not fit".into()),
        ("empty env key", format!("{PLUGIN}env = {{ \"\" = \"x\" }}\n"), 4, "key `env`: a variable name must not be empty".into()),
        ("env key with =", format!("{PLUGIN}[plugin.env]\n\"A=B\" = \"x\"\n"), 5, "key `env`: variable name \"A=B\" must not contain '=' or NUL".into()),
        ("NUL in env value", format!("{PLUGIN}env = {{ A = \"\\u0000\" }}\n"), 4, "key `env`: \"\\0\" contains a NUL byte".into()),
        (
            "reserved env",
            format!("{PLUGIN}env = {{ HOOKVISOR_MAGIC_COOKIE = \"x\" }}\n"),
            4,
            "key `env`: `HOOKVISOR_MAGIC_COOKIE` is set by hookvisor itself".into(),
        ),
        ("reserved inherit_env", format!("{PLUGIN}inherit_env = [\n  \"PATH\",\n  \"HOOKVISOR_PLUGIN_SOCKET\",\n]\n"), 6, "key `inherit_env`: `HOOKVISOR_PLUGIN_SOCKET` is set by hookvisor".into()),
        ("inherit_env with =", format!("{PLUGIN}inherit_env = [\"A=\"]\n"), 4, "key `inherit_env`: variable name \"A=\"".into()),
        ("env and inherit_env", format!("{PLUGIN}env = {{ LANG = \"C\" }}\ninherit_env = [\"LANG\"]\n"), 5, "key `inherit_env`: `LANG` is also set in `env`".into()),
        ("unknown hook", format!("{PLUGIN}hooks = [\"before_tool_call\", \"after_tool_call\"]\n"), 4, "key `hooks`: \"after_tool_call\" is not a hook; expected one of \"before_tool_call\", \"before_session_create\", \"session_created\"".into()),
        ("socket_mode digits", "[supervisor]\nsocket_mode = \"0680\"\n".into(), 2, "key `socket_mode`: \"0680\" is not a permission mode".into()),
        ("socket_mode too big", "[supervisor]\nsocket_mode = \"1777\"\n".into(), 2, "key `socket_mode`: \"1777\" is not a permission mode".into()),
        ("socket_mode integer", "[supervisor]\nsocket_mode = 660\n".into(), 2, "key `supervisor.socket_mode`: invalid type: integer `660`".into()),
        ("host socket too long", format!("[supervisor]\nsocket = \"{deep}/hookvisor.sock\"\n"), 2, "key `socket`: socket path `".into()),
        (
            "plugin socket too long",
            format!("[supervisor]\nruntime_dir = \"{deep}\"\n\n[[plugin]]\ncommand = \"/bin/p\"\nname = \"long-enough\"\n"),
            6,
            "key `name`: socket path `".into(),
        ),
        (
            "host socket is the lock file",
            "[supervisor]\nruntime_dir = \"/run/hv\"\n\nsocket = \"/run/hv/hookvisor.lock\"\n".into(),
            4,
            "key `socket`: `/run/hv/hookvisor.lock` is the runtime directory's lock file".into(),
        ),
        (
            "host socket staging name too long",
            format!("[supervisor]\nsocket = \"{}/s\"\n", "/d".repeat(49)),
            2,
            "key `socket`: socket path `".into(),
        ),
        (
            "plugin socket is the host socket",
            "[supervisor]\nsocket = \"/run/hookvisor/p/1.sock\"\n[[plugin]]\nname = \"p\"\ncommand = \"/bin/p\"\n".into(),
            4,
            "key `name`: the plugin's socket directory `/run/hookvisor/p` would hold or be the host socket".into(),
        ),
    ];
    for (what, text, line, message) in cases {
        let err = match parse(&text) {
            Ok(config) => panic!("{what}: expected an error, got {config:?}"),
            Err(err) => err,
        };
        let display = err.to_string();
        let prefix = format!("/etc/hookvisor/hookvisor.toml:{line}: {message}");
        assert!(
            display.starts_with(&prefix),
            "{what}:\n  got      {display}\n  expected {prefix}…"
        );
        assert!(!display.contains('\n'), "{what}: not one line: {display}");
    }
}

#[test]
fn sandbox_keys_have_defaults_and_can_be_set() {
    let config = parse("[[plugin]]\nname = \"p\"\ncommand = \"/bin/p\"\n").expect("defaults");
    assert_eq!(config.supervisor.sandbox, SandboxMode::BestEffort);
    assert_eq!(config.supervisor.plugin_uids, DEFAULT_PLUGIN_UIDS);
    assert_eq!(config.plugins[0].sandbox, PluginSandbox::default());
    assert!(config.plugins[0].sandbox.enabled);
    assert_eq!(config.plugins[0].sha256, None);
    let digest = "ab".repeat(32);
    let config = parse(&format!(
        "[supervisor]\nsandbox = \"required\"\nplugin_uids = \"3000000-3000009\"\n\
         state_dir = \"/var/lib/hv\"\n[[plugin]]\nname = \"p\"\ncommand = \"/bin/p\"\n\
         sha256 = \"{digest}\"\n[plugin.sandbox]\nread = [\"/etc\"]\nwrite = [\"/tmp\"]\n\
         connect_ports = [443]\nmax_processes = 0\nmemory_max_mib = 2048\n"
    ))
    .expect("every sandbox key");
    assert_eq!(config.supervisor.sandbox, SandboxMode::Required);
    assert_eq!(config.supervisor.plugin_uids, (3_000_000, 3_000_009));
    assert_eq!(config.supervisor.state_dir, Path::new("/var/lib/hv"));
    let plugin = &config.plugins[0];
    assert_eq!(plugin.sha256, Some([0xab; 32]));
    assert_eq!(plugin.sandbox.read, [PathBuf::from("/etc")]);
    assert_eq!(plugin.sandbox.write, [PathBuf::from("/tmp")]);
    assert_eq!(plugin.sandbox.connect_ports, [443]);
    assert_eq!(plugin.sandbox.max_processes, 0);
    assert_eq!(plugin.sandbox.memory_max_mib, 2048);
    assert!(!plugin.sandbox.network);
}

#[test]
fn sandbox_errors_name_the_key_and_line() {
    const P: &str = "[[plugin]]\nname = \"p\"\ncommand = \"/bin/p\"\n";
    let cases: Vec<(&str, String, usize, &str)> = vec![
        (
            "mode",
            "[supervisor]\nsandbox = \"maybe\"\n".into(),
            2,
            "key `sandbox`: \"maybe\" is not a sandbox mode",
        ),
        (
            "range shape",
            "[supervisor]\nplugin_uids = \"61000\"\n".into(),
            2,
            "key `plugin_uids`: \"61000\" is not a range",
        ),
        (
            "range order",
            "[supervisor]\nplugin_uids = \"62000-61000\"\n".into(),
            2,
            "key `plugin_uids`: \"62000-61000\": expected FIRST <= LAST",
        ),
        (
            "range of system users",
            "[supervisor]\nplugin_uids = \"0-99\"\n".into(),
            2,
            "key `plugin_uids`: \"0-99\": expected FIRST <= LAST within 1000",
        ),
        (
            "range over a real user",
            "[supervisor]\nplugin_uids = \"65534-65534\"\n".into(),
            2,
            "key `plugin_uids`: \"65534-65534\" overlaps uid 65534",
        ),
        (
            // The largest range, checked against the local databases at once (not 131,072
            // lookups: the config fuzzer's slow input).
            "largest range over a real user",
            "[supervisor]\nplugin_uids = \"60000-125535\"\n".into(),
            2,
            "key `plugin_uids`: \"60000-125535\" overlaps uid 65534",
        ),
        (
            "digest",
            format!("{P}sha256 = \"abc\"\n"),
            4,
            "key `sha256`: \"abc\" is not a SHA-256 digest",
        ),
        (
            "missing read path",
            format!("{P}[plugin.sandbox]\nread = [\"/no/such/path\"]\n"),
            5,
            "key `read`: `/no/such/path` cannot be used",
        ),
        (
            "missing write path",
            format!("{P}[plugin.sandbox]\nwrite = [\"/no/such/dir\"]\n"),
            5,
            "key `write`: `/no/such/dir` cannot be used",
        ),
        (
            "ports with network",
            format!("{P}[plugin.sandbox]\nnetwork = true\nconnect_ports = [80]\n"),
            6,
            "key `connect_ports`: `network = true` already allows every port",
        ),
        (
            "port zero",
            format!("{P}[plugin.sandbox]\nconnect_ports = [0]\n"),
            5,
            "key `connect_ports`: 0 is not a TCP port",
        ),
        (
            "root user",
            format!("{P}[plugin.sandbox]\nuser = \"root\"\n"),
            5,
            "key `user`: `root` is root",
        ),
        (
            "unknown user",
            format!("{P}[plugin.sandbox]\nuser = \"no-such-user-hv\"\n"),
            5,
            "key `user`: no user is named `no-such-user-hv`",
        ),
        (
            "shared user",
            format!(
                "{P}[plugin.sandbox]\nuser = \"nobody\"\n[[plugin]]\nname = \"q\"\ncommand = \"/bin/q\"\n[plugin.sandbox]\nuser = \"nobody\"\n"
            ),
            7,
            "plugin `q`: key `user`: user `nobody` is already the user of plugin `p`",
        ),
        (
            "limit",
            format!("{P}[plugin.sandbox]\nmax_processes = -1\n"),
            5,
            "key `max_processes`: -1 is out of range",
        ),
        (
            "unknown sandbox key",
            format!("{P}[plugin.sandbox]\nnetwrk = true\n"),
            5,
            "unknown key `netwrk` in [plugin.sandbox]",
        ),
    ];
    for (what, text, line, message) in cases {
        let err = match parse(&text) {
            Ok(config) => panic!("{what}: expected an error, got {config:?}"),
            Err(err) => err,
        };
        let display = err.to_string();
        let prefix = format!("/etc/hookvisor/hookvisor.toml:{line}: {message}");
        assert!(
            display.starts_with(&prefix),
            "{what}:\n  got      {display}\n  expected {prefix}…"
        );
    }
}

#[test]
fn socket_path_limit_is_exact() {
    // Counted with the longest instance name, "p/99999.sock": "/" + 93 + "/p/99999.sock" is
    // exactly 107 bytes and fits; one more byte does not.
    let dir = format!("/{}", "d".repeat(93));
    let text = format!(
        "[supervisor]\nruntime_dir = \"{dir}\"\n[[plugin]]\nname = \"p\"\ncommand = \"/bin/p\"\n"
    );
    let config = parse(&text).expect("a 107-byte socket path fits");
    assert_eq!(
        config
            .plugin_socket(&config.plugins[0], MAX_INSTANCE)
            .as_os_str()
            .len(),
        107
    );
    let text = text.replace(&dir, &format!("{dir}d"));
    assert!(parse(&text).is_err(), "a 108-byte socket path does not fit");
}

#[test]
fn a_config_larger_than_1_mib_is_refused() {
    let err = Config::load(Path::new("/dev/zero")).expect_err("endless input");
    let text = err.to_string();
    assert!(
        text.starts_with("/dev/zero: the file is larger than 1 MiB"),
        "{text}"
    );
}

#[test]
fn a_config_that_is_not_utf8_names_its_line() {
    let dir = std::env::temp_dir().join(format!("hv-utf8-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("temp dir");
    let path = dir.join("bad.toml");
    std::fs::write(&path, b"[supervisor]\n# \xff\n").expect("write");
    let err = Config::load(&path).expect_err("not UTF-8");
    let _ = std::fs::remove_dir_all(&dir);
    assert!(
        err.to_string()
            .ends_with("bad.toml:2: the file is not UTF-8 text"),
        "{err}"
    );
}

#[test]
fn errors_without_a_file_say_config() {
    let err = Config::parse("x = 1\n", None).expect_err("unknown key");
    assert!(
        err.to_string().starts_with("<config>:1: unknown key `x`"),
        "{err}"
    );
}

#[test]
fn speculative_hooks_need_policies_that_never_rewrite() {
    let policy = "[[plugin]]\nname = \"p\"\ncommand = \"/bin/p\"\ntrusted = true\n";
    let hook = "[[plugin]]\nname = \"h\"\ncommand = \"/bin/h\"\nspeculative = true\n";
    let config = parse(&format!("{policy}rewrites_params = false\n\n{hook}")).expect("safe");
    assert!(!config.plugins[0].rewrites_params);
    assert!(config.plugins[1].speculative);
    assert!(config.plugins[1].rewrites_params, "the default");
    // A policy only of sessions does not see tool calls; a speculative hook only of sessions
    // sees nothing a policy could rewrite.
    parse(&format!(
        "{policy}hooks = [\"before_session_create\"]\n\n{hook}"
    ))
    .expect("a policy of sessions only");
    parse(&format!(
        "{policy}\n{hook}hooks = [\"before_session_create\"]\n"
    ))
    .expect("a speculative hook of sessions only");
    let defaults = one_plugin("[[plugin]]\nname = \"q\"\ncommand = \"/bin/q\"\n");
    assert!(!defaults.speculative && defaults.rewrites_params);
    // Many speculative hooks, the rewriting policy last: refused, naming the first hook (the
    // check is one pass over the plugins, not one per hook).
    let mut many = String::new();
    for i in 0..5000 {
        many.push_str(&format!(
            "[[plugin]]\nname = \"h{i}\"\ncommand = \"/bin/h\"\nspeculative = true\n"
        ));
    }
    many.push_str(policy);
    let err = parse(&many)
        .expect_err("a policy that may rewrite")
        .to_string();
    assert!(err.contains("plugin `h0` would be asked"), "{err}");
    assert!(err.contains(":4: key `speculative`"), "{err}");
}

#[test]
fn remote_endpoints_give_host_port_and_server_name() {
    let table = |endpoint: &str, extra: &str| {
        format!(
            "[[plugin]]\nname = \"r\"\nendpoint = \"{endpoint}\"\n[plugin.tls]\nca = \"ca.pem\"\n\
             cert = \"c.pem\"\nkey = \"c.key\"\n{extra}"
        )
    };
    let remote = |text: String| one_plugin(&text).remote.expect("a remote plugin");
    let v6 = remote(table("https://[::1]:9443", ""));
    assert_eq!((v6.host.as_str(), v6.port), ("::1", 9443));
    assert_eq!(v6.authority(), "[::1]:9443");
    assert_eq!(v6.server_name, "::1");
    let named = remote(table(
        "https://policy.internal/",
        "server_name = \"p.test\"\n",
    ));
    assert_eq!((named.host.as_str(), named.port), ("policy.internal", 443));
    assert_eq!(named.server_name, "p.test");
    assert_eq!(named.ca, Path::new("/etc/hookvisor/ca.pem"));
    let pinned = remote(table(
        "https://p:1",
        &format!("spki_sha256 = \"{}\"\n", "ab".repeat(32)),
    ));
    assert_eq!(pinned.spki_sha256, Some([0xab; 32]));
    for (endpoint, problem) in [
        ("https://p:0", "no valid port"),
        ("https://p:65536", "no valid port"),
        ("https://[::1", "unclosed"),
        ("https://[nope]:1", "no valid IPv6"),
        ("https://", "no host"),
        ("https://u@p:1", "user"),
        ("https://p:1?x", "query"),
        ("https://p q:1", "no valid host"),
        ("ftp://p:1", "not an https:// address"),
    ] {
        let err = parse(&table(endpoint, "")).expect_err(endpoint).to_string();
        assert!(
            err.contains("key `endpoint`") && err.contains(problem),
            "{endpoint}: {err}"
        );
    }
    let err = parse(&table("https://p:1", "server_name = \"a b\"\n"))
        .expect_err("a bad server name")
        .to_string();
    assert!(err.contains("key `server_name`"), "{err}");
    let err = parse("[[plugin]]\nname = \"l\"\ncommand = \"/bin/p\"\n[plugin.tls]\nca = \"a\"\ncert = \"b\"\nkey = \"c\"\n")
        .expect_err("tls without an endpoint")
        .to_string();
    assert!(err.contains("[plugin.tls] is for a remote plugin"), "{err}");
}
