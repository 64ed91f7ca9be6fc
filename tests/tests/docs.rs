//! The documents' code blocks run: every configuration and plugin snippet in `README.md` and
//! `docs/*.md` is checked by hookvisor itself, so the docs cannot drift from what it accepts.
//!
//! A fenced block is marked by a word after its language:
//! - ```` ```toml tested-config ````: `hookvisor check-config` prints `ok` for it;
//! - ```` ```rust tested-plugin ```` (or `python`, `ts`, `go`): it builds as the plugin `careful`
//!   the way its page says, and `hookvisor conformance` passes it;
//! - ```` ```json tested-cases plugin=NAME ````: `hookvisor conformance --cases` runs its lines
//!   against the workspace's plugin binary `NAME`, and every case passes.
//!
//! A block that looks like a configuration or a plugin but is not marked fails the test
//! ([`must_be`]), and so does a relative link to a file or a heading that does not exist.
//!
//! The docs show paths a user has; a configuration is checked with them mapped onto this
//! checkout ([`paths`]). A page's plugin snippets are built into a directory of their own, laid
//! out as the page says (`/opt/careful/...`), before its configurations are checked, since those
//! name what was built. Nothing here skips: the plugins in Python, TypeScript and Go need
//! `make sdks`, the Rust one the workspace built (`cargo build --workspace --all-targets`).

use std::collections::{HashMap, HashSet};
use std::path::{Path, PathBuf};
use std::process::Stdio;

use hookvisor_tests::harness::{
    TestDir, binary, conformance, profile_dir, repo_root, run_hookvisor,
};
use hookvisor_tests::languages::{Command, node, python_plugin};

/// How to get what a plugin in Python, TypeScript or Go needs, when it is missing.
const SETUP: &str = "run `make sdks` (the README's test command does)";

/// Blocks that look like configurations but are not run, each as (file, heading) with a comment
/// saying why. None today: keep it that way.
const NOT_RUN: &[(&str, &str)] = &[];

/// Languages a `tested-plugin` block may be written in.
const PLUGIN_LANGUAGES: &[&str] = &["rust", "python", "ts", "go"];

/// Languages whose blocks are plugin code, marked or not.
const CODE_LANGUAGES: &[&str] = &[
    "rust",
    "rs",
    "python",
    "py",
    "ts",
    "typescript",
    "js",
    "javascript",
    "go",
    "golang",
];

/// Text that only plugin code holds: an SDK's import.
const SDK_IMPORTS: &[&str] = &[
    "use hookvisor_plugin",
    "import hookvisor_plugin",
    "from hookvisor_plugin import",
    "\"@hookvisor/plugin\"",
    "\"hookvisor.dev/plugin-sdk/go\"",
];

/// The documents whose blocks are run.
fn pages() -> Vec<Page> {
    let root = repo_root();
    let mut files = vec!["README.md".to_owned()];
    let mut docs: Vec<String> = std::fs::read_dir(root.join("docs"))
        .expect("reading docs/")
        .filter_map(|entry| entry.ok())
        .map(|entry| entry.file_name().to_string_lossy().into_owned())
        .filter(|name| name.ends_with(".md"))
        .map(|name| format!("docs/{name}"))
        .collect();
    docs.sort();
    files.extend(docs);
    files
        .into_iter()
        .map(|file| {
            let text = std::fs::read_to_string(root.join(&file))
                .unwrap_or_else(|err| panic!("reading {file}: {err}"));
            Page::parse(file, &text)
        })
        .collect()
}

/// Where the docs' paths are on this machine, longest first: a clone in `/opt/hookvisor` built
/// in release (the tests have the debug build), TLS files in `/etc/hookvisor/tls` (made for the
/// page: `ca.pem`, `client.pem`, `client.key`, `server.pem`, `server.key`), a package's layout (plugins in
/// `/usr/lib/hookvisor/plugins`, the operator's files in `/etc/hookvisor`, where `deny-list.txt`
/// is), and the page's own plugin in `/opt/careful`, built into `page_build`.
fn paths(page_build: &Path) -> Vec<(&'static str, PathBuf)> {
    let root = repo_root();
    vec![
        // A remote plugin's CA, client certificate and key: made for the test (never committed).
        ("/etc/hookvisor/tls", page_build.join("tls")),
        ("/opt/hookvisor/target/release", profile_dir()),
        ("/usr/lib/hookvisor/plugins", profile_dir()),
        ("/opt/hookvisor", root.clone()),
        ("/etc/hookvisor", root.join("examples")),
        ("/opt/careful", page_build.to_path_buf()),
    ]
}

/// `text` with every path of [`paths`] replaced, in one pass; a path is replaced where it ends
/// at a `/` or at the end of a name (`/opt/careful"`, not `/opt/careful-2`).
fn map_paths(text: &str, paths: &[(&str, PathBuf)]) -> String {
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    'scan: while let Some(c) = rest.chars().next() {
        for (from, to) in paths {
            let Some(after) = rest.strip_prefix(from) else {
                continue;
            };
            let ends = after
                .chars()
                .next()
                .is_none_or(|next| !(next.is_alphanumeric() || "-_.".contains(next)));
            if ends {
                out.push_str(&to.display().to_string());
                rest = after;
                continue 'scan;
            }
        }
        out.push(c);
        rest = &rest[c.len_utf8()..];
    }
    out
}

/// One Markdown document: its fenced blocks and its headings.
struct Page {
    /// `README.md` or `docs/NAME.md`.
    file: String,
    /// Its fenced code blocks, in order.
    blocks: Vec<Block>,
    /// Its headings' text, in order.
    headings: Vec<String>,
    /// Every line outside fenced blocks, with its number.
    prose: Vec<(usize, String)>,
}

/// A fenced code block.
struct Block {
    /// The document holding it.
    file: String,
    /// 1-based line of its opening fence.
    line: usize,
    /// The last heading before it.
    heading: String,
    /// The info string's first word: `toml`, `rust`, ...
    lang: String,
    /// The info string's other words: the mark and its attributes.
    words: Vec<String>,
    /// Its content, without the fences.
    text: String,
}

impl Page {
    fn parse(file: String, text: &str) -> Page {
        let mut page = Page {
            file,
            blocks: Vec::new(),
            headings: Vec::new(),
            prose: Vec::new(),
        };
        // The open fence: its backtick count, indentation, and the block so far.
        let mut open: Option<(usize, usize, Block)> = None;
        for (index, line) in text.lines().enumerate() {
            let trimmed = line.trim_start();
            let indent = line.len() - trimmed.len();
            let ticks = trimmed.chars().take_while(|c| *c == '`').count();
            match open.take() {
                Some((fence, _, block)) if ticks >= fence && trimmed[ticks..].trim().is_empty() => {
                    page.blocks.push(block);
                }
                Some((fence, at, mut block)) => {
                    // Content is indented like its fence (a block in a list item): drop that much.
                    let spaces = line.len() - line.trim_start_matches(' ').len();
                    block.text.push_str(&line[spaces.min(at)..]);
                    block.text.push('\n');
                    open = Some((fence, at, block));
                }
                None if ticks >= 3 => {
                    let mut info = trimmed[ticks..].split_whitespace().map(str::to_owned);
                    let block = Block {
                        file: page.file.clone(),
                        line: index + 1,
                        heading: page.headings.last().cloned().unwrap_or_default(),
                        lang: info.next().unwrap_or_default(),
                        words: info.collect(),
                        text: String::new(),
                    };
                    open = Some((ticks, indent, block));
                }
                None => {
                    if let Some(heading) = heading_text(line) {
                        page.headings.push(heading.to_owned());
                    }
                    page.prose.push((index + 1, line.to_owned()));
                }
            }
        }
        if let Some((_, _, block)) = open {
            panic!("{}: a fenced block is never closed", block.place());
        }
        page
    }

    /// The name of the directory its plugins are built in: `README`, `plugins`, ...
    fn stem(&self) -> &str {
        let name = self.file.rsplit('/').next().unwrap_or(&self.file);
        name.strip_suffix(".md").unwrap_or(name)
    }
}

/// A heading's text, if `line` is an ATX heading.
fn heading_text(line: &str) -> Option<&str> {
    let hashes = line.chars().take_while(|c| *c == '#').count();
    if (1..=6).contains(&hashes) && line[hashes..].starts_with(' ') {
        Some(line[hashes..].trim())
    } else {
        None
    }
}

impl Block {
    /// `FILE:LINE`, for messages.
    fn place(&self) -> String {
        format!("{}:{}", self.file, self.line)
    }

    /// Its mark (`tested-config`, ...), if it has one.
    fn mark(&self) -> Option<&str> {
        self.words
            .iter()
            .map(String::as_str)
            .find(|word| word.starts_with("tested-"))
    }

    /// The value of an attribute `KEY=VALUE` of its info string.
    fn attribute(&self, key: &str) -> Option<&str> {
        self.words
            .iter()
            .find_map(|word| word.strip_prefix(key)?.strip_prefix('='))
    }
}

/// The mark a block must carry, judging by its language and its text: any TOML, or anything
/// with a `[[plugin]]` or `[supervisor]` table, is a configuration; code in a plugin language, or
/// anything importing an SDK, is a plugin; JSON lines with an `expect` are conformance cases.
fn must_be(block: &Block) -> Option<&'static str> {
    let tables = block
        .text
        .lines()
        .any(|line| line.starts_with("[[plugin]]") || line.starts_with("[supervisor]"));
    if block.lang == "toml" || tables {
        Some("tested-config")
    } else if CODE_LANGUAGES.contains(&block.lang.as_str())
        || SDK_IMPORTS.iter().any(|import| block.text.contains(import))
    {
        Some("tested-plugin")
    } else if block.lang == "json" && block.text.contains("\"expect\"") {
        Some("tested-cases")
    } else {
        None
    }
}

/// Why a marked block's mark does not fit it, if it does not.
fn misfit(block: &Block, mark: &str) -> Option<String> {
    let lang = block.lang.as_str();
    match mark {
        "tested-config" if lang != "toml" => Some("a tested-config block is ```toml".to_owned()),
        "tested-plugin" if !PLUGIN_LANGUAGES.contains(&lang) => Some(format!(
            "a tested-plugin block is written in one of {PLUGIN_LANGUAGES:?}, not `{lang}`"
        )),
        "tested-cases" if lang != "json" || block.attribute("plugin").is_none() => {
            Some("a tested-cases block is ```json tested-cases plugin=NAME".to_owned())
        }
        "tested-config" | "tested-plugin" | "tested-cases" => None,
        other => Some(format!(
            "unknown mark `{other}` (tested-config, tested-plugin or tested-cases)"
        )),
    }
}

#[test]
fn every_config_and_plugin_block_is_marked() {
    let mut problems = Vec::new();
    let mut exemptions_used = HashSet::new();
    for page in pages() {
        for block in &page.blocks {
            if let Some(mark) = block.mark() {
                if let Some(problem) = misfit(block, mark) {
                    problems.push(format!("{}: {problem}", block.place()));
                }
                continue;
            }
            let Some(mark) = must_be(block) else {
                continue;
            };
            let exemption = (block.file.as_str(), block.heading.as_str());
            if let Some(index) = NOT_RUN.iter().position(|e| *e == exemption) {
                exemptions_used.insert(index);
                continue;
            }
            problems.push(format!(
                "{}: a ```{} block that looks like a {} is not marked: write ```{} {mark} \
                 (tests/tests/docs.rs runs it)",
                block.place(),
                block.lang,
                mark.trim_start_matches("tested-"),
                block.lang
            ));
        }
    }
    for (index, exemption) in NOT_RUN.iter().enumerate() {
        if !exemptions_used.contains(&index) {
            problems.push(format!(
                "NOT_RUN names {exemption:?}, which holds no unmarked block any more: remove it"
            ));
        }
    }
    assert!(problems.is_empty(), "{}", problems.join("\n"));
}

#[test]
fn every_marked_block_runs() {
    let dir = TestDir::new();
    let pages = pages();
    let mut failures = Vec::new();
    let mut marked = 0;
    let mut ran = 0;

    // Plugins first: the configurations beside them name what they built.
    for page in &pages {
        let build = dir.join(page.stem());
        let mut languages = HashMap::new();
        for block in page
            .blocks
            .iter()
            .filter(|b| b.mark() == Some("tested-plugin"))
        {
            marked += 1;
            if let Some(first) = languages.insert(block.lang.clone(), block.line) {
                failures.push(format!(
                    "{}: a second `{}` plugin on the page (the first is at line {first}); \
                     each page builds one plugin per language into /opt/careful",
                    block.place(),
                    block.lang
                ));
                continue;
            }
            ran += 1;
            if let Err(err) = build_plugin(block, &build).and_then(|plugin| passes(&[], &plugin)) {
                failures.push(format!("{}: {err}", block.place()));
            }
        }
    }
    for page in &pages {
        for block in page
            .blocks
            .iter()
            .filter(|b| b.mark() == Some("tested-cases"))
        {
            marked += 1;
            ran += 1;
            if let Err(err) = cases_pass(block, &dir) {
                failures.push(format!("{}: {err}", block.place()));
            }
        }
    }
    for page in &pages {
        let paths = paths(&dir.join(page.stem()));
        if page
            .blocks
            .iter()
            .any(|b| b.text.contains("/etc/hookvisor/tls/"))
        {
            let tls = dir.join(page.stem()).join("tls");
            std::fs::create_dir_all(&tls).expect("the page's TLS directory");
            hookvisor_tests::pki::write(&tls);
        }
        for block in page
            .blocks
            .iter()
            .filter(|b| b.mark() == Some("tested-config"))
        {
            marked += 1;
            ran += 1;
            if let Err(err) = config_passes(block, &paths, &dir) {
                failures.push(format!("{}: {err}", block.place()));
            }
        }
    }

    assert!(failures.is_empty(), "{}", failures.join("\n\n"));
    assert_eq!(ran, marked, "every marked block runs");
    assert!(ran > 0, "no marked block in README.md or docs/");
}

/// `hookvisor check-config` on the block, its paths mapped onto this machine.
fn config_passes(block: &Block, paths: &[(&str, PathBuf)], dir: &TestDir) -> Result<(), String> {
    let text = map_paths(&block.text, paths);
    let file = dir.join(&format!(
        "{}-{}.toml",
        block.file.replace('/', "-"),
        block.line
    ));
    std::fs::write(&file, &text).map_err(|err| format!("writing {}: {err}", file.display()))?;
    let file = file.display().to_string();
    let (status, stdout, stderr) = run_hookvisor(&["check-config", "--config", &file]);
    if status.success() && stdout.trim() == "ok" {
        Ok(())
    } else {
        Err(format!(
            "`hookvisor check-config` refused it ({status}): {stdout}{stderr}\nas checked:\n{text}"
        ))
    }
}

/// `hookvisor conformance --cases` with the block's lines against the binary it names.
fn cases_pass(block: &Block, dir: &TestDir) -> Result<(), String> {
    let plugin = block.attribute("plugin").unwrap_or_default();
    let file = dir.join(&format!(
        "{}-{}.jsonl",
        block.file.replace('/', "-"),
        block.line
    ));
    std::fs::write(&file, &block.text).map_err(|err| format!("writing cases: {err}"))?;
    let expected = block
        .text
        .lines()
        .filter(|line| !line.trim().is_empty() && !line.trim_start().starts_with('#'))
        .count();
    let command = Command {
        program: binary(plugin),
        args: Vec::new(),
        inherit_env: Vec::new(),
        read: Vec::new(),
    };
    let report = passes(
        &["--cases".to_owned(), file.display().to_string()],
        &command,
    )?;
    let ok = report
        .lines()
        .filter(|l| l.starts_with("ok    line "))
        .count();
    if ok == expected {
        Ok(())
    } else {
        Err(format!(
            "{ok} of {expected} cases ran and passed:\n{report}"
        ))
    }
}

/// `hookvisor conformance` with `options` passes `plugin`: its report, or why not.
fn passes(options: &[String], plugin: &Command) -> Result<String, String> {
    let mut args = options.to_vec();
    args.extend(plugin.conformance_args());
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let argv = plugin.argv();
    let argv: Vec<&str> = argv.iter().map(String::as_str).collect();
    let (passed, report) = conformance(&args, &argv);
    if passed && report.contains(", 0 failed") {
        Ok(report)
    } else {
        Err(format!("`hookvisor conformance` failed:\n{report}"))
    }
}

/// Builds the block as the plugin `careful` in `dir`, laid out as the docs' `/opt/careful`.
fn build_plugin(block: &Block, dir: &Path) -> Result<Command, String> {
    std::fs::create_dir_all(dir).map_err(|err| format!("creating {}: {err}", dir.display()))?;
    match block.lang.as_str() {
        "rust" => build_rust(&block.text, dir),
        "python" => {
            let script = write(dir, "careful.py", &block.text)?;
            Ok(python_plugin(&script.display().to_string(), &[]))
        }
        "ts" => build_typescript(&block.text, dir),
        "go" => build_go(&block.text, dir),
        other => Err(format!("no way to build a `{other}` plugin")),
    }
}

/// `target/release/careful`: the snippet compiled by rustc against the workspace's
/// `hookvisor-plugin`, as rustdoc compiles a doctest (a crate of its own would build every
/// dependency again).
fn build_rust(source: &str, dir: &Path) -> Result<Command, String> {
    let main = write(dir, "src/main.rs", source)?;
    let program = dir.join("target/release/careful");
    let out_dir = program.parent().unwrap_or(dir);
    std::fs::create_dir_all(out_dir)
        .map_err(|err| format!("creating {}: {err}", out_dir.display()))?;
    let deps = profile_dir().join("deps");
    let sdk = newest(&deps, "libhookvisor_plugin-", ".rlib").ok_or_else(|| {
        format!(
            "no libhookvisor_plugin-*.rlib in {}: run `cargo build --workspace --all-targets` first",
            deps.display()
        )
    })?;
    let rustc = std::env::var_os("RUSTC").unwrap_or_else(|| "rustc".into());
    let mut rustc = std::process::Command::new(rustc);
    rustc
        .args([
            "--edition",
            "2024",
            "--crate-type",
            "bin",
            "--crate-name",
            "careful",
        ])
        .args(["-C", "debuginfo=0", "-D", "warnings", "-o"])
        .arg(&program)
        .arg(&main)
        .arg("--extern")
        .arg(format!("hookvisor_plugin={}", sdk.display()))
        .arg("-L")
        .arg(format!("dependency={}", deps.display()))
        .env("CARGO_PKG_VERSION", env!("CARGO_PKG_VERSION"));
    run(&mut rustc, "rustc")?;
    Ok(Command {
        program,
        args: Vec::new(),
        inherit_env: Vec::new(),
        read: Vec::new(),
    })
}

/// The newest file in `dir` named `PREFIX…SUFFIX`: the one the last build wrote.
fn newest(dir: &Path, prefix: &str, suffix: &str) -> Option<PathBuf> {
    std::fs::read_dir(dir)
        .ok()?
        .filter_map(|entry| entry.ok())
        .filter(|entry| {
            let name = entry.file_name().to_string_lossy().into_owned();
            name.starts_with(prefix) && name.ends_with(suffix)
        })
        .filter_map(|entry| Some((entry.metadata().ok()?.modified().ok()?, entry.path())))
        .max()
        .map(|(_, path)| path)
}

/// `dist/careful.js`, compiled by `tsc` from `src/careful.ts` with `@hookvisor/plugin` linked
/// into `node_modules` from the checkout (as npm links a `file:` dependency); run by `node`,
/// reading what its `[[plugin]]` table lets it read: its package and the SDK.
fn build_typescript(source: &str, dir: &Path) -> Result<Command, String> {
    let root = repo_root();
    let sdk = root.join("plugin-sdk/typescript");
    let example_modules = root.join("examples/typescript/node_modules");
    let tsc = example_modules.join(".bin/tsc");
    if !tsc.exists() {
        return Err(format!("{} does not exist: {SETUP}", tsc.display()));
    }
    write(dir, "src/careful.ts", source)?;
    write(
        dir,
        "package.json",
        "{ \"private\": true, \"type\": \"commonjs\" }\n",
    )?;
    // The compiler options of examples/typescript, the SDK's own example.
    write(
        dir,
        "tsconfig.json",
        r#"{
  "compilerOptions": {
    "target": "ES2022", "module": "node16", "moduleResolution": "node16", "lib": ["ES2022"],
    "types": ["node"], "rootDir": "src", "outDir": "dist", "strict": true,
    "noImplicitOverride": true, "noFallthroughCasesInSwitch": true,
    "forceConsistentCasingInFileNames": true, "skipLibCheck": true
  },
  "include": ["src"]
}
"#,
    )?;
    symlink(&sdk, &dir.join("node_modules/@hookvisor/plugin"))?;
    symlink(
        &example_modules.join("@types"),
        &dir.join("node_modules/@types"),
    )?;
    let mut compile = std::process::Command::new(&tsc);
    compile.arg("-p").arg(dir.join("tsconfig.json"));
    run(&mut compile, "tsc")?;
    let script = dir.join("dist/careful.js");
    set_executable(&script)?;
    Ok(Command {
        program: node(),
        args: vec![script.display().to_string()],
        inherit_env: Vec::new(),
        read: vec![dir.to_path_buf(), sdk],
    })
}

/// `careful`, built by `go build` in a module of its own that requires the SDK from the checkout
/// with the versions `examples/go` pins (its `go.sum`); modules come from Go's module cache,
/// which `make sdks` filled, never from the network.
fn build_go(source: &str, dir: &Path) -> Result<Command, String> {
    let root = repo_root();
    let example = root.join("examples/go");
    let read = |name: &str| {
        std::fs::read_to_string(example.join(name))
            .map_err(|err| format!("reading examples/go/{name}: {err}"))
    };
    let sdk = format!(
        "replace hookvisor.dev/plugin-sdk/go => {}",
        root.join("plugin-sdk/go").display()
    );
    let go_mod: Vec<String> = read("go.mod")?
        .lines()
        .map(|line| {
            if line.starts_with("module ") {
                "module careful".to_owned()
            } else if line.starts_with("replace hookvisor.dev/plugin-sdk/go ") {
                sdk.clone()
            } else {
                line.to_owned()
            }
        })
        .collect();
    if !go_mod.contains(&sdk) {
        return Err("examples/go/go.mod no longer replaces hookvisor.dev/plugin-sdk/go".to_owned());
    }
    write(dir, "go.mod", &(go_mod.join("\n") + "\n"))?;
    write(dir, "go.sum", &read("go.sum")?)?;
    write(dir, "main.go", source)?;
    let program = dir.join("careful");
    let mut build = std::process::Command::new("go");
    build
        .args([
            "build",
            "-trimpath",
            "-mod=readonly",
            "-buildvcs=false",
            "-o",
        ])
        .arg(&program)
        .arg(".")
        .current_dir(dir)
        .env("GOPROXY", "off")
        .env("GOFLAGS", "");
    run(&mut build, "go build")
        .map_err(|err| format!("{err}\n(if a module is missing: {SETUP})"))?;
    Ok(Command {
        program,
        args: Vec::new(),
        inherit_env: Vec::new(),
        read: Vec::new(),
    })
}

/// Writes `text` to `dir/name`, creating its directory.
fn write(dir: &Path, name: &str, text: &str) -> Result<PathBuf, String> {
    let path = dir.join(name);
    if let Some(parent) = path.parent() {
        std::fs::create_dir_all(parent)
            .map_err(|err| format!("creating {}: {err}", parent.display()))?;
    }
    std::fs::write(&path, text).map_err(|err| format!("writing {}: {err}", path.display()))?;
    Ok(path)
}

fn symlink(target: &Path, link: &Path) -> Result<(), String> {
    if let Some(parent) = link.parent() {
        std::fs::create_dir_all(parent)
            .map_err(|err| format!("creating {}: {err}", parent.display()))?;
    }
    std::os::unix::fs::symlink(target, link)
        .map_err(|err| format!("linking {} to {}: {err}", link.display(), target.display()))
}

fn set_executable(path: &Path) -> Result<(), String> {
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o755))
        .map_err(|err| format!("chmod {}: {err}", path.display()))
}

/// Runs a build step; its output is the error when it fails.
fn run(command: &mut std::process::Command, what: &str) -> Result<(), String> {
    let output = command
        .stdin(Stdio::null())
        .output()
        .map_err(|err| format!("{what} could not run: {err}"))?;
    if output.status.success() {
        Ok(())
    } else {
        Err(format!(
            "{what} failed ({}):\n{}{}",
            output.status,
            String::from_utf8_lossy(&output.stdout),
            String::from_utf8_lossy(&output.stderr)
        ))
    }
}

#[test]
fn every_relative_link_resolves() {
    let root = repo_root();
    let mut anchors: HashMap<PathBuf, HashSet<String>> = HashMap::new();
    let mut broken = Vec::new();
    for page in pages() {
        let base = root.join(&page.file);
        let base_dir = base.parent().unwrap_or(&root).to_path_buf();
        for (line, text) in &page.prose {
            for target in link_targets(text) {
                if target.contains("://") || target.starts_with("mailto:") {
                    continue;
                }
                let (path, anchor) = target.split_once('#').unwrap_or((target, ""));
                let file = if path.is_empty() {
                    base.clone()
                } else {
                    base_dir.join(path)
                };
                if !file.exists() {
                    broken.push(format!("{}:{line}: {target}: no such file", page.file));
                    continue;
                }
                if anchor.is_empty() || !path_is_markdown(&file) {
                    continue;
                }
                let known = anchors.entry(file.clone()).or_insert_with(|| {
                    let text = std::fs::read_to_string(&file).unwrap_or_default();
                    slugs(&Page::parse(String::new(), &text).headings)
                });
                if !known.contains(anchor) {
                    broken.push(format!("{}:{line}: {target}: no such heading", page.file));
                }
            }
        }
    }
    assert!(broken.is_empty(), "broken links:\n{}", broken.join("\n"));
}

fn path_is_markdown(path: &Path) -> bool {
    path.extension().is_some_and(|ext| ext == "md")
}

/// The targets of the inline links `[text](target)` on a line, outside code spans.
fn link_targets(line: &str) -> Vec<&str> {
    let mut targets = Vec::new();
    for (index, part) in line.split('`').enumerate() {
        if index % 2 == 1 {
            continue;
        }
        let mut rest = part;
        while let Some(start) = rest.find("](") {
            let after = &rest[start + 2..];
            let end = after.find(')').unwrap_or(after.len());
            targets.push(after[..end].trim());
            rest = &after[end..];
        }
    }
    targets
}

/// The anchors GitHub gives headings: lower case, punctuation dropped, spaces as `-`, and
/// `-1`, `-2`, ... after a repeated one.
fn slugs(headings: &[String]) -> HashSet<String> {
    let mut seen: HashMap<String, usize> = HashMap::new();
    let mut out = HashSet::new();
    for heading in headings {
        let slug: String = heading
            .to_lowercase()
            .chars()
            .filter_map(|c| match c {
                ' ' => Some('-'),
                c if c.is_alphanumeric() || c == '-' || c == '_' => Some(c),
                _ => None,
            })
            .collect();
        let count = seen.entry(slug.clone()).or_insert(0);
        out.insert(if *count == 0 {
            slug.clone()
        } else {
            format!("{slug}-{count}")
        });
        *count += 1;
    }
    out
}
