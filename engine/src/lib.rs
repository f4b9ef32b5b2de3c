//! # virl-engine
//!
//! Everything of ViRL Studio but pixels on screen: box geometry, datasets and
//! the ZoomBench generator, the ViRL rewards and bi-level credit assignment,
//! training metrics and failure signatures, and the scoring of rollouts
//! produced elsewhere. No UI dependency (DESIGN §1).
//!
//! One record runs through all of it: [`trajectory::Trajectory`], produced
//! by the environment and the VLM driver, scored by [`score`], stored by
//! [`session`] and shown by the studio.
//!
//! The formulas are those of `DESIGN.md` §4–6; each function's doc comment
//! states the one it implements, and every constant lives in
//! [`reward::RewardConfig`] or [`metrics::DetectorConfig`].

#![warn(missing_docs)]

pub mod audit;
pub mod checkpoint;
pub mod config;
pub mod credit;
pub mod dataset;
pub mod dialect;
pub mod engine;
pub mod env;
pub mod events;
pub mod filter;
pub mod fsutil;
pub mod geometry;
pub mod metrics;
pub mod optim;
pub mod policy;
pub mod reward;
pub mod rng;
pub mod score;
pub mod session;
pub mod suspect;
pub mod trace;
pub mod trainer;
pub mod trajectory;
pub mod vlm;
