//! Runs Apache in the foreground and stops it when this process is told to
//! stop.
//!
//! Ctrl-C in a terminal sends SIGINT to the whole foreground process group,
//! Apache included, which then shuts down by itself. A signal sent to this
//! process alone (`kill`, a supervisor, a test) would not reach Apache, so
//! SIGINT, SIGTERM and SIGHUP are caught here and passed on as SIGWINCH
//! (Apache's "graceful-stop": requests in flight finish, within the
//! configuration's `GracefulShutdownTimeout`; Debian's httpd 2.4 event MPM
//! was seen to crash now and then on the plain "stop", SIGTERM); this
//! process then waits for Apache to exit, so that it can remove the run's
//! files. SIGHUP is caught because a closed
//! terminal sends it to Apache too, which would otherwise restart and keep
//! running with nobody to stop it.

use std::io;
use std::path::Path;
use std::process::{Command, ExitStatus, Stdio};
use std::sync::atomic::{AtomicBool, AtomicI32, Ordering};
use std::time::{Duration, Instant};

/// How long Apache has to stop after the signal before it is killed.
const STOP_GRACE: Duration = Duration::from_secs(10);
const POLL: Duration = Duration::from_millis(50);

static STOP_REQUESTED: AtomicBool = AtomicBool::new(false);
/// Apache's pid while it may receive signals; 0 before it starts and once
/// it has exited (its pid may then belong to another process).
static APACHE_PID: AtomicI32 = AtomicI32::new(0);

pub enum Ended {
    /// Apache exited after being asked to stop.
    Stopped,
    /// Apache exited on its own (failed to start, most likely).
    Exited(ExitStatus),
}

extern "C" fn on_stop_signal(_: libc::c_int) {
    // Only async-signal-safe work here: atomics and kill(2). errno is kept
    // for the code this interrupted.
    // SAFETY: __errno_location returns this thread's errno slot.
    let errno = unsafe { *libc::__errno_location() };
    STOP_REQUESTED.store(true, Ordering::SeqCst);
    let pid = APACHE_PID.load(Ordering::SeqCst);
    if pid > 0 {
        // SAFETY: kill has no memory preconditions.
        unsafe { libc::kill(pid, libc::SIGWINCH) };
    }
    // SAFETY: as above.
    unsafe { *libc::__errno_location() = errno };
}

/// Catches the stop signals; before anything that needs cleaning up exists.
pub fn catch_stop_signals() -> io::Result<()> {
    for signal in [libc::SIGINT, libc::SIGTERM, libc::SIGHUP] {
        // SAFETY: a zeroed sigaction is valid; the handler is an
        // async-signal-safe extern "C" fn. SA_RESTART keeps std's blocking
        // calls from failing with EINTR. exec resets caught signals to
        // their defaults, so Apache does not inherit the handler.
        let installed = unsafe {
            let mut action: libc::sigaction = std::mem::zeroed();
            action.sa_sigaction = on_stop_signal as *const () as libc::sighandler_t;
            action.sa_flags = libc::SA_RESTART;
            libc::sigemptyset(&mut action.sa_mask);
            libc::sigaction(signal, &action, std::ptr::null_mut())
        };
        if installed != 0 {
            return Err(io::Error::last_os_error());
        }
    }
    Ok(())
}

/// Whether a stop signal has arrived.
pub fn stop_requested() -> bool {
    STOP_REQUESTED.load(Ordering::SeqCst)
}

/// Runs `apache -f conf -DFOREGROUND` until it exits. Its output goes where
/// ours goes.
pub fn run(apache: &Path, conf: &Path) -> io::Result<Ended> {
    let mut child = Command::new(apache)
        .arg("-f")
        .arg(conf)
        .arg("-DFOREGROUND")
        // A backtrace captured on every store drop costs a third of the
        // throughput (docs/architecture.md, "Hazards"): Apache must never inherit these.
        .env_remove("RUST_BACKTRACE")
        .env_remove("RUST_LIB_BACKTRACE")
        .stdin(Stdio::null())
        .spawn()?;
    let pid = child.id() as libc::pid_t;
    APACHE_PID.store(pid, Ordering::SeqCst);
    // A signal that came before the pid was known.
    if stop_requested() {
        // SAFETY: pid is our unreaped child.
        unsafe { libc::kill(pid, libc::SIGWINCH) };
    }
    let mut kill_at = None;
    let mut killed = false;
    loop {
        if has_exited(pid)? {
            // Before reaping: after it, the pid may be reused.
            APACHE_PID.store(0, Ordering::SeqCst);
            let status = child.wait()?;
            return Ok(if stop_requested() {
                Ended::Stopped
            } else {
                Ended::Exited(status)
            });
        }
        if stop_requested() && !killed {
            let deadline = *kill_at.get_or_insert_with(|| Instant::now() + STOP_GRACE);
            if Instant::now() >= deadline {
                eprintln!(
                    "mod_wasm: Apache did not stop within {} s: killing it",
                    STOP_GRACE.as_secs()
                );
                child.kill()?;
                killed = true;
            }
        }
        std::thread::sleep(POLL);
    }
}

/// Whether the child `pid` has exited, leaving it unreaped (WNOWAIT).
fn has_exited(pid: libc::pid_t) -> io::Result<bool> {
    // SAFETY: a zeroed siginfo_t is valid; waitid fills it.
    let mut info: libc::siginfo_t = unsafe { std::mem::zeroed() };
    // SAFETY: info is a valid siginfo_t to write to.
    let result = unsafe {
        libc::waitid(
            libc::P_PID,
            pid as libc::id_t,
            &mut info,
            libc::WEXITED | libc::WNOHANG | libc::WNOWAIT,
        )
    };
    if result != 0 {
        let error = io::Error::last_os_error();
        if error.kind() == io::ErrorKind::Interrupted {
            return Ok(false);
        }
        return Err(error);
    }
    // SAFETY: waitid succeeded, so si_pid is set (0 when nothing exited).
    Ok(unsafe { info.si_pid() } != 0)
}
