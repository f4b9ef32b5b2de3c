//! ZoomNet as a [`Policy`]: its parameters and checkpoints, encoding the
//! global views, acting (Gumbel-max sampling or greedy), decoding and
//! encoding boxes, and re-evaluating log-probabilities for the update.

use super::*;

impl Policy for ZoomNet {
    fn named_vars(&self) -> Vec<(String, Var)> {
        let mut v: Vec<(String, Var)> = match self.varmap.data().lock() {
            Ok(d) => d.iter().map(|(k, v)| (k.clone(), v.clone())).collect(),
            Err(_) => Vec::new(),
        };
        v.sort_by(|a, b| a.0.cmp(&b.0));
        v
    }

    fn tensors(&self) -> Result<HashMap<String, Tensor>> {
        self.named_vars()
            .into_iter()
            .map(|(k, v)| Ok((k, v.as_tensor().copy()?)))
            .collect()
    }

    fn load_tensors(&self, t: &HashMap<String, Tensor>) -> Result<()> {
        for (k, v) in self.named_vars() {
            let src = t.get(&k).ok_or_else(|| {
                candle_core::Error::Msg(format!("checkpoint lacks parameter {k}"))
            })?;
            if src.dims() != v.dims() {
                return Err(candle_core::Error::Msg(format!(
                    "parameter {k} has shape {:?} in the checkpoint but {:?} in this ZoomNet",
                    src.dims(),
                    v.dims()
                )));
            }
            v.set(&src.to_device(&self.device)?)?;
        }
        Ok(())
    }

    fn answers(&self) -> &[String] {
        &self.answers
    }

    fn answer_class(&self, a: &str) -> Option<usize> {
        self.answer_index.get(a).copied()
    }

    fn device(&self) -> &Device {
        &self.device
    }

    fn encode_globals(&self, globals: &[u8], n: usize) -> Result<Tensor> {
        // The raw neighbourhood rides along for the offset and size heads:
        // where inside its cell a placard lies shows only in how its colour
        // spreads over the neighbouring pixels.
        self.context(globals, n)
    }

    #[allow(clippy::too_many_arguments)]
    fn act(
        &self,
        batch: &EpisodeBatch,
        keys: &Tensor,
        of_episode: &[usize],
        questions: &[Vec<f32>],
        sizes: &[(f64, f64)],
        active: &[usize],
        mut rng: Option<&mut SplitMix64>,
    ) -> Result<Vec<(Action, Choice, f32)>> {
        let n = active.len();
        if n == 0 {
            return Ok(Vec::new());
        }
        let qd = self.cfg.question_dim;
        let mut q = Vec::with_capacity(n * qd);
        let mut crops = Vec::with_capacity(n * batch.crop_of(0).len());
        let mut prevs = Vec::with_capacity(crops.capacity());
        let mut steps = Vec::with_capacity(n);
        for &i in active {
            q.extend_from_slice(&questions[i]);
            crops.extend_from_slice(batch.crop_of(i));
            prevs.extend_from_slice(batch.prev_crop_of(i));
            steps.push(batch.episodes[i].actions.len());
        }
        let group: Vec<usize> = active.iter().map(|&i| of_episode[i]).collect();
        let state = self.trunk(&q, &crops, &prevs, &steps)?;
        let t = &state.t;
        let mut pick = |logits: &Tensor| -> Result<Tensor> {
            match rng.as_deref_mut() {
                Some(r) => {
                    let (rows, cols) = logits.dims2()?;
                    let g: Vec<f32> = (0..rows * cols)
                        .map(|_| {
                            let u = r.f64().clamp(1e-12, 1.0 - 1e-12);
                            -(-(u.ln())).ln() as f32
                        })
                        .collect();
                    (logits + Tensor::from_vec(g, (rows, cols), &self.device)?)?.argmax(1)
                }
                None => logits.argmax(1),
            }
        };
        let kind_l = self.kind.forward(t)?;
        let ans_l = self.answer.forward(&state.reader)?;
        let loc_l = self.loc_logits(keys, &group, &state.query)?;
        let kind = pick(&kind_l)?;
        let ans = pick(&ans_l)?;
        let cell = pick(&loc_l)?;
        let f = self.fine_state(&self.chosen_context(keys, &group, &cell)?, t)?;
        let off_l = self.offset.forward(&f)?;
        let size_l = self.size.forward(&f)?;
        let off = pick(&off_l)?;
        let size = pick(&size_l)?;
        let lp = self.joint_logp(
            &kind_l, &ans_l, &loc_l, &off_l, &size_l, &kind, &ans, &cell, &off, &size,
        )?;
        // The only device → host copies: the chosen indices and their log-probs.
        let (kind, ans, cell, off, size) = (
            kind.to_vec1::<u32>()?,
            ans.to_vec1::<u32>()?,
            cell.to_vec1::<u32>()?,
            off.to_vec1::<u32>()?,
            size.to_vec1::<u32>()?,
        );
        let lp = lp.to_vec1::<f32>()?;
        Ok((0..n)
            .map(|j| {
                let choice = Choice {
                    kind: kind[j],
                    answer: ans[j],
                    cell: cell[j],
                    offset: off[j],
                    size: size[j],
                };
                let (w, h) = sizes[batch.samples[active[j]]];
                (self.decode(&choice, w, h), choice, lp[j])
            })
            .collect())
    }

    fn decode(&self, c: &Choice, w: f64, h: f64) -> Action {
        if c.kind == 1 {
            return Action::Answer(
                self.answers
                    .get(c.answer as usize)
                    .cloned()
                    .unwrap_or_default(),
            );
        }
        Action::Zoom(self.zoom_box(c, w, h))
    }

    fn encode_box(&self, b: &BBox, w: f64, h: f64) -> Choice {
        let v = self.global as f64;
        let (cx, cy) = b.center();
        // In thirds of a cell: u − ½ = col + d/3 with d ∈ {−1, 0, 1}.
        let thirds = |c: f64, len: f64| ((c / len * v - 0.5) * 3.0).round();
        let split = |t: f64| {
            let cell = (t / 3.0).round().clamp(0.0, v - 1.0);
            let d = (t - 3.0 * cell).clamp(-1.0, 1.0) + 1.0;
            (cell, d)
        };
        let (col, dx) = split(thirds(cx, w));
        let (row, dy) = split(thirds(cy, h));
        let side = b.width().max(b.height());
        let size = (0..self.cfg.sizes)
            .min_by(|&a, &c| {
                let da = (self.size_side(a, w, h) / side).ln().abs();
                let dc = (self.size_side(c, w, h) / side).ln().abs();
                da.total_cmp(&dc)
            })
            .unwrap_or(0);
        Choice {
            kind: 0,
            answer: 0,
            cell: (row as u32) * self.global as u32 + col as u32,
            offset: (dy as u32) * 3 + dx as u32,
            size: size as u32,
        }
    }

    fn evaluate(
        &self,
        globals: &[u8],
        episodes: usize,
        steps: &[StepObs],
    ) -> Result<(Tensor, Tensor)> {
        let n = steps.len();
        // Keys and chosen cells apart: through the context `act` gets, the
        // backward pass would copy every pixel's gradient through a
        // concatenation, a narrow and a gather, which at a 128 px global
        // view was most of an imitation step.
        let chosen: Vec<(usize, usize)> = steps
            .iter()
            .map(|s| (s.episode, s.choice.cell as usize))
            .collect();
        let (keys, chosen) = self.update_keys(globals, episodes, &chosen)?;
        let group: Vec<usize> = steps.iter().map(|s| s.episode).collect();
        let mut q = Vec::with_capacity(n * self.cfg.question_dim);
        let mut crops = Vec::new();
        let mut prevs = Vec::new();
        let mut st = Vec::with_capacity(n);
        for s in steps {
            q.extend_from_slice(s.question);
            crops.extend_from_slice(s.crop);
            prevs.extend_from_slice(s.prev_crop);
            st.push(s.step);
        }
        let state = self.trunk(&q, &crops, &prevs, &st)?;
        let t = &state.t;
        let u = |f: fn(&Choice) -> u32| {
            Tensor::from_vec(
                steps.iter().map(|s| f(&s.choice)).collect::<Vec<u32>>(),
                n,
                &self.device,
            )
        };
        let (kind, ans, cell, off, size) = (
            u(|c| c.kind)?,
            u(|c| c.answer)?,
            u(|c| c.cell)?,
            u(|c| c.offset)?,
            u(|c| c.size)?,
        );
        let kind_l = self.kind.forward(t)?;
        let ans_l = self.answer.forward(&state.reader)?;
        let loc_l = self.loc_logits(&keys, &group, &state.query)?;
        let f = self.fine_state(&chosen, t)?;
        let off_l = self.offset.forward(&f)?;
        let size_l = self.size.forward(&f)?;
        let lp = self.joint_logp(
            &kind_l, &ans_l, &loc_l, &off_l, &size_l, &kind, &ans, &cell, &off, &size,
        )?;
        let ent = |l: &Tensor| -> Result<Tensor> {
            let ls = candle_nn::ops::log_softmax(l, D::Minus1)?;
            (ls.exp()? * &ls)?.sum(1)?.neg()
        };
        let pk = candle_nn::ops::softmax(&kind_l, D::Minus1)?;
        let (p_zoom, p_ans) = (
            pk.narrow(1, 0, 1)?.squeeze(1)?,
            pk.narrow(1, 1, 1)?.squeeze(1)?,
        );
        let h_zoom = ((ent(&loc_l)? + ent(&off_l)?)? + ent(&size_l)?)?;
        let entropy = ((ent(&kind_l)? + (p_ans * ent(&ans_l)?)?)? + (p_zoom * h_zoom)?)?;
        Ok((lp, entropy))
    }
}
