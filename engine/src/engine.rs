//! The trainer on its own thread, behind an [`EngineHandle`]: commands in,
//! events out, over bounded crossbeam channels (STYLE.md, rerun). The caller
//! never blocks on the engine: it sends commands with `try_send`-like
//! semantics and drains events with `try_recv`.

use crate::config::TrainerConfig;
use crate::events::{Event, EventSink};
use crate::reward::RewardConfig;
use crate::trainer::Trainer;
use crossbeam_channel::{Receiver, Sender, TrySendError, bounded};
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::thread::JoinHandle;

/// What the front end can ask.
#[derive(Clone, Debug)]
pub enum Command {
    /// Start (or continue) training until the configured iterations are done.
    Start,
    /// Pause after the current iteration.
    Pause,
    /// Resume after a pause.
    Resume,
    /// Run exactly one iteration, then pause.
    Step,
    /// Stop after the current iteration and end the engine thread.
    Stop,
    /// Use this reward config from the next iteration on.
    SetRewardConfig(RewardConfig),
    /// Use this trainer config from the next iteration on.
    SetTrainerConfig(TrainerConfig),
    /// Write a checkpoint now (between iterations).
    SaveCheckpoint,
    /// Use corrected ground-truth boxes for a sample from the next iteration
    /// on (the studio's annotation editor sends it; the journal is written
    /// by the editor).
    SetGroundTruth {
        /// The sample id.
        sample: String,
        /// Its rationales after the correction.
        rationales: Vec<crate::dataset::Rationale>,
    },
}

/// Forwards events into a bounded channel; if the front end has gone away
/// the events are dropped (training goes on, the session still records it).
struct ChannelSink {
    tx: Sender<Event>,
    wake: Option<Arc<dyn Fn() + Send + Sync>>,
}

impl EventSink for ChannelSink {
    fn emit(&mut self, e: Event) {
        // Progress events may be dropped when the channel is full; the others wait.
        let progress = matches!(e, Event::Progress { .. });
        let sent = if progress {
            !matches!(self.tx.try_send(e), Err(TrySendError::Disconnected(_)))
        } else {
            self.tx.send(e).is_ok()
        };
        if sent && let Some(w) = &self.wake {
            w();
        }
    }
}

/// A running engine.
pub struct EngineHandle {
    commands: Sender<Command>,
    events: Receiver<Event>,
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
}

impl EngineHandle {
    /// Moves `trainer` to a new thread. `wake` is called after each event
    /// (the GUI passes `ctx.request_repaint`). The engine waits for `Start`
    /// or `Step`.
    pub fn spawn(trainer: Trainer, wake: Option<Arc<dyn Fn() + Send + Sync>>) -> Self {
        let (ctx, crx) = bounded::<Command>(64);
        let (etx, erx) = bounded::<Event>(256);
        let stop = Arc::new(AtomicBool::new(false));
        let stop2 = stop.clone();
        let thread = std::thread::Builder::new()
            .name("virl-engine".into())
            .spawn(move || {
                let mut sink = ChannelSink { tx: etx, wake };
                let result = catch_unwind(AssertUnwindSafe(|| {
                    engine_loop(trainer, crx, &mut sink, &stop2)
                }));
                if let Err(p) = result {
                    let msg = p
                        .downcast_ref::<String>()
                        .cloned()
                        .or_else(|| p.downcast_ref::<&str>().map(|s| s.to_string()))
                        .unwrap_or_else(|| "unknown panic".into());
                    sink.emit(Event::Error(format!("the engine panicked: {msg}")));
                }
            })
            .ok();
        Self {
            commands: ctx,
            events: erx,
            stop,
            thread,
        }
    }

    /// Sends a command (never blocks; a full queue drops it and returns false).
    pub fn send(&self, c: Command) -> bool {
        if matches!(c, Command::Stop) {
            self.stop.store(true, Ordering::Relaxed);
        }
        self.commands.try_send(c).is_ok()
    }

    /// The next event, if one is waiting.
    pub fn try_recv(&self) -> Option<Event> {
        self.events.try_recv().ok()
    }

    /// The event receiver (for blocking waits in tests and headless use).
    pub fn events(&self) -> &Receiver<Event> {
        &self.events
    }

    /// Stops the engine and waits for its thread.
    pub fn shutdown(mut self) {
        self.send(Command::Stop);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

#[derive(PartialEq)]
enum State {
    Idle,
    Running,
    StepOnce,
}

fn applied(t: &Trainer) -> Event {
    Event::ConfigApplied {
        from_iteration: t.iteration(),
        reward: t.config().reward.clone(),
        trainer: t.config().trainer.clone(),
    }
}

fn engine_loop(
    mut t: Trainer,
    commands: Receiver<Command>,
    sink: &mut ChannelSink,
    stop: &AtomicBool,
) {
    let mut state = State::Idle;
    loop {
        // Apply every waiting command; block only when there is nothing to do.
        let mut next = if state == State::Idle {
            commands.recv().ok()
        } else {
            commands.try_recv().ok()
        };
        if next.is_none() && state == State::Idle {
            return; // the handle was dropped
        }
        while let Some(c) = next.take() {
            match c {
                Command::Start | Command::Resume => state = State::Running,
                Command::Pause => state = State::Idle,
                Command::Step => state = State::StepOnce,
                Command::Stop => {
                    sink.emit(Event::Finished {
                        iterations: t.iteration(),
                        stopped: true,
                    });
                    return;
                }
                Command::SetRewardConfig(r) => match t.set_reward_config(r) {
                    Ok(()) => sink.emit(applied(&t)),
                    Err(e) => sink.emit(Event::Error(format!("reward config refused: {e}"))),
                },
                Command::SetTrainerConfig(c) => match t.set_trainer_config(c) {
                    Ok(()) => sink.emit(applied(&t)),
                    Err(e) => sink.emit(Event::Error(format!("trainer config refused: {e}"))),
                },
                Command::SetGroundTruth { sample, rationales } => {
                    if let Err(e) = t.set_ground_truth(&sample, rationales) {
                        sink.emit(Event::Error(format!("ground truth refused: {e}")));
                    }
                }
                Command::SaveCheckpoint => {
                    if let Err(e) = t.save_checkpoint(sink) {
                        sink.emit(Event::Error(e));
                    }
                }
            }
            next = commands.try_recv().ok();
        }
        if stop.load(Ordering::Relaxed) {
            sink.emit(Event::Finished {
                iterations: t.iteration(),
                stopped: true,
            });
            return;
        }
        if state == State::Idle {
            continue;
        }
        if t.iteration() >= t.config().trainer.iterations {
            sink.emit(Event::Finished {
                iterations: t.iteration(),
                stopped: false,
            });
            state = State::Idle;
            continue;
        }
        match t.step_unless(sink, stop) {
            Err(e) => {
                sink.emit(Event::Error(e));
                state = State::Idle;
            }
            // Stopped between the rollout and the update: the iteration is abandoned.
            Ok(None) => {
                sink.emit(Event::Finished {
                    iterations: t.iteration(),
                    stopped: true,
                });
                return;
            }
            Ok(Some(_)) if state == State::StepOnce => state = State::Idle,
            Ok(Some(_)) => {}
        }
    }
}
