//! The `synthetic` trial: sleeps through the curve of [`albedo_tuning::synthetic`] (the
//! scheduler benchmark's fixed workload), reporting `accuracy` at each step.

use std::collections::BTreeMap;
use std::time::Duration;

use tokio::sync::mpsc;
use tokio::time::Instant;

use albedo_shared::protocol::WorkerMsg;
pub use albedo_tuning::synthetic::{
    METRIC, NOISE_SD, SyntheticParams, synthetic_curve, synthetic_seed,
};

use super::{Assignment, Control, Reporter};

/// Runs a synthetic trial under `lease`: sleeps each step's time, reports `accuracy` each
/// step, pauses at `resource`, obeys continue and stop (a stop also interrupts a step).
/// Returns when the lease has ended (its last report sent) or the control channel closed.
pub(crate) async fn run(
    a: &Assignment,
    steps: u32,
    seed: u64,
    step_ms: Option<f64>,
    control: &mut mpsc::UnboundedReceiver<Control>,
    reports: &Reporter,
    timer: &mut Timer,
) {
    let lease = a.lease;
    let mut resource = a.resource;
    let curve = match synthetic_curve(&a.params, synthetic_seed(seed, a.trial), steps) {
        Ok(c) => c,
        Err(reason) => {
            let _ = reports.send(WorkerMsg::Failed { lease, reason });
            return;
        }
    };
    let mut running = Duration::ZERO;
    let mut since = Instant::now();
    let mut deadline = since;
    let mut step: u32 = 0;
    let mut last = None;
    loop {
        if step >= steps {
            running += since.elapsed();
            let final_values = last
                .map(|v| BTreeMap::from([(METRIC.to_string(), v)]))
                .unwrap_or_default();
            let _ = reports.send(WorkerMsg::Finished {
                lease,
                final_values,
                duration_ms: running.as_millis() as u64,
            });
            return;
        }
        if resource.is_some_and(|r| step >= r) {
            running += since.elapsed();
            let _ = reports.send(WorkerMsg::Paused { lease, step });
            match control.recv().await {
                None => return,
                Some(Control::Stop) => {
                    let _ = reports.send(WorkerMsg::Stopped { lease, step });
                    return;
                }
                Some(Control::Continue(r)) => {
                    resource = r;
                    since = Instant::now();
                    deadline = since;
                    continue;
                }
            }
        }
        let (value, own_ms) = curve[step as usize];
        let ms = step_ms.unwrap_or(own_ms);
        // Deadlines accumulate, so that timer lateness does not add up over the steps.
        deadline += Duration::from_secs_f64(ms / 1000.0);
        loop {
            tokio::select! {
                () = timer.sleep_until(deadline) => break,
                c = control.recv() => match c {
                    None => return,
                    Some(Control::Stop) => {
                        let _ = reports.send(WorkerMsg::Stopped { lease, step });
                        return;
                    }
                    // A promotion while running: only the target changes.
                    Some(Control::Continue(r)) => resource = r,
                },
            }
        }
        step += 1;
        last = Some(value);
        let _ = reports.send(WorkerMsg::Metric {
            lease,
            step,
            values: BTreeMap::from([(METRIC.to_string(), value)]),
        });
    }
}

/// The end of each step that a synthetic trial spends on its core rather than asleep: a
/// sleeping thread wakes some 100-200 µs after its timer on a virtual machine with idle
/// cores (the vCPU halts and the host must schedule it again), which a trial that computes,
/// as real ones do, never pays. A running slot spends at most 0.4 % of a core on it at
/// 50 ms steps.
#[cfg(target_os = "linux")]
const SPIN: Duration = Duration::from_micros(200);

/// Keeps the core until `deadline` (at most [`SPIN`]), yielding to the runtime between
/// looks at the clock: the worker's runtime has one thread, and the slots' deadlines come
/// close together (their trials started together), so a spin that held the thread would
/// make each slot's wake-up wait for the others' spins. Yielding keeps the thread awake (the
/// runtime polls its reactor without blocking while a task yields), so every slot whose
/// timer fires meanwhile is polled at once and spins alongside.
#[cfg(target_os = "linux")]
async fn spin_until(deadline: Instant) {
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        if left.is_zero() {
            return;
        }
        if left > LAST_SPIN {
            tokio::task::yield_now().await;
        } else {
            std::hint::spin_loop();
        }
    }
}

/// The end of a spin that holds the runtime's thread: one round of the runtime (its other
/// tasks, a look at its reactor) takes some 10-20 µs, which a yielding spin would overrun.
#[cfg(target_os = "linux")]
const LAST_SPIN: Duration = Duration::from_micros(25);

/// A slot's precise sleeper: sleeps until a deadline to within some microseconds. tokio's
/// timer has a 1 ms resolution and rounds every sleep up to its next tick (half a
/// millisecond late on average: 1 % of a 50 ms trial). On Linux the wait is a `timerfd` on
/// the monotonic clock (no timer slack) that wakes the task through tokio's reactor, made
/// once per slot and re-armed for each sleep (making and registering one per sleep cost the
/// worker's one thread some 10 µs between two trials); elsewhere, or if the `timerfd` fails,
/// the last millisecond is slept by the OS's own timer on a blocking thread.
#[derive(Debug, Default)]
pub(crate) struct Timer {
    #[cfg(target_os = "linux")]
    fd: Option<precise::TimerFd>,
}

impl Timer {
    /// Sleeps until `deadline`; cancelling the future leaves the timer ready for the next
    /// sleep.
    async fn sleep_until(&mut self, deadline: Instant) {
        #[cfg(target_os = "linux")]
        {
            let wake = deadline.checked_sub(SPIN).unwrap_or(deadline);
            if self.fd.is_none() {
                match precise::TimerFd::new() {
                    Ok(fd) => self.fd = Some(fd),
                    Err(e) => tracing::debug!("no timerfd ({e}); using tokio's timer"),
                }
            }
            if let Some(fd) = &self.fd {
                let slept = fd.sleep_until(wake).await;
                match slept {
                    Ok(()) => {
                        spin_until(deadline).await;
                        return;
                    }
                    Err(e) => {
                        self.fd = None;
                        tracing::debug!("timerfd sleep failed ({e}); using tokio's timer");
                    }
                }
            }
        }
        let coarse = deadline
            .checked_sub(Duration::from_millis(1))
            .unwrap_or(deadline);
        tokio::time::sleep_until(coarse).await;
        let left = deadline.saturating_duration_since(Instant::now());
        if !left.is_zero() {
            // Cancelling this future (a stop order) leaves the thread to finish its short sleep.
            let _ = tokio::task::spawn_blocking(move || std::thread::sleep(left)).await;
        }
    }
}

#[cfg(target_os = "linux")]
mod precise {
    use std::os::fd::OwnedFd;

    use rustix::time::{
        ClockId, Itimerspec, TimerfdClockId, TimerfdFlags, TimerfdTimerFlags, Timespec,
        clock_gettime, timerfd_create, timerfd_settime,
    };
    use tokio::io::Interest;
    use tokio::io::unix::AsyncFd;
    use tokio::time::Instant;

    /// A one-shot `timerfd` on the monotonic clock, registered with tokio's reactor (and
    /// closed, after deregistration, when dropped).
    #[derive(Debug)]
    pub(super) struct TimerFd(AsyncFd<OwnedFd>);

    impl TimerFd {
        pub(super) fn new() -> std::io::Result<Self> {
            let fd = timerfd_create(
                TimerfdClockId::Monotonic,
                TimerfdFlags::NONBLOCK | TimerfdFlags::CLOEXEC,
            )?;
            // Deprecated because an `AsyncFd` over a borrowed descriptor could outlive it;
            // this one owns its `OwnedFd`, which closes only after deregistration (the safe
            // path, without the `unsafe` of `register_with_interest`).
            #[allow(deprecated)]
            let fd = AsyncFd::with_interest(fd, Interest::READABLE)?;
            Ok(Self(fd))
        }

        /// Arms the timer for the absolute `deadline` and waits for it. Arming resets the
        /// count of expirations, so a sleep cancelled earlier leaves nothing behind but,
        /// perhaps, a readiness that the read below finds stale.
        pub(super) async fn sleep_until(&self, deadline: Instant) -> std::io::Result<()> {
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                return Ok(());
            }
            // Instant is CLOCK_MONOTONIC on Linux, but opaque: the deadline is now + what is
            // left.
            let now = clock_gettime(ClockId::Monotonic);
            let nanos = now.tv_nsec as u64 + u64::from(left.subsec_nanos());
            let at = Timespec {
                tv_sec: now.tv_sec + left.as_secs() as i64 + (nanos / 1_000_000_000) as i64,
                tv_nsec: (nanos % 1_000_000_000) as _,
            };
            let zero = Timespec {
                tv_sec: 0,
                tv_nsec: 0,
            };
            timerfd_settime(
                self.0.get_ref(),
                TimerfdTimerFlags::ABSTIME,
                &Itimerspec {
                    it_interval: zero,
                    it_value: at,
                },
            )?;
            loop {
                let mut ready = self.0.readable().await?;
                let mut expirations = [0u8; 8];
                match rustix::io::read(self.0.get_ref(), &mut expirations) {
                    Ok(_) => return Ok(()),
                    Err(rustix::io::Errno::AGAIN) => ready.clear_ready(),
                    Err(e) => return Err(e.into()),
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A sleep cut short leaves its slot's timer armed; the next sleep re-arms it, and the
    /// old deadline passing meanwhile does not end the new sleep early.
    #[cfg(target_os = "linux")]
    #[tokio::test(flavor = "current_thread")]
    async fn a_timer_sleeps_its_whole_time_after_a_cancelled_sleep() {
        let fd = precise::TimerFd::new().expect("timerfd");
        let start = Instant::now();
        let cut = tokio::time::timeout(
            Duration::from_millis(2),
            fd.sleep_until(start + Duration::from_millis(10)),
        )
        .await;
        assert!(cut.is_err(), "the first sleep is cut short");
        // The first deadline passes while nobody waits on the timer.
        std::thread::sleep(Duration::from_millis(15));
        for ms in [30, 45] {
            let deadline = start + Duration::from_millis(ms);
            fd.sleep_until(deadline).await.expect("sleep");
            assert!(Instant::now() >= deadline, "woke before {ms} ms");
        }
        // And the slot's sleeper as a whole, reused the same way.
        let mut timer = Timer::default();
        let deadline = Instant::now() + Duration::from_millis(20);
        let _ = tokio::time::timeout(Duration::from_millis(2), timer.sleep_until(deadline)).await;
        let later = deadline + Duration::from_millis(10);
        timer.sleep_until(later).await;
        assert!(Instant::now() >= later);
    }
}
