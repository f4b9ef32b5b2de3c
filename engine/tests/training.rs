//! The trainer on a tiny configuration: determinism, checkpoints, resume,
//! and that training improves the policy.

use virl_engine::config::SessionConfig;
use virl_engine::events::{Event, NullSink};
use virl_engine::session::Session;
use virl_engine::trainer::Trainer;

/// A small, fast ZoomBench setup: 256 px canvas, 32 px views, one to two placards.
#[allow(clippy::field_reassign_with_default)]
fn tiny(iterations: u64) -> SessionConfig {
    let mut c = SessionConfig::default();
    c.seed = 3;
    c.data.zoombench.canvas = 256;
    c.data.zoombench.placards_min = 1;
    c.data.zoombench.placards_max = 2;
    c.data.zoombench.distractors = 8;
    c.data.zoombench.global_view = 32;
    c.data.train_n = 64;
    c.data.eval_n = 32;
    c.env.view = 32;
    c.env.max_rounds = 3;
    c.policy.hidden = 32;
    c.trainer.iterations = iterations;
    c.trainer.samples_per_iter = 8;
    c.trainer.group = 4;
    c.trainer.eval_every = 0;
    c.trainer.eval_n = 32;
    c
}

fn tensors_equal(
    a: &std::collections::HashMap<String, candle_core::Tensor>,
    b: &std::collections::HashMap<String, candle_core::Tensor>,
) {
    assert_eq!(a.len(), b.len());
    for (k, v) in a {
        let x = v.flatten_all().expect("flat");
        let y = b[k].flatten_all().expect("flat");
        match x.dtype() {
            candle_core::DType::U32 => assert_eq!(
                x.to_vec1::<u32>().expect("v"),
                y.to_vec1::<u32>().expect("v"),
                "{k}"
            ),
            _ => {
                let (x, y) = (
                    x.to_vec1::<f32>().expect("v"),
                    y.to_vec1::<f32>().expect("v"),
                );
                assert!(
                    x.iter().zip(&y).all(|(p, q)| p.to_bits() == q.to_bits()),
                    "{k} differs"
                );
            }
        }
    }
}

#[test]
fn deterministic_for_a_seed() {
    let mut a = Trainer::new(tiny(3), None).expect("trainer");
    let mut b = Trainer::new(tiny(3), None).expect("trainer");
    for _ in 0..3 {
        let (ma, mb) = (
            a.step(&mut NullSink).expect("step"),
            b.step(&mut NullSink).expect("step"),
        );
        assert_eq!(ma, mb);
    }
    tensors_equal(
        &a.checkpoint_tensors().expect("a"),
        &b.checkpoint_tensors().expect("b"),
    );
}

#[test]
fn checkpoint_round_trip_is_bit_exact() {
    let dir = tempfile::tempdir().expect("tempdir");
    let cfg = tiny(2);
    let session = Session::create(dir.path(), &cfg).expect("session");
    let mut t = Trainer::new(cfg.clone(), Some(session.clone())).expect("trainer");
    let mut events = Vec::new();
    t.step(&mut events).expect("step");
    t.step(&mut events).expect("step");
    assert!(
        events
            .iter()
            .any(|e| matches!(e, Event::CheckpointSaved { iteration: 2, .. }))
    );
    let (tensors, state) = session
        .checkpoints()
        .latest(&candle_core::Device::Cpu)
        .expect("read")
        .expect("a checkpoint");
    assert_eq!(state.iteration, 2);
    tensors_equal(&tensors, &t.checkpoint_tensors().expect("tensors"));
    // A fresh trainer loaded from it holds the same weights and optimizer state.
    let mut u = Trainer::new(cfg, None).expect("trainer");
    u.load(&tensors, state).expect("load");
    tensors_equal(
        &u.checkpoint_tensors().expect("tensors"),
        &t.checkpoint_tensors().expect("tensors"),
    );
    // and continues exactly as the original does
    assert_eq!(
        u.step(&mut NullSink).expect("u"),
        t.step(&mut NullSink).expect("t")
    );
}

#[test]
fn resume_continues_the_same_run() {
    let straight = {
        let mut t = Trainer::new(tiny(4), None).expect("trainer");
        (0..4)
            .map(|_| t.step(&mut NullSink).expect("step"))
            .collect::<Vec<_>>()
    };
    let dir = tempfile::tempdir().expect("tempdir");
    let cfg = tiny(2);
    let session = Session::create(dir.path(), &cfg).expect("session");
    let mut t = Trainer::new(cfg, Some(session.clone())).expect("trainer");
    t.run(&mut NullSink, &Default::default()).expect("run");
    drop(t);
    let mut r = Trainer::resume(dir.path()).expect("resume");
    assert_eq!(r.iteration(), 2);
    let mut cfg = r.config().trainer.clone();
    cfg.iterations = 4;
    r.set_trainer_config(cfg).expect("config");
    r.run(&mut NullSink, &Default::default()).expect("run");
    let metrics = session.read_metrics().expect("metrics");
    assert_eq!(metrics, straight);
    // Rollouts were written for every iteration.
    assert_eq!(session.rollout_iterations(), vec![0, 1, 2, 3]);
    let recs = session.read_rollouts(3).expect("rollouts");
    assert_eq!(recs.len(), 32);
    // Every action carries its rollout log-probability, and so does every answer.
    assert!(
        recs.iter()
            .all(|r| r.actions.iter().all(|a| a.logp.is_some())
                && r.answer.is_some() == r.answer_logp.is_some())
    );
    assert!(recs.iter().all(|r| r.iteration == 3));
}

/// Training improves the policy: greedy evaluation reward after a short
/// seeded run (imitation warm-up, then ViRL RL) beats the untrained policy's.
#[test]
fn a_short_run_improves_the_policy() {
    let mut cfg = tiny(60);
    cfg.trainer.warmup_iterations = 40;
    let mut t = Trainer::new(cfg, None).expect("trainer");
    let (before, _) = t.evaluate(32, &mut NullSink).expect("eval");
    t.run(&mut NullSink, &Default::default()).expect("run");
    let (after, _) = t.evaluate(32, &mut NullSink).expect("eval");
    eprintln!(
        "before: R {:.3} Acc_ans {:.3} Acc_rat {:?} zooms {:.2}",
        before.reward_total, before.acc_ans, before.acc_rat, before.zooms
    );
    eprintln!(
        "after:  R {:.3} Acc_ans {:.3} Acc_rat {:?} zooms {:.2}",
        after.reward_total, after.acc_ans, after.acc_rat, after.zooms
    );
    assert!(
        after.reward_total > before.reward_total + 0.2,
        "{} → {}",
        before.reward_total,
        after.reward_total
    );
}

#[test]
fn engine_thread_steps_and_applies_config_at_the_next_iteration() {
    use std::time::Duration;
    use virl_engine::engine::{Command, EngineHandle};
    let dir = tempfile::tempdir().expect("tempdir");
    let cfg = tiny(10);
    let session = Session::create(dir.path(), &cfg).expect("session");
    let t = Trainer::new(cfg.clone(), Some(session.clone())).expect("trainer");
    let engine = EngineHandle::spawn(t, None);
    let next_done = |engine: &EngineHandle| loop {
        match engine
            .events()
            .recv_timeout(Duration::from_secs(60))
            .expect("an event")
        {
            Event::IterationDone {
                metrics,
                trajectories,
                ..
            } => return (metrics, trajectories),
            Event::Error(e) => panic!("engine error: {e}"),
            _ => {}
        }
    };
    assert!(engine.send(Command::Step));
    let (m0, trajs) = next_done(&engine);
    assert_eq!(m0.iteration, 0);
    assert_eq!(trajs.len(), 32);
    // The engine pauses after a single step: nothing more arrives.
    std::thread::sleep(Duration::from_millis(200));
    assert!(
        engine
            .try_recv()
            .is_none_or(|e| !matches!(e, Event::IterationDone { .. }))
    );
    let mut reward = cfg.reward.clone();
    reward.h0 = 0.4;
    assert!(engine.send(Command::SetRewardConfig(reward)));
    assert!(engine.send(Command::Step));
    assert_eq!(next_done(&engine).0.iteration, 1);
    let events = session.read_events().expect("events");
    assert!(
        events
            .iter()
            .any(|e| e.kind == "config" && e.iteration == 1 && e.message.contains("\"h0\":0.4")),
        "{events:?}"
    );
    // a bad config is refused with an error event, and training goes on
    let mut bad = cfg.reward.clone();
    bad.h_good = 0.0;
    engine.send(Command::SetRewardConfig(bad));
    engine.send(Command::Step);
    let mut saw_error = false;
    loop {
        match engine
            .events()
            .recv_timeout(Duration::from_secs(60))
            .expect("event")
        {
            Event::Error(e) => {
                assert!(e.contains("h_good"), "{e}");
                saw_error = true;
            }
            Event::IterationDone { metrics, .. } => {
                assert_eq!(metrics.iteration, 2);
                break;
            }
            _ => {}
        }
    }
    assert!(saw_error);
    engine.shutdown();
}

/// The stop flag is checked between the rollout and the update: an
/// iteration stopped there is abandoned and leaves the trainer exactly as
/// before it, so the run continues as if it had never begun.
#[test]
fn a_stop_between_rollout_and_update_abandons_the_iteration_cleanly() {
    use std::sync::atomic::AtomicBool;
    let mut a = Trainer::new(tiny(3), None).expect("trainer");
    let mut b = Trainer::new(tiny(3), None).expect("trainer");
    let stop = AtomicBool::new(true);
    let mut events = Vec::new();
    assert!(a.step_unless(&mut events, &stop).expect("step").is_none());
    assert_eq!(a.iteration(), 0);
    assert!(a.history().is_empty());
    assert!(
        !events
            .iter()
            .any(|e| matches!(e, virl_engine::events::Event::IterationDone { .. })),
        "nothing of the abandoned iteration is reported done"
    );
    assert_eq!(
        a.step(&mut NullSink).expect("step"),
        b.step(&mut NullSink).expect("step")
    );
    assert_eq!(a.train_state(), b.train_state());
}

/// The fresh warm-up imitates newly generated samples (a batch of its own
/// per iteration, by iteration number), so a resumed run draws the same
/// ones and continues exactly; its metrics are marked as warm-up; and it is
/// refused, naming the key, where no samples can be generated.
#[test]
fn fresh_warm_up_resumes_exactly_and_needs_generated_data() {
    use virl_engine::config::WarmupData;
    let fresh = |iterations: u64| {
        let mut c = tiny(iterations);
        c.trainer.warmup_iterations = 3;
        c.trainer.warmup_data = WarmupData::Fresh;
        c
    };
    let straight = {
        let mut t = Trainer::new(fresh(4), None).expect("trainer");
        (0..4)
            .map(|_| t.step(&mut NullSink).expect("step"))
            .collect::<Vec<_>>()
    };
    assert_eq!(
        straight.iter().map(|m| m.warmup).collect::<Vec<_>>(),
        [true, true, true, false]
    );
    // Not the training-split warm-up under another name.
    let mut on_train = fresh(4);
    on_train.trainer.warmup_data = WarmupData::Train;
    let mut t = Trainer::new(on_train, None).expect("trainer");
    let first = t.step(&mut NullSink).expect("step");
    assert_ne!(first.loss, straight[0].loss);

    let dir = tempfile::tempdir().expect("tempdir");
    let session = Session::create(dir.path(), &fresh(2)).expect("session");
    let mut t = Trainer::new(fresh(2), Some(session.clone())).expect("trainer");
    t.run(&mut NullSink, &Default::default()).expect("run");
    drop(t);
    let mut r = Trainer::resume(dir.path()).expect("resume");
    let mut cfg = r.config().trainer.clone();
    cfg.iterations = 4;
    r.set_trainer_config(cfg).expect("config");
    r.run(&mut NullSink, &Default::default()).expect("run");
    assert_eq!(session.read_metrics().expect("metrics"), straight);

    let mut folder = fresh(4);
    folder.data.dataset = Some("/data/vcot".into());
    let err = folder
        .validate()
        .expect_err("a dataset folder cannot be generated");
    assert!(
        err.contains("warmup_data") && err.contains("/data/vcot"),
        "{err}"
    );
}
