//! A small, hand-written classic-BPF seccomp filter for sandboxed plugin processes.
//!
//! The filter is an allow-list of *refusals*: everything not named below is allowed, because a
//! plugin is an arbitrary program (Python, Go, Node, a shell script) and the sandbox's real
//! walls are elsewhere (its own uid, Landlock for files and TCP ports). Seccomp closes the
//! holes those walls leave:
//!
//! - **Architecture.** A filter matches syscall *numbers*, which differ per ABI. A 64-bit x86
//!   process can still make 32-bit syscalls with `int 0x80`, and on either arch a plugin could
//!   exec a 32-bit binary (the filter survives exec); their numbers mean other syscalls, so a
//!   syscall of any other ABI kills the process. x32 syscalls (native numbers with bit 30 set,
//!   x86_64 only) get `ENOSYS`.
//! - **Namespaces.** `unshare`, `setns`, and `clone` with any `CLONE_NEW*` flag are refused:
//!   a plugin never needs a namespace, and user namespaces in particular hand an unprivileged
//!   process "root" over a large part of the kernel (mounts, netfilter, ...), historically a
//!   rich source of privilege escalations. `clone3` passes its flags in memory, where a
//!   classic-BPF filter cannot look, so it gets `ENOSYS`, on which glibc and Go fall back to
//!   `clone`, whose flags the filter can check.
//! - **io_uring.** io_uring performs operations (socket creation among them) inside the
//!   kernel without the matching syscall, so seccomp never sees them. All three io_uring
//!   syscalls get `ENOSYS`, which runtimes treat as "io_uring not available".
//! - **Other kernel attack surface** a plugin has no use for: `bpf`, `perf_event_open`,
//!   `userfaultfd` (a classic exploitation aid) and the keyring syscalls (`keyctl`, `add_key`,
//!   `request_key`) get `EPERM`. `ptrace` is not filtered: the plugin's own uid and Landlock's
//!   ptrace scoping decide what it may trace.
//! - **Sockets** ([`Network`]). Landlock's network rules (ABI 4) restrict `bind` and `connect`
//!   for TCP only. Any other family (UDP, raw, netlink, packet, ...) would pass Landlock
//!   untouched, so when network access is restricted the filter refuses every socket family
//!   but `AF_UNIX` and, when Landlock can restrict it, TCP. A check on the socket type alone is
//!   not enough: SCTP (`IPPROTO_SCTP`) and MPTCP (`IPPROTO_MPTCP`) also use `SOCK_STREAM` and
//!   are not TCP to Landlock, hence the protocol check (0, the default, or `IPPROTO_TCP`).
//!
//! The arguments checked (socket domain, type and protocol, clone flags) are 32-bit to the
//! kernel (`int`, or for clone's flags the low 32 bits of an `unsigned long`), so the filter
//! compares the low 32-bit word of each argument only, exactly what the kernel will use.
//!
//! The filter is built before fork ([`Filter::new`] allocates) and installed between fork and
//! exec ([`Filter::install`] makes one `prctl` call and allocates nothing).
//!
//! Supported: x86_64 (64-bit ABI) and little-endian aarch64. Elsewhere [`Filter::new`] returns
//! `None`.

use std::io;

use nix::libc;

/// What a plugin may do with sockets.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Network {
    /// Every socket family (the plugin's `network = true`).
    Open,
    /// Unix sockets, plus TCP over IPv4/IPv6 (socket type SOCK_STREAM with protocol 0 or
    /// IPPROTO_TCP), whose bind and connect Landlock restricts; every other family, type or
    /// protocol is refused.
    TcpOnly,
    /// Unix sockets only (no Landlock network rules on this kernel).
    UnixOnly,
}

/// A seccomp filter, built before fork (it allocates) and installed after it (it does not).
#[derive(Debug)]
pub struct Filter {
    program: Vec<libc::sock_filter>,
}

impl Filter {
    /// The filter for a plugin with the given network access; `None` on an architecture this
    /// module has no filter for.
    pub fn new(network: Network) -> Option<Filter> {
        #[cfg(any(
            all(target_arch = "x86_64", target_pointer_width = "64"),
            all(target_arch = "aarch64", target_endian = "little"),
        ))]
        let program = Some(program::build(network));
        #[cfg(not(any(
            all(target_arch = "x86_64", target_pointer_width = "64"),
            all(target_arch = "aarch64", target_endian = "little"),
        )))]
        let program = {
            let _ = network;
            None
        };
        program.map(|program| Filter { program })
    }

    /// Installs the filter on the calling thread (and so on what it execs). Makes one
    /// prctl(PR_SET_SECCOMP, SECCOMP_MODE_FILTER) call: async-signal-safe, allocates nothing.
    /// The caller must have set no_new_privs first.
    pub fn install(&self) -> io::Result<()> {
        let len = u16::try_from(self.program.len())
            .map_err(|_| io::Error::from_raw_os_error(libc::EINVAL))?;
        let fprog = libc::sock_fprog {
            len,
            // The kernel only reads (copies) the program; the field is `*mut` in the C header.
            filter: self.program.as_ptr().cast_mut(),
        };
        // SAFETY: `fprog` points at `len` valid instructions owned by `self`, alive for the
        // whole call; prctl copies them into the kernel and keeps no pointer.
        let rc = unsafe {
            libc::prctl(
                libc::PR_SET_SECCOMP,
                libc::c_ulong::from(libc::SECCOMP_MODE_FILTER),
                &fprog as *const libc::sock_fprog,
            )
        };
        if rc == 0 {
            Ok(())
        } else {
            Err(io::Error::last_os_error())
        }
    }
}

#[cfg(any(
    all(target_arch = "x86_64", target_pointer_width = "64"),
    all(target_arch = "aarch64", target_endian = "little"),
))]
mod program {
    use std::mem::offset_of;

    use super::Network;
    use super::libc::{self, c_int, c_long, seccomp_data, sock_filter};

    /// `AUDIT_ARCH_X86_64`: `EM_X86_64` (62) | `__AUDIT_ARCH_64BIT` | `__AUDIT_ARCH_LE`.
    #[cfg(target_arch = "x86_64")]
    const AUDIT_ARCH: u32 = 0xc000_003e;
    /// `AUDIT_ARCH_AARCH64`: `EM_AARCH64` (183) | `__AUDIT_ARCH_64BIT` | `__AUDIT_ARCH_LE`.
    #[cfg(target_arch = "aarch64")]
    const AUDIT_ARCH: u32 = 0xc000_00b7;
    /// `__X32_SYSCALL_BIT`: x32 syscalls report `AUDIT_ARCH_X86_64` with this bit in the number.
    #[cfg(target_arch = "x86_64")]
    const X32_SYSCALL_BIT: u32 = 0x4000_0000;

    /// Every `CLONE_NEW*` flag, all in the low 32 bits. `CLONE_NEWTIME` (0x80) is honoured by
    /// `unshare` and `clone3` only; in `clone` that bit is in the exit-signal byte, where no
    /// valid signal sets it, so refusing it costs nothing.
    const NAMESPACE_FLAGS: c_int = libc::CLONE_NEWNS
        | libc::CLONE_NEWUTS
        | libc::CLONE_NEWIPC
        | libc::CLONE_NEWUSER
        | libc::CLONE_NEWPID
        | libc::CLONE_NEWNET
        | libc::CLONE_NEWCGROUP
        | libc::CLONE_NEWTIME;
    /// The socket type without `SOCK_NONBLOCK` and `SOCK_CLOEXEC` (the kernel's `SOCK_TYPE_MASK`).
    const SOCK_TYPE_MASK: u32 = 0xf;

    const ALLOW: u32 = libc::SECCOMP_RET_ALLOW;
    const KILL_PROCESS: u32 = libc::SECCOMP_RET_KILL_PROCESS;

    /// The filter for `network`. From the syscall-number load on, the accumulator holds the
    /// syscall number until a block matches; every block ends in its own returns, so no jump
    /// leaves its block and every offset is small and local.
    pub(super) fn build(network: Network) -> Vec<sock_filter> {
        let mut program = Vec::with_capacity(64);

        // Only the native ABI.
        program.push(load(offset_of!(seccomp_data, arch)));
        program.push(jeq(AUDIT_ARCH, 1, 0));
        program.push(ret(KILL_PROCESS));
        program.push(load(offset_of!(seccomp_data, nr)));
        #[cfg(target_arch = "x86_64")]
        {
            program.push(jset(X32_SYSCALL_BIT, 0, 1));
            program.push(ret(errno(libc::ENOSYS)));
        }

        // No namespaces, no io_uring, none of the rarely needed kernel interfaces.
        let refused = [
            (libc::SYS_unshare, libc::EPERM),
            (libc::SYS_setns, libc::EPERM),
            (libc::SYS_clone3, libc::ENOSYS),
            (libc::SYS_io_uring_setup, libc::ENOSYS),
            (libc::SYS_io_uring_enter, libc::ENOSYS),
            (libc::SYS_io_uring_register, libc::ENOSYS),
            (libc::SYS_bpf, libc::EPERM),
            (libc::SYS_perf_event_open, libc::EPERM),
            (libc::SYS_userfaultfd, libc::EPERM),
            (libc::SYS_keyctl, libc::EPERM),
            (libc::SYS_add_key, libc::EPERM),
            (libc::SYS_request_key, libc::EPERM),
        ];
        for (nr, error) in refused {
            on_syscall(&mut program, nr, [ret(errno(error))]);
        }
        // clone(flags, ...): flags is the first argument on both arches.
        on_syscall(
            &mut program,
            libc::SYS_clone,
            [
                load_arg(0),
                jset(NAMESPACE_FLAGS as u32, 0, 1),
                ret(errno(libc::EPERM)),
                ret(ALLOW),
            ],
        );

        match network {
            Network::Open => {}
            Network::TcpOnly => {
                // socket(domain, type, protocol). Positions are in the block: 0 is the syscall
                // check that on_syscall adds; a jump at i by n lands at i + 1 + n.
                on_syscall(
                    &mut program,
                    libc::SYS_socket,
                    [
                        /* 1 */ load_arg(0),
                        /* 2 */ jeq(libc::AF_UNIX as u32, 9, 0), // -> 12, allow
                        /* 3 */ jeq(libc::AF_INET as u32, 1, 0), // -> 5, type check
                        /* 4 */ jeq(libc::AF_INET6 as u32, 0, 6), // -> 11, refuse
                        /* 5 */ load_arg(1),
                        /* 6 */ and(SOCK_TYPE_MASK),
                        /* 7 */ jeq(libc::SOCK_STREAM as u32, 0, 3), // -> 11, refuse
                        /* 8 */ load_arg(2),
                        /* 9 */ jeq(0, 2, 0), // -> 12, allow
                        /* 10 */ jeq(libc::IPPROTO_TCP as u32, 1, 0), // -> 12, allow
                        /* 11 */ ret(errno(libc::EACCES)),
                        /* 12 */ ret(ALLOW),
                    ],
                );
                on_syscall(&mut program, libc::SYS_socketpair, unix_only());
            }
            Network::UnixOnly => {
                on_syscall(&mut program, libc::SYS_socket, unix_only());
                on_syscall(&mut program, libc::SYS_socketpair, unix_only());
            }
        }

        program.push(ret(ALLOW));
        program
    }

    /// The body of a socket or socketpair block: `AF_UNIX` only.
    fn unix_only() -> [sock_filter; 4] {
        [
            load_arg(0),
            jeq(libc::AF_UNIX as u32, 0, 1),
            ret(ALLOW),
            ret(errno(libc::EACCES)),
        ]
    }

    /// Appends a block run for syscall `nr` only: a jump over `body` unless the accumulator
    /// (the syscall number) is `nr`, then `body`, which must end in returns on every path.
    fn on_syscall<const N: usize>(
        program: &mut Vec<sock_filter>,
        nr: c_long,
        body: [sock_filter; N],
    ) {
        const { assert!(N <= u8::MAX as usize, "a block must fit a classic-BPF jump") };
        program.push(jeq(nr as u32, 0, N as u8));
        program.extend(body);
    }

    /// `A = *(u32 *)(seccomp_data + offset)`.
    fn load(offset: usize) -> sock_filter {
        stmt(libc::BPF_LD | libc::BPF_W | libc::BPF_ABS, offset as u32)
    }

    /// Loads the low 32-bit word of syscall argument `index` (both supported arches are
    /// little-endian: the low word comes first).
    fn load_arg(index: usize) -> sock_filter {
        load(offset_of!(seccomp_data, args) + 8 * index)
    }

    /// `A &= k`.
    fn and(k: u32) -> sock_filter {
        stmt(libc::BPF_ALU | libc::BPF_AND | libc::BPF_K, k)
    }

    /// Skips `jt` instructions if `A == k`, else `jf`.
    fn jeq(k: u32, jt: u8, jf: u8) -> sock_filter {
        jump(libc::BPF_JMP | libc::BPF_JEQ | libc::BPF_K, k, jt, jf)
    }

    /// Skips `jt` instructions if `A & k != 0`, else `jf`.
    fn jset(k: u32, jt: u8, jf: u8) -> sock_filter {
        jump(libc::BPF_JMP | libc::BPF_JSET | libc::BPF_K, k, jt, jf)
    }

    /// Ends the filter with `action`.
    fn ret(action: u32) -> sock_filter {
        stmt(libc::BPF_RET | libc::BPF_K, action)
    }

    /// The action that fails the syscall with `error`.
    fn errno(error: c_int) -> u32 {
        libc::SECCOMP_RET_ERRNO | (error as u32 & libc::SECCOMP_RET_DATA)
    }

    fn stmt(code: u32, k: u32) -> sock_filter {
        jump(code, k, 0, 0)
    }

    fn jump(code: u32, k: u32, jt: u8, jf: u8) -> sock_filter {
        sock_filter {
            code: code as u16,
            jt,
            jf,
            k,
        }
    }
}

#[cfg(test)]
#[cfg(any(
    all(target_arch = "x86_64", target_pointer_width = "64"),
    all(target_arch = "aarch64", target_endian = "little"),
))]
mod tests {
    use std::collections::BTreeMap;
    use std::io;
    use std::mem::{offset_of, size_of};
    use std::os::unix::process::{CommandExt, ExitStatusExt};
    use std::path::Path;
    use std::process::Command;

    use super::libc::{self, c_long, seccomp_data, sock_filter};
    use super::{Filter, Network};

    const ALL: [Network; 3] = [Network::Open, Network::TcpOnly, Network::UnixOnly];
    const ALLOW: u32 = libc::SECCOMP_RET_ALLOW;

    fn errno(error: i32) -> u32 {
        libc::SECCOMP_RET_ERRNO | error as u32
    }

    #[cfg(target_arch = "x86_64")]
    const NATIVE: u32 = 0xc000_003e;
    #[cfg(target_arch = "aarch64")]
    const NATIVE: u32 = 0xc000_00b7;

    // ---- The program, run by a small classic-BPF interpreter ---------------------------------

    /// Runs `program` on one syscall the way the kernel would, panicking on anything the kernel
    /// would reject (an unknown instruction, a jump or load out of bounds, falling off the end).
    fn run(program: &[sock_filter], arch: u32, nr: c_long, args: [u64; 6]) -> u32 {
        let mut data = [0u8; size_of::<seccomp_data>()];
        let mut put =
            |offset: usize, bytes: &[u8]| data[offset..offset + bytes.len()].copy_from_slice(bytes);
        put(offset_of!(seccomp_data, nr), &(nr as i32).to_ne_bytes());
        put(offset_of!(seccomp_data, arch), &arch.to_ne_bytes());
        for (i, arg) in args.iter().enumerate() {
            put(offset_of!(seccomp_data, args) + 8 * i, &arg.to_ne_bytes());
        }

        const LD_ABS: u32 = libc::BPF_LD | libc::BPF_W | libc::BPF_ABS;
        const AND: u32 = libc::BPF_ALU | libc::BPF_AND | libc::BPF_K;
        const JEQ: u32 = libc::BPF_JMP | libc::BPF_JEQ | libc::BPF_K;
        const JSET: u32 = libc::BPF_JMP | libc::BPF_JSET | libc::BPF_K;
        const RET: u32 = libc::BPF_RET | libc::BPF_K;
        let mut a: u32 = 0;
        let mut pc = 0;
        loop {
            let insn = program[pc];
            pc += 1;
            let k = insn.k;
            match u32::from(insn.code) {
                LD_ABS => {
                    let k = k as usize;
                    assert!(
                        k.is_multiple_of(4) && k + 4 <= data.len(),
                        "bad load offset {k}"
                    );
                    a = u32::from_ne_bytes(data[k..k + 4].try_into().unwrap());
                }
                AND => a &= k,
                JEQ => pc += usize::from(if a == k { insn.jt } else { insn.jf }),
                JSET => pc += usize::from(if a & k != 0 { insn.jt } else { insn.jf }),
                RET => return k,
                code => panic!("unexpected instruction {code:#x}"),
            }
        }
    }

    fn verdict(network: Network, nr: c_long, args: [u64; 6]) -> u32 {
        let filter = Filter::new(network).expect("a filter on this arch");
        run(&filter.program, NATIVE, nr, args)
    }

    fn args3(a: u64, b: u64, c: u64) -> [u64; 6] {
        [a, b, c, 0, 0, 0]
    }

    #[test]
    fn program_fits_and_jumps_stay_inside() {
        for network in ALL {
            let program = Filter::new(network).unwrap().program;
            assert!(program.len() <= 4096, "BPF_MAXINSNS");
            for (pc, insn) in program.iter().enumerate() {
                if u32::from(insn.code) & 0x07 == libc::BPF_JMP {
                    let far = pc + 1 + usize::from(insn.jt.max(insn.jf));
                    assert!(
                        far < program.len(),
                        "{network:?}: jump at {pc} out of bounds"
                    );
                }
            }
            let last = program[program.len() - 1];
            assert_eq!(u32::from(last.code), libc::BPF_RET | libc::BPF_K);
        }
    }

    #[test]
    fn foreign_abis_kill_the_process() {
        // AUDIT_ARCH_I386, AUDIT_ARCH_ARM, and the other supported 64-bit arch.
        for arch in [0x4000_0003, 0x4000_0028, 0xc000_003e, 0xc000_00b7] {
            if arch == NATIVE {
                continue;
            }
            for network in ALL {
                let program = Filter::new(network).unwrap().program;
                for nr in [0, 1, libc::SYS_getpid, libc::SYS_socket] {
                    let verdict = run(&program, arch, nr, [0; 6]);
                    assert_eq!(verdict, libc::SECCOMP_RET_KILL_PROCESS, "{arch:#x} {nr}");
                }
            }
        }
    }

    #[cfg(target_arch = "x86_64")]
    #[test]
    fn x32_syscalls_get_enosys() {
        for network in ALL {
            for nr in [libc::SYS_getpid, libc::SYS_socket, libc::SYS_read] {
                let x32 = nr | 0x4000_0000;
                assert_eq!(verdict(network, x32, [0; 6]), errno(libc::ENOSYS));
            }
        }
    }

    #[test]
    fn fixed_refusals_in_every_mode() {
        let cases = [
            (libc::SYS_unshare, errno(libc::EPERM)),
            (libc::SYS_setns, errno(libc::EPERM)),
            (libc::SYS_clone3, errno(libc::ENOSYS)),
            (libc::SYS_io_uring_setup, errno(libc::ENOSYS)),
            (libc::SYS_io_uring_enter, errno(libc::ENOSYS)),
            (libc::SYS_io_uring_register, errno(libc::ENOSYS)),
            (libc::SYS_bpf, errno(libc::EPERM)),
            (libc::SYS_perf_event_open, errno(libc::EPERM)),
            (libc::SYS_userfaultfd, errno(libc::EPERM)),
            (libc::SYS_keyctl, errno(libc::EPERM)),
            (libc::SYS_add_key, errno(libc::EPERM)),
            (libc::SYS_request_key, errno(libc::EPERM)),
            (libc::SYS_ptrace, ALLOW),
            (libc::SYS_getpid, ALLOW),
            (libc::SYS_read, ALLOW),
            (libc::SYS_execve, ALLOW),
            (libc::SYS_connect, ALLOW),
            (libc::SYS_bind, ALLOW),
        ];
        for network in ALL {
            for (nr, expected) in cases {
                // Arguments do not matter to these rules.
                for args in [[0; 6], [u64::MAX; 6]] {
                    assert_eq!(verdict(network, nr, args), expected, "{network:?} nr {nr}");
                }
            }
        }
    }

    #[test]
    fn clone_with_namespace_flags_is_refused() {
        let sigchld = libc::SIGCHLD as u64;
        let thread = (libc::CLONE_VM
            | libc::CLONE_FS
            | libc::CLONE_FILES
            | libc::CLONE_SIGHAND
            | libc::CLONE_THREAD
            | libc::CLONE_SYSVSEM
            | libc::CLONE_SETTLS
            | libc::CLONE_PARENT_SETTID
            | libc::CLONE_CHILD_CLEARTID) as u64;
        let fork = (libc::CLONE_CHILD_SETTID | libc::CLONE_CHILD_CLEARTID) as u64 | sigchld;
        let namespaces = [
            libc::CLONE_NEWNS,
            libc::CLONE_NEWUTS,
            libc::CLONE_NEWIPC,
            libc::CLONE_NEWUSER,
            libc::CLONE_NEWPID,
            libc::CLONE_NEWNET,
            libc::CLONE_NEWCGROUP,
            libc::CLONE_NEWTIME,
        ];
        for network in ALL {
            for flags in [0, sigchld, thread, fork, 0xffff_ffff_0000_0000 | sigchld] {
                let got = verdict(network, libc::SYS_clone, [flags, 1, 2, 3, 4, 5]);
                assert_eq!(got, ALLOW, "{network:?} flags {flags:#x}");
            }
            for flag in namespaces {
                for base in [0, sigchld, fork, thread] {
                    let flags = base | flag as u64;
                    let got = verdict(network, libc::SYS_clone, [flags, 0, 0, 0, 0, 0]);
                    assert_eq!(got, errno(libc::EPERM), "{network:?} flags {flags:#x}");
                }
            }
        }
    }

    #[test]
    fn socket_rules() {
        use libc::{
            AF_INET, AF_INET6, AF_NETLINK, AF_PACKET, AF_UNIX, AF_VSOCK, IPPROTO_MPTCP,
            IPPROTO_SCTP, IPPROTO_TCP, IPPROTO_UDP, SOCK_CLOEXEC, SOCK_DGRAM, SOCK_NONBLOCK,
            SOCK_RAW, SOCK_SEQPACKET, SOCK_STREAM,
        };
        let flags = SOCK_NONBLOCK | SOCK_CLOEXEC;
        let high = 0xdead_beef_0000_0000u64;
        // (domain, type, protocol, allowed under TcpOnly, allowed under UnixOnly)
        let cases: &[(u64, i32, i32, bool, bool)] = &[
            (AF_UNIX as u64, SOCK_STREAM, 0, true, true),
            (AF_UNIX as u64, SOCK_DGRAM | flags, 0, true, true),
            (AF_UNIX as u64, SOCK_SEQPACKET, 0, true, true),
            (AF_INET as u64, SOCK_STREAM, 0, true, false),
            (AF_INET as u64, SOCK_STREAM | flags, 0, true, false),
            (AF_INET as u64, SOCK_STREAM, IPPROTO_TCP, true, false),
            (AF_INET6 as u64, SOCK_STREAM | SOCK_CLOEXEC, 0, true, false),
            (AF_INET6 as u64, SOCK_STREAM, IPPROTO_TCP, true, false),
            // The kernel takes the low 32 bits of each argument; so does the filter.
            (high | AF_INET as u64, SOCK_STREAM, 0, true, false),
            (high | AF_UNIX as u64, SOCK_DGRAM, 0, true, true),
            (high | AF_NETLINK as u64, SOCK_RAW, 0, false, false),
            (AF_INET as u64, SOCK_STREAM, IPPROTO_SCTP, false, false),
            (AF_INET6 as u64, SOCK_STREAM, IPPROTO_SCTP, false, false),
            (AF_INET as u64, SOCK_STREAM, IPPROTO_MPTCP, false, false),
            (AF_INET as u64, SOCK_STREAM, IPPROTO_UDP, false, false),
            (AF_INET as u64, SOCK_DGRAM, 0, false, false),
            (AF_INET6 as u64, SOCK_DGRAM, 0, false, false),
            (AF_INET as u64, SOCK_RAW, IPPROTO_TCP, false, false),
            (AF_INET as u64, SOCK_SEQPACKET, 0, false, false),
            (AF_NETLINK as u64, SOCK_RAW, 0, false, false),
            (AF_PACKET as u64, SOCK_RAW, 0, false, false),
            (AF_VSOCK as u64, SOCK_STREAM, 0, false, false),
        ];
        for &(domain, ty, protocol, tcp_only, unix_only) in cases {
            let args = args3(domain, ty as u32 as u64, protocol as u32 as u64);
            let case = format!("socket({domain:#x}, {ty:#x}, {protocol})");
            let expect = |allowed: bool| if allowed { ALLOW } else { errno(libc::EACCES) };
            assert_eq!(
                verdict(Network::Open, libc::SYS_socket, args),
                ALLOW,
                "Open {case}"
            );
            let got = verdict(Network::TcpOnly, libc::SYS_socket, args);
            assert_eq!(got, expect(tcp_only), "TcpOnly {case}");
            let got = verdict(Network::UnixOnly, libc::SYS_socket, args);
            assert_eq!(got, expect(unix_only), "UnixOnly {case}");
            // socketpair: AF_UNIX only unless Open, whatever the type.
            let unix = domain as u32 == AF_UNIX as u32;
            let got = verdict(Network::Open, libc::SYS_socketpair, args);
            assert_eq!(got, ALLOW, "Open socketpair {case}");
            for network in [Network::TcpOnly, Network::UnixOnly] {
                let got = verdict(network, libc::SYS_socketpair, args);
                assert_eq!(got, expect(unix), "{network:?} socketpair {case}");
            }
        }
    }

    /// A 32-bit `int 0x80` syscall (i386 `getpid`, number 20) from a filtered process kills it
    /// with SIGSYS before the syscall runs. On a kernel without IA32 emulation `int 0x80` faults
    /// (SIGSEGV) even unfiltered: there is nothing to block there, and the baseline says so.
    #[cfg(target_arch = "x86_64")]
    #[test]
    fn int_0x80_kills_the_process() {
        let baseline = int_0x80(None);
        if baseline.signal() == Some(libc::SIGSEGV) {
            eprintln!("no IA32 emulation in this kernel: int 0x80 faults even unfiltered");
        } else {
            assert!(baseline.success(), "unfiltered int 0x80: {baseline:?}");
        }
        let filter = Filter::new(Network::Open).expect("a filter on this arch");
        let filtered = int_0x80(Some(filter));
        if baseline.success() {
            assert_eq!(filtered.signal(), Some(libc::SIGSYS), "{filtered:?}");
        }
    }

    /// Runs `/bin/true` after an i386 getpid made between fork and exec, under `filter`.
    #[cfg(target_arch = "x86_64")]
    fn int_0x80(filter: Option<Filter>) -> std::process::ExitStatus {
        let mut command = Command::new("/bin/true");
        // SAFETY: between fork and exec: at most two prctl calls and one compat syscall, none of
        // which allocates.
        unsafe {
            command.pre_exec(move || {
                set_no_new_privs()?;
                if let Some(filter) = &filter {
                    filter.install()?;
                }
                i386_getpid();
                Ok(())
            });
        }
        command.status().expect("spawn /bin/true")
    }

    #[cfg(target_arch = "x86_64")]
    fn i386_getpid() -> i32 {
        let mut eax: i32 = 20;
        // SAFETY: the i386 getpid takes no arguments and touches no memory; the compat entry
        // clobbers at most r8-r11, declared here.
        unsafe {
            std::arch::asm!(
                "int 0x80",
                inout("eax") eax,
                out("r8") _, out("r9") _, out("r10") _, out("r11") _,
                options(nostack),
            );
        }
        eax
    }

    // ---- The filter installed in a real process ------------------------------------------

    const PYTHON: &str = "/usr/bin/python3";

    /// Prints one line per try: `name ok` or `name <errno>`. Syscall numbers come as
    /// `name=number` arguments.
    const SCRIPT: &str = r#"
import ctypes, os, socket, sys, threading

libc = ctypes.CDLL(None, use_errno=True)
nr = {k: int(v) for k, v in (a.split("=") for a in sys.argv[1:])}

def attempt(name, f):
    try:
        f()
        print(name, "ok")
    except OSError as e:
        print(name, e.errno)

def check(ret):
    if ret == -1:
        e = ctypes.get_errno()
        raise OSError(e, os.strerror(e))
    return ret

def sock(*a):
    socket.socket(*a).close()

def pair(family):
    a, b = socket.socketpair(family, socket.SOCK_STREAM)
    a.close()
    b.close()

def raw(name, *args):
    return check(libc.syscall(ctypes.c_long(nr[name]), *[ctypes.c_long(a) for a in args]))

def unshare(flags):
    if hasattr(os, "unshare"):
        os.unshare(flags)
    else:
        check(libc.unshare(ctypes.c_int(flags)))

def fork():
    pid = os.fork()
    if pid == 0:
        os._exit(0)
    _, status = os.waitpid(pid, 0)
    if status != 0:
        raise OSError(0, "child status %d" % status)

def clone_newuser():
    # Raw clone(CLONE_NEWUSER | SIGCHLD, stack 0): fork-like when allowed.
    pid = raw("clone", 0x10000000 | 17, 0, 0, 0, 0)
    if pid == 0:
        os._exit(0)
    os.waitpid(pid, 0)

def thread():
    t = threading.Thread(target=lambda: None)
    t.start()
    t.join()

attempt("unix_stream", lambda: sock(socket.AF_UNIX, socket.SOCK_STREAM))
attempt("unix_dgram", lambda: sock(socket.AF_UNIX, socket.SOCK_DGRAM))
attempt("inet_stream", lambda: sock(socket.AF_INET, socket.SOCK_STREAM))
attempt("inet_stream_tcp", lambda: sock(socket.AF_INET, socket.SOCK_STREAM, 6))
attempt("inet6_stream", lambda: sock(socket.AF_INET6, socket.SOCK_STREAM))
attempt("inet_dgram", lambda: sock(socket.AF_INET, socket.SOCK_DGRAM))
attempt("inet6_dgram", lambda: sock(socket.AF_INET6, socket.SOCK_DGRAM))
attempt("netlink", lambda: sock(socket.AF_NETLINK, socket.SOCK_RAW, 0))
attempt("inet_sctp", lambda: sock(socket.AF_INET, socket.SOCK_STREAM, 132))
attempt("inet_mptcp", lambda: sock(socket.AF_INET, socket.SOCK_STREAM, 262))
attempt("socketpair_unix", lambda: pair(socket.AF_UNIX))
attempt("socketpair_inet", lambda: pair(socket.AF_INET))
attempt("unshare_none", lambda: unshare(0))
attempt("clone_newuser", clone_newuser)
attempt("clone3", lambda: raw("clone3", 0, 0))
attempt("io_uring_setup", lambda: raw("io_uring_setup", 0, 0))
attempt("bpf", lambda: raw("bpf", 0, 0, 0))
attempt("keyctl", lambda: raw("keyctl", 0, -3, 0))
if "x32_getpid" in nr:
    attempt("x32_getpid", lambda: raw("x32_getpid"))
attempt("fork", fork)
attempt("thread", thread)
# Last: when allowed, it moves this process into a new user namespace.
attempt("unshare_user", lambda: unshare(0x10000000))
"#;

    fn set_no_new_privs() -> io::Result<()> {
        let (one, zero): (libc::c_ulong, libc::c_ulong) = (1, 0);
        // SAFETY: prctl with integer arguments only; touches no memory of ours.
        let rc = unsafe { libc::prctl(libc::PR_SET_NO_NEW_PRIVS, one, zero, zero, zero) };
        if rc == 0 {
            Ok(())
        } else {
            Err(io::Error::last_os_error())
        }
    }

    /// Runs the script under `filter` (none: the baseline, with no_new_privs only) and returns
    /// each try's result.
    fn probe(filter: Option<Filter>) -> BTreeMap<String, String> {
        assert!(
            Path::new(PYTHON).exists(),
            "{PYTHON} not found: the seccomp tests run a Python script under the filter"
        );
        let mut numbers = vec![
            format!("clone={}", libc::SYS_clone),
            format!("clone3={}", libc::SYS_clone3),
            format!("io_uring_setup={}", libc::SYS_io_uring_setup),
            format!("bpf={}", libc::SYS_bpf),
            format!("keyctl={}", libc::SYS_keyctl),
        ];
        if cfg!(target_arch = "x86_64") {
            numbers.push(format!("x32_getpid={}", libc::SYS_getpid | 0x4000_0000));
        }
        let mut command = Command::new(PYTHON);
        command.arg("-c").arg(SCRIPT).args(&numbers);
        // SAFETY: the closure runs between fork and exec; it makes two prctl calls, both
        // async-signal-safe, and allocates nothing (the filter was built before the fork).
        unsafe {
            command.pre_exec(move || {
                set_no_new_privs()?;
                match &filter {
                    Some(filter) => filter.install(),
                    None => Ok(()),
                }
            });
        }
        let output = command
            .output()
            .unwrap_or_else(|e| panic!("cannot run {PYTHON}: {e}"));
        let stdout = String::from_utf8_lossy(&output.stdout);
        assert!(
            output.status.success(),
            "{PYTHON} failed ({:?}, signal {:?}):\nstdout:\n{stdout}\nstderr:\n{}",
            output.status,
            output.status.signal(),
            String::from_utf8_lossy(&output.stderr),
        );
        stdout
            .lines()
            .map(|line| {
                let (name, result) = line.split_once(' ').expect("`name result` lines");
                (name.to_owned(), result.to_owned())
            })
            .collect()
    }

    /// What a try must give under a filter: refused with this errno, or the same as without a
    /// filter (the baseline: some families may be missing from a kernel).
    enum Expect {
        Refused(i32),
        Baseline,
    }

    fn check(network: Network, expectations: &[(&str, Expect)]) {
        let baseline = probe(None);
        // What must work on any Linux, or the comparisons below prove nothing.
        for name in [
            "unix_stream",
            "inet_stream",
            "unshare_none",
            "fork",
            "thread",
        ] {
            assert_eq!(baseline[name], "ok", "baseline {name}: {baseline:?}");
        }
        let filter = Filter::new(network).expect("a filter on this arch");
        let got = probe(Some(filter));
        eprintln!("{network:?}: {got:?}");
        assert_eq!(got.len(), baseline.len(), "{got:?}");
        for (name, expect) in expectations {
            let result = &got[*name];
            match expect {
                Expect::Refused(errno) => {
                    assert_eq!(result, &errno.to_string(), "{network:?} {name}: {got:?}")
                }
                Expect::Baseline => {
                    assert_eq!(result, &baseline[*name], "{network:?} {name}: {got:?}")
                }
            }
        }
    }

    /// The tries every filter refuses, whatever the network access.
    fn always() -> Vec<(&'static str, Expect)> {
        let mut always = vec![
            ("unshare_user", Expect::Refused(libc::EPERM)),
            ("unshare_none", Expect::Refused(libc::EPERM)),
            ("clone_newuser", Expect::Refused(libc::EPERM)),
            ("clone3", Expect::Refused(libc::ENOSYS)),
            ("io_uring_setup", Expect::Refused(libc::ENOSYS)),
            ("bpf", Expect::Refused(libc::EPERM)),
            ("keyctl", Expect::Refused(libc::EPERM)),
            // Plain fork and threads keep working (the latter through glibc's fallback from
            // clone3 to clone).
            ("fork", Expect::Baseline),
            ("thread", Expect::Baseline),
        ];
        if cfg!(target_arch = "x86_64") {
            always.push(("x32_getpid", Expect::Refused(libc::ENOSYS)));
        }
        always
    }

    #[test]
    fn open_network_in_a_real_process() {
        let mut expectations = always();
        for name in [
            "unix_stream",
            "unix_dgram",
            "inet_stream",
            "inet_stream_tcp",
            "inet6_stream",
            "inet_dgram",
            "inet6_dgram",
            "netlink",
            "inet_sctp",
            "inet_mptcp",
            "socketpair_unix",
            "socketpair_inet",
        ] {
            expectations.push((name, Expect::Baseline));
        }
        check(Network::Open, &expectations);
    }

    #[test]
    fn tcp_only_in_a_real_process() {
        let mut expectations = always();
        for name in [
            "unix_stream",
            "unix_dgram",
            "inet_stream",
            "inet_stream_tcp",
            "inet6_stream",
            "socketpair_unix",
        ] {
            expectations.push((name, Expect::Baseline));
        }
        for name in [
            "inet_dgram",
            "inet6_dgram",
            "netlink",
            "inet_sctp",
            "inet_mptcp",
            "socketpair_inet",
        ] {
            expectations.push((name, Expect::Refused(libc::EACCES)));
        }
        check(Network::TcpOnly, &expectations);
    }

    #[test]
    fn unix_only_in_a_real_process() {
        let mut expectations = always();
        for name in ["unix_stream", "unix_dgram", "socketpair_unix"] {
            expectations.push((name, Expect::Baseline));
        }
        for name in [
            "inet_stream",
            "inet_stream_tcp",
            "inet6_stream",
            "inet_dgram",
            "inet6_dgram",
            "netlink",
            "inet_sctp",
            "inet_mptcp",
            "socketpair_inet",
        ] {
            expectations.push((name, Expect::Refused(libc::EACCES)));
        }
        check(Network::UnixOnly, &expectations);
    }
}

#[cfg(test)]
#[cfg(not(any(
    all(target_arch = "x86_64", target_pointer_width = "64"),
    all(target_arch = "aarch64", target_endian = "little"),
)))]
mod tests {
    use super::{Filter, Network};

    #[test]
    fn no_filter_on_other_arches() {
        for network in [Network::Open, Network::TcpOnly, Network::UnixOnly] {
            assert!(Filter::new(network).is_none());
        }
    }
}
