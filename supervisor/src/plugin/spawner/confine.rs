//! The sandbox as the reaper applies it to the plugin it starts, between fork and exec: a uid
//! and gid of its own with no supplementary groups, `no_new_privs`, process and memory limits,
//! Landlock rules (files, TCP, signal and abstract-socket scopes), a seccomp filter, and every
//! inherited descriptor past stderr closed. [`crate::plugin::sandbox`] decides *what*; this module only
//! carries it out, so the supervisor never forks with half a decision.
//!
//! The supervisor hands the decision to the reaper as JSON in the reaper's environment
//! ([`ENV`]); the reaper removes it before the plugin starts. The reaper's environment is
//! readable only by its own uid (hookvisor's) through `/proc`, never by a plugin uid.
//!
//! Everything that allocates or opens files happens in [`Prepared::new`], before the fork: the
//! Landlock ruleset (with a descriptor per allowed path), the seccomp program, the verified
//! executable. [`Prepared::apply`] runs in the child and makes only system calls. (The reaper
//! has a single thread, so nothing can hold a lock across its fork either.)

use std::ffi::{OsStr, OsString};
use std::io::{self, Read};
use std::os::fd::{AsRawFd, OwnedFd};
use std::path::PathBuf;

use landlock::{
    ABI, Access, AccessFs, AccessNet, CompatLevel, Compatible, NetPort, Ruleset, RulesetAttr,
    RulesetCreated, RulesetCreatedAttr, RulesetStatus, Scope, path_beneath_rules,
};
use nix::libc;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use super::seccomp;

/// The reaper's environment variable holding the [`Confinement`] as JSON.
pub const ENV: &str = "HOOKVISOR_CONFINE";

/// The Landlock ABI whose rights the rules are written against (Linux 6.12: filesystem, TCP,
/// signal and abstract-socket scopes). Newer kernels keep enforcing exactly these; older ones
/// enforce what they know (best effort) or refuse the start (`required`).
const LANDLOCK_ABI: ABI = ABI::V6;

/// What the reaper does to the plugin it starts. The default confines nothing but still
/// closes every inherited descriptor past stderr.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Confinement {
    /// The uid and gid to run as (no supplementary groups).
    pub ids: Option<(u32, u32)>,
    /// Landlock rules, when the plugin is sandboxed and the kernel has Landlock.
    pub landlock: Option<Landlock>,
    /// The seccomp filter's socket rule, when the plugin is sandboxed.
    pub seccomp: Option<SocketRule>,
    /// `RLIMIT_NPROC` (soft and hard).
    pub max_processes: Option<u64>,
    /// `RLIMIT_DATA` in bytes (soft and hard).
    pub memory_max_bytes: Option<u64>,
    /// Set `no_new_privs`.
    pub no_new_privs: bool,
    /// The SHA-256 digest (hex) the executable must have.
    pub sha256: Option<String>,
    /// Every mechanism asked for must be enforced in full, or the plugin does not start.
    pub required: bool,
}

/// The Landlock rules of one plugin.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Landlock {
    /// Read and execute.
    pub read: Vec<PathBuf>,
    /// Every file right (read, write, create, remove, execute).
    pub write: Vec<PathBuf>,
    /// `None`: TCP is not restricted; `Some(ports)`: no TCP bind, connect only to `ports`.
    pub connect_ports: Option<Vec<u16>>,
}

/// Which sockets the seccomp filter lets the plugin create (see [`seccomp::Network`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum SocketRule {
    /// Every family.
    Open,
    /// Unix, and TCP (which Landlock restricts).
    TcpOnly,
    /// Unix only.
    UnixOnly,
}

/// The Landlock ABI of the running kernel (0 when it has none).
pub fn landlock_abi() -> i32 {
    // SAFETY: landlock_create_ruleset(NULL, 0, LANDLOCK_CREATE_RULESET_VERSION) reads no
    // memory and returns the ABI version or -1; it creates nothing.
    #[allow(unsafe_code)]
    let v = unsafe {
        libc::syscall(
            libc::SYS_landlock_create_ruleset,
            std::ptr::null::<libc::c_void>(),
            0usize,
            1u32,
        )
    };
    i32::try_from(v).unwrap_or(0).max(0)
}

/// What was built before the fork, ready to be applied in the child.
pub struct Prepared {
    ruleset: Option<RulesetCreated>,
    filter: Option<seccomp::Filter>,
    max_processes: Option<u64>,
    memory_max_bytes: Option<u64>,
    no_new_privs: bool,
    required: bool,
    /// The verified executable, when `sha256` is set, and whether it is a `#!` script (whose
    /// interpreter reads it through `/proc/self/fd/N`, so it must stay open across exec).
    executable: Option<(OwnedFd, bool)>,
}

impl Prepared {
    /// Builds the Landlock ruleset and the seccomp filter, and verifies the executable's
    /// digest, for `program`.
    pub fn new(confinement: &Confinement, program: &OsStr) -> Result<Prepared, String> {
        let ruleset = match &confinement.landlock {
            Some(rules) => Some(
                ruleset(rules, confinement.required)
                    .map_err(|e| format!("cannot build its Landlock rules: {e}"))?,
            ),
            None => None,
        };
        let filter = match confinement.seccomp {
            None => None,
            Some(rule) => {
                let network = match rule {
                    SocketRule::Open => seccomp::Network::Open,
                    SocketRule::TcpOnly => seccomp::Network::TcpOnly,
                    SocketRule::UnixOnly => seccomp::Network::UnixOnly,
                };
                match seccomp::Filter::new(network) {
                    Some(filter) => Some(filter),
                    None if confinement.required => {
                        return Err("seccomp filters are not supported on this architecture".into());
                    }
                    None => None,
                }
            }
        };
        let executable = match &confinement.sha256 {
            Some(expected) => Some(verified(program, expected)?),
            None => None,
        };
        Ok(Prepared {
            ruleset,
            filter,
            max_processes: confinement.max_processes,
            memory_max_bytes: confinement.memory_max_bytes,
            no_new_privs: confinement.no_new_privs,
            required: confinement.required,
            executable,
        })
    }

    /// What to execute: the verified descriptor through `/proc/self/fd/N` when the digest is
    /// pinned (the very file that was hashed, whatever happens to the path since), else
    /// `program`.
    pub fn program(&self, program: &OsStr) -> OsString {
        match &self.executable {
            Some((fd, _)) => format!("/proc/self/fd/{}", fd.as_raw_fd()).into(),
            None => program.to_owned(),
        }
    }

    /// Applies everything in the child, after the uid switch and before exec: limits,
    /// `no_new_privs`, Landlock, seccomp, and close-on-exec on every descriptor past stderr.
    /// Makes system calls only (Landlock's `restrict_self` included: it calls `prctl` and
    /// `landlock_restrict_self` on the descriptor built before the fork).
    pub fn apply(&mut self) -> io::Result<()> {
        if let Some(n) = self.max_processes {
            nix::sys::resource::setrlimit(nix::sys::resource::Resource::RLIMIT_NPROC, n, n)?;
        }
        if let Some(bytes) = self.memory_max_bytes {
            nix::sys::resource::setrlimit(nix::sys::resource::Resource::RLIMIT_DATA, bytes, bytes)?;
        }
        if self.no_new_privs {
            nix::sys::prctl::set_no_new_privs()?;
        }
        if let Some(ruleset) = self.ruleset.take() {
            let status = ruleset
                .restrict_self()
                .map_err(|_| io::Error::from_raw_os_error(libc::EPERM))?;
            if self.required && status.ruleset != RulesetStatus::FullyEnforced {
                return Err(io::Error::from_raw_os_error(libc::ENOSYS));
            }
        }
        if let Some(filter) = &self.filter {
            filter.install()?;
        }
        close_inherited()?;
        if let Some((fd, true)) = &self.executable {
            // A script's interpreter opens it again by its /proc/self/fd name after exec.
            nix::fcntl::fcntl(
                fd,
                nix::fcntl::FcntlArg::F_SETFD(nix::fcntl::FdFlag::empty()),
            )?;
        }
        Ok(())
    }
}

/// Marks every descriptor past stderr close-on-exec (`close_range(3, ~0,
/// CLOSE_RANGE_CLOEXEC)`), so whatever this process inherited (a second socket-activation
/// socket, say) never reaches what it executes. Marking instead of closing leaves the standard
/// library's own exec-error pipe working.
pub fn close_inherited() -> io::Result<()> {
    // SAFETY: close_range only changes flags in this process's descriptor table.
    #[allow(unsafe_code)]
    let r = unsafe {
        libc::syscall(
            libc::SYS_close_range,
            3u32,
            u32::MAX,
            libc::CLOSE_RANGE_CLOEXEC,
        )
    };
    if r == -1 {
        return Err(io::Error::last_os_error());
    }
    Ok(())
}

fn ruleset(rules: &Landlock, required: bool) -> Result<RulesetCreated, landlock::RulesetError> {
    let level = if required {
        CompatLevel::HardRequirement
    } else {
        CompatLevel::BestEffort
    };
    let read = AccessFs::from_read(LANDLOCK_ABI);
    let all = AccessFs::from_all(LANDLOCK_ABI);
    let mut ruleset = Ruleset::default()
        .set_compatibility(level)
        .handle_access(all)?
        .scope(Scope::from_all(LANDLOCK_ABI))?;
    if rules.connect_ports.is_some() {
        ruleset = ruleset.handle_access(AccessNet::from_all(LANDLOCK_ABI))?;
    }
    let mut created = ruleset
        .create()?
        .add_rules(path_beneath_rules(&rules.read, read))?
        .add_rules(path_beneath_rules(&rules.write, all))?;
    for &port in rules.connect_ports.iter().flatten() {
        created = created.add_rule(NetPort::new(port, AccessNet::ConnectTcp))?;
    }
    Ok(created)
}

/// Opens `program` once, hashes it through that descriptor and compares with `expected`;
/// returns the descriptor (close-on-exec) and whether the file is a `#!` script.
fn verified(program: &OsStr, expected: &str) -> Result<(OwnedFd, bool), String> {
    use std::os::unix::fs::OpenOptionsExt;
    // Non-blocking: a FIFO put in the command's place must not hang the reaper.
    let mut file = std::fs::OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_CLOEXEC | libc::O_NOCTTY | libc::O_NONBLOCK)
        .open(program)
        .map_err(|e| format!("cannot open it to check its sha256: {e}"))?;
    if !file.metadata().is_ok_and(|m| m.is_file()) {
        return Err("it is not a regular file; refusing to run it".to_owned());
    }
    let mut hasher = Sha256::new();
    let mut buffer = vec![0u8; 64 * 1024];
    let mut head = [0u8; 2];
    let mut first = true;
    loop {
        let n = file
            .read(&mut buffer)
            .map_err(|e| format!("cannot read it to check its sha256: {e}"))?;
        if n == 0 {
            break;
        }
        if first && n >= 2 {
            head.copy_from_slice(&buffer[..2]);
        }
        first = false;
        hasher.update(&buffer[..n]);
    }
    let actual: String = hasher
        .finalize()
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect();
    if !actual.eq_ignore_ascii_case(expected) {
        return Err(format!(
            "its sha256 is {actual}, not the configured {expected}; refusing to run it"
        ));
    }
    Ok((OwnedFd::from(file), &head == b"#!"))
}
