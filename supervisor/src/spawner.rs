//! The one thread that forks plugin processes, and the one `unsafe` block of the supervisor.
//!
//! `PR_SET_PDEATHSIG` fires when the *thread* that forked the child exits, not the process
//! (field notes). Forking from a tokio worker would kill plugins whenever the runtime retires
//! that worker, so every plugin is forked from a dedicated thread that lives as long as the
//! [`Spawner`]. Dropping the spawner ends the thread, and with it every plugin it started: the
//! same thing that happens when the supervisor dies.
//!
//! Every plugin is also made the leader of a new session (and so of a new process group). The
//! session is the plugin's identity in the readiness check: any process of a session can join
//! another process group of that session with `setpgid(2)`, but no process can join a session it
//! was not born into, so "the listener is in the child's session" cannot be faked by another
//! plugin.

use std::io;
use std::sync::mpsc;
use std::thread;

use nix::sys::signal::Signal;
use nix::unistd::Pid;
use tokio::process::{Child, Command};
use tokio::sync::oneshot;

struct Job {
    command: Command,
    reply: oneshot::Sender<io::Result<Child>>,
}

/// Forks plugin processes from one long-lived thread, each in a new session and with a
/// parent-death signal armed.
#[derive(Debug, Clone)]
pub struct Spawner {
    jobs: mpsc::Sender<Job>,
}

impl Spawner {
    /// Starts the spawner thread. It enters `runtime` so that spawned children are reaped by
    /// tokio (their `wait()` futures are awaited on the runtime).
    pub fn start(runtime: tokio::runtime::Handle) -> io::Result<Spawner> {
        let (jobs, queue) = mpsc::channel::<Job>();
        thread::Builder::new()
            .name("hookvisor-spawner".into())
            .spawn(move || {
                let _runtime = runtime.enter();
                for mut job in queue {
                    prepare_child(&mut job.command);
                    // The receiver may have given up (its start was cancelled); the child is then
                    // dropped here and, without kill_on_drop, left to its pdeathsig.
                    let _ = job.reply.send(job.command.spawn());
                }
            })?;
        Ok(Spawner { jobs })
    }

    /// Spawns `command` from the spawner thread.
    pub async fn spawn(&self, command: Command) -> io::Result<Child> {
        let (reply, answer) = oneshot::channel();
        self.jobs
            .send(Job { command, reply })
            .map_err(|_| io::Error::other("the spawner thread has stopped"))?;
        answer
            .await
            .map_err(|_| io::Error::other("the spawner thread dropped the request"))?
    }
}

/// Makes the child the leader of a new session and process group (pgid = sid = its pid), and
/// makes it receive SIGKILL when the spawner thread (and so the supervisor) goes away.
fn prepare_child(command: &mut Command) {
    let parent = Pid::this();
    // SAFETY: the closure runs in the child between fork and exec, where only
    // async-signal-safe calls are allowed. It makes exactly three system calls, setsid(2),
    // prctl(2) and getppid(2), all async-signal-safe; it allocates nothing and takes no locks
    // (nix's wrappers are thin and the error path builds an io::Error from a raw errno, which
    // does not allocate). setsid cannot fail here: a freshly forked child is never a process
    // group leader.
    unsafe {
        command.pre_exec(move || {
            nix::unistd::setsid()?;
            nix::sys::prctl::set_pdeathsig(Signal::SIGKILL)?;
            // The supervisor may have died between fork and prctl; the signal would then never
            // come. Exit like the signal would have made us.
            if nix::unistd::getppid() != parent {
                return Err(io::Error::from_raw_os_error(nix::libc::ESRCH));
            }
            Ok(())
        });
    }
}
