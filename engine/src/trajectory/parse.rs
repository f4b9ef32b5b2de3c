//! Reading a [`Trajectory`] from JSON in every layout ViRL Studio has
//! written, with errors that name the field:
//!
//! - **current**: `actions` holds objects with `proposed` (and `executed`,
//!   `logp`, `turn`, the scores and the credit);
//! - **sessions before the one record** (`TrajectoryRecord`): top-level
//!   `proposed`, `executed`, `hit_max_rounds`, `logp` (ZoomNet: one per
//!   action, the answer last; a VLM: one per assistant turn, malformed
//!   turns included) and `turns`, with the per-action scores in `actions`;
//! - **`virl rollout` files before it**: `zooms`, `executed`, `truncated`,
//!   `turn_logp` and `turns`;
//! - **`virl score`'s minimal input**: `{"sample", "group"?, "zooms",
//!   "answer", "truncated"?, "format_errors"?}`.
//!
//! A VLM's per-turn log-probabilities are mapped to the actions through the
//! transcript: the k-th zoom is the k-th assistant turn that zoomed, whatever
//! malformed turns came before it.

use super::{Trajectory, Turn, ZoomAction};
use crate::credit::ActionCredit;
use crate::geometry::BBox;
use crate::reward::{ActionScore, Rewards};
use serde::Deserialize;
use serde_json::{Map, Value};

/// A sample or group id: a non-empty string, or a number.
pub(crate) fn id_string(v: &Value) -> Option<String> {
    match v {
        Value::String(s) if !s.is_empty() => Some(s.clone()),
        Value::Number(n) => Some(n.to_string()),
        _ => None,
    }
}

/// A box from a JSON array of four finite numbers with `x2 > x1`, `y2 > y1`.
pub fn parse_box(v: &Value) -> Result<BBox, String> {
    let a = v
        .as_array()
        .ok_or_else(|| format!("expected [x1, y1, x2, y2], found {v}"))?;
    if a.len() != 4 {
        return Err(format!("expected 4 numbers, found {}", a.len()));
    }
    let mut c = [0.0; 4];
    for (i, x) in a.iter().enumerate() {
        c[i] = x
            .as_f64()
            .filter(|f| f.is_finite())
            .ok_or_else(|| format!("coordinate {i} is {x}, not a finite number"))?;
    }
    let b = BBox::from(c);
    if b.x2 <= b.x1 || b.y2 <= b.y1 {
        return Err(format!(
            "degenerate box {c:?} (x2 must be > x1 and y2 > y1)"
        ));
    }
    Ok(b)
}

fn is_absent(v: Option<&Value>) -> bool {
    matches!(v, None | Some(Value::Null))
}

fn boxes(o: &Map<String, Value>, key: &str) -> Result<Option<Vec<BBox>>, String> {
    match o.get(key) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::Array(a)) => a
            .iter()
            .enumerate()
            .map(|(i, b)| parse_box(b).map_err(|e| format!("{key}[{i}]: {e}")))
            .collect::<Result<_, _>>()
            .map(Some),
        Some(o) => Err(format!("`{key}` must be an array of boxes, found {o}")),
    }
}

fn f32s(o: &Map<String, Value>, key: &str) -> Result<Vec<f32>, String> {
    match o.get(key) {
        None | Some(Value::Null) => Ok(Vec::new()),
        Some(Value::Array(a)) => a
            .iter()
            .enumerate()
            .map(|(i, x)| {
                x.as_f64()
                    .map(|f| f as f32)
                    .ok_or_else(|| format!("{key}[{i}] is {x}, not a number"))
            })
            .collect(),
        Some(o) => Err(format!("`{key}` must be an array of numbers, found {o}")),
    }
}

fn number(o: &Map<String, Value>, key: &str) -> Result<Option<f64>, String> {
    match o.get(key) {
        None | Some(Value::Null) => Ok(None),
        Some(x) => x
            .as_f64()
            .map(Some)
            .ok_or_else(|| format!("`{key}` must be a number, found {x}")),
    }
}

fn typed<T: serde::de::DeserializeOwned>(
    o: &Map<String, Value>,
    key: &str,
) -> Result<Option<T>, String> {
    match o.get(key) {
        None | Some(Value::Null) => Ok(None),
        Some(x) => T::deserialize(x)
            .map(Some)
            .map_err(|e| format!("`{key}`: {e}")),
    }
}

/// The scores and credit of one action object, if it carries them.
fn scored(o: &Value, i: usize) -> Result<(ActionScore, ActionCredit), String> {
    let has = |k: &str| o.get(k).is_some();
    let score = if has("fidelity") {
        ActionScore::deserialize(o).map_err(|e| format!("actions[{i}]: {e}"))?
    } else {
        ActionScore::default()
    };
    let credit = if has("modulator") {
        ActionCredit::deserialize(o).map_err(|e| format!("actions[{i}]: {e}"))?
    } else {
        ActionCredit::neutral()
    };
    Ok((score, credit))
}

pub(super) fn from_value(v: Value) -> Result<Trajectory, String> {
    let Value::Object(o) = v else {
        return Err("not a JSON object".into());
    };
    let sample = o
        .get("sample")
        .and_then(id_string)
        .ok_or("no sample id under key `sample`")?;
    let group = match o.get("group") {
        None | Some(Value::Null) => sample.clone(),
        Some(g) => id_string(g).ok_or("`group` must be a non-empty string or a number")?,
    };
    let iteration = match o.get("iteration") {
        None | Some(Value::Null) => 0,
        Some(x) => x
            .as_u64()
            .ok_or_else(|| format!("`iteration` must be a whole number, found {x}"))?,
    };
    let answer = match o.get("answer") {
        None | Some(Value::Null) => None,
        Some(Value::String(s)) => Some(s.clone()),
        Some(Value::Number(n)) => Some(n.to_string()),
        Some(x) => return Err(format!("`answer` must be a string, found {x}")),
    };
    let truth = match o.get("truth") {
        None | Some(Value::Null) => String::new(),
        Some(x) => id_string(x).unwrap_or_default(),
    };
    let flag = |k: &str| -> Result<bool, String> {
        match o.get(k) {
            None | Some(Value::Null) => Ok(false),
            Some(x) => x
                .as_bool()
                .ok_or_else(|| format!("`{k}` must be true or false, found {x}")),
        }
    };
    let truncated = flag("truncated")? || flag("hit_max_rounds")?;
    let mut format_errors = match o.get("format_errors") {
        None | Some(Value::Null) => Vec::new(),
        Some(Value::Array(a)) => a
            .iter()
            .map(|e| {
                e.as_str()
                    .map(str::to_string)
                    .unwrap_or_else(|| e.to_string())
            })
            .collect(),
        Some(x) => {
            return Err(format!(
                "`format_errors` must be an array of strings, found {x}"
            ));
        }
    };
    let mut transcript: Vec<Turn> = match typed(&o, "transcript")? {
        Some(t) => t,
        None => typed(&o, "turns")?.unwrap_or_default(),
    };
    let rewards: Rewards = typed(&o, "rewards")?.unwrap_or_default();
    if format_errors.is_empty() && rewards.fmt < 0.0 && o.get("format_errors").is_none() {
        // A session record from before format errors were stored: its
        // R_fmt = −1 is the only trace of them, and re-scoring must keep it.
        format_errors.push("a format error (the record predates stored format errors)".into());
    }
    let coverage = number(&o, "coverage")?;
    let advantage = number(&o, "advantage")?.unwrap_or(0.0);
    let gt_best_iou = match o.get("gt_best_iou") {
        None | Some(Value::Null) => Vec::new(),
        Some(_) => typed::<Vec<f64>>(&o, "gt_best_iou")?.unwrap_or_default(),
    };
    let image = match o.get("image") {
        None | Some(Value::Null) => None,
        Some(Value::String(s)) => Some(s.clone()),
        Some(x) => return Err(format!("`image` must be a path string, found {x}")),
    };
    let gt_version = match o.get("gt_version") {
        None | Some(Value::Null) => None,
        Some(x) => Some(
            x.as_u64()
                .ok_or_else(|| format!("`gt_version` must be a whole number, found {x}"))?,
        ),
    };
    let no_actions = Vec::new();
    let actions_v: &Vec<Value> = match o.get("actions") {
        None | Some(Value::Null) => &no_actions,
        Some(Value::Array(a)) => a,
        Some(x) => return Err(format!("`actions` must be an array, found {x}")),
    };
    let current = actions_v
        .first()
        .is_some_and(|a| a.get("proposed").is_some())
        || (actions_v.is_empty() && is_absent(o.get("proposed")) && is_absent(o.get("zooms")));
    let mut answer_logp = number(&o, "answer_logp")?.map(|x| x as f32);
    let actions = if current {
        actions_v
            .iter()
            .enumerate()
            .map(|(i, a)| {
                let Value::Object(ao) = a else {
                    return Err(format!("actions[{i}] is not a JSON object"));
                };
                let proposed = parse_box(ao.get("proposed").unwrap_or(&Value::Null))
                    .map_err(|e| format!("actions[{i}].proposed: {e}"))?;
                let executed = match ao.get("executed") {
                    None | Some(Value::Null) => proposed,
                    Some(b) => parse_box(b).map_err(|e| format!("actions[{i}].executed: {e}"))?,
                };
                let logp = number(ao, "logp")
                    .map_err(|e| format!("actions[{i}]: {e}"))?
                    .map(|x| x as f32);
                let turn = match ao.get("turn") {
                    None | Some(Value::Null) => None,
                    Some(x) => Some(x.as_u64().ok_or_else(|| {
                        format!("actions[{i}].turn must be a whole number, found {x}")
                    })? as usize),
                };
                let (score, credit) = scored(a, i)?;
                Ok(ZoomAction {
                    proposed,
                    executed,
                    logp,
                    turn,
                    score,
                    credit,
                })
            })
            .collect::<Result<Vec<_>, String>>()?
    } else {
        let proposed = match boxes(&o, "proposed")? {
            Some(p) => p,
            None => boxes(&o, "zooms")?.unwrap_or_default(),
        };
        let executed = boxes(&o, "executed")?.unwrap_or_else(|| proposed.clone());
        if executed.len() != proposed.len() {
            return Err(format!(
                "{} executed boxes for {} proposed",
                executed.len(),
                proposed.len()
            ));
        }
        let mut logp = f32s(&o, "logp")?;
        if logp.is_empty() {
            logp = f32s(&o, "turn_logp")?;
        }
        // Which logp belongs to which zoom.
        let mut turn_of: Vec<Option<usize>> = vec![None; proposed.len()];
        let mut logp_of: Vec<Option<f32>> = vec![None; proposed.len()];
        if transcript.iter().any(|t| t.role == "assistant") {
            // A VLM: one logp per assistant turn, malformed turns included.
            let mut k = 0;
            let mut last_answer_turn = None;
            for (a, (ti, t)) in transcript
                .iter_mut()
                .enumerate()
                .filter(|(_, t)| t.role == "assistant")
                .enumerate()
            {
                let lp = logp.get(a).copied();
                if t.logp.is_none() {
                    t.logp = lp;
                }
                if t.zoom.is_some() && k < proposed.len() {
                    turn_of[k] = Some(ti);
                    logp_of[k] = t.logp;
                    k += 1;
                } else if t.zoom.is_none() && t.error.is_none() {
                    last_answer_turn = Some(t.logp);
                }
            }
            if answer_logp.is_none() && answer.is_some() {
                answer_logp = last_answer_turn.flatten();
            }
        } else {
            // ZoomNet: one per action, the answer last.
            for (k, l) in logp_of.iter_mut().enumerate() {
                *l = logp.get(k).copied();
            }
            if answer_logp.is_none() && answer.is_some() {
                answer_logp = logp.get(proposed.len()).copied();
            }
        }
        let mut actions = Vec::with_capacity(proposed.len());
        for (k, (p, e)) in proposed.into_iter().zip(executed).enumerate() {
            let (score, credit) = match actions_v.get(k) {
                Some(a) => scored(a, k)?,
                None => (ActionScore::default(), ActionCredit::neutral()),
            };
            actions.push(ZoomAction {
                proposed: p,
                executed: e,
                logp: logp_of[k],
                turn: turn_of[k],
                score,
                credit,
            });
        }
        actions
    };
    Ok(Trajectory {
        sample,
        group,
        iteration,
        truth,
        answer,
        answer_logp,
        actions,
        format_errors,
        truncated,
        transcript,
        rewards,
        coverage,
        advantage,
        gt_best_iou,
        image,
        gt_version,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn read(s: &str) -> Result<Trajectory, String> {
        from_value(serde_json::from_str(s).expect("json"))
    }

    #[test]
    fn the_minimal_score_input_reads() {
        let t = read(r#"{"sample": 3, "zooms": [[1, 2, 3, 4]], "answer": 7}"#).expect("read");
        assert_eq!((t.sample.as_str(), t.group.as_str()), ("3", "3"));
        assert_eq!(t.answer.as_deref(), Some("7"));
        assert_eq!(t.actions.len(), 1);
        assert_eq!(t.actions[0].executed, BBox::new(1.0, 2.0, 3.0, 4.0));
        assert_eq!(t.actions[0].credit.modulator, 1.0);
    }

    #[test]
    fn bad_values_name_their_field() {
        let cases = [
            (r#"{"zooms": []}"#, "no sample id"),
            (
                r#"{"sample": "a", "zooms": [[1, 2, 3]]}"#,
                "zooms[0]: expected 4",
            ),
            (r#"{"sample": "a", "zooms": 5}"#, "`zooms` must be an array"),
            (
                r#"{"sample": "a", "answer": [1]}"#,
                "`answer` must be a string",
            ),
            (r#"{"sample": "a", "truncated": "yes"}"#, "`truncated`"),
            (
                r#"{"sample": "a", "actions": [{"proposed": [0, 0, 1, "x"]}]}"#,
                "actions[0].proposed: coordinate 3",
            ),
            (r#"{"sample": "a", "format_errors": 3}"#, "`format_errors`"),
            (r#"{"sample": "a", "iteration": -1}"#, "`iteration`"),
            (r#"[1]"#, "not a JSON object"),
        ];
        for (s, want) in cases {
            let e = read(s).expect_err(s);
            assert!(e.contains(want), "{s}: {e:?} lacks {want:?}");
        }
    }

    #[test]
    fn a_vlm_turn_logp_goes_to_the_turn_that_zoomed() {
        // An old session line: a malformed turn (logp −9) comes before the zoom (−1).
        let t = read(
            r#"{"sample": "a", "iteration": 0, "truth": "7", "answer": "7",
                "proposed": [[0, 0, 10, 10]], "executed": [[0, 0, 10, 10]],
                "hit_max_rounds": false, "logp": [-9.0, -1.0, -0.5],
                "turns": [{"role": "system", "text": "s"}, {"role": "user", "text": "q"},
                          {"role": "assistant", "text": "??", "error": "bad"},
                          {"role": "tool", "text": "Error"},
                          {"role": "assistant", "text": "z", "zoom": [0, 0, 10, 10]},
                          {"role": "tool", "text": "crop"},
                          {"role": "assistant", "text": "<answer>7</answer>"}],
                "group": "a", "rewards": {"ans": 1.0, "rat": 0.0, "fmt": -1.0, "total": 0.8},
                "coverage": null, "advantage": 0.0, "actions": [{"bbox": [0, 0, 10, 10],
                "iou": null, "gt": null, "sigma": null, "beta": null, "redundant": false,
                "fidelity": 0.0, "quality": 0.0, "modulator": 1.0, "advantage": 0.0}]}"#,
        )
        .expect("read");
        assert_eq!(t.actions[0].logp, Some(-1.0));
        assert_eq!(t.actions[0].turn, Some(4));
        assert_eq!(t.answer_logp, Some(-0.5));
        assert_eq!(t.transcript[2].logp, Some(-9.0));
        assert_eq!(t.rewards.fmt, -1.0);
    }

    #[test]
    fn a_zoomnet_logp_list_ends_with_the_answer() {
        let t = read(
            r#"{"sample": "a", "proposed": [[0, 0, 10, 10], [1, 1, 9, 9]], "executed": [[0, 0, 10, 10], [1, 1, 9, 9]],
                "hit_max_rounds": false, "logp": [-1.0, -2.0, -0.1], "answer": "3"}"#,
        )
        .expect("read");
        let lp: Vec<_> = t.actions.iter().map(|a| a.logp).collect();
        assert_eq!(lp, [Some(-1.0), Some(-2.0)]);
        assert_eq!(t.answer_logp, Some(-0.1));
    }
}
