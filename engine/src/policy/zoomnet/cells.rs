//! Where to look: the per-pixel keys of the global view (a two-layer MLP
//! over each pixel's raw 3×3 neighbourhood), the cell logits a step's
//! query makes over them, and the chosen cell's context for the offset and
//! size heads.

use super::activation::{Activate, Activation};
use super::inputs::{neighbourhood, unfold3x3};
use super::{RAW, ZoomNet};
use candle_core::{Result, Tensor};
use candle_nn::Module;

impl ZoomNet {
    /// Cell logits `[rows, N]`: row `r` attends over the keys of sample
    /// `group[r]` (`keys` is `[U, N, P]`, one entry per distinct sample).
    /// The rows are packed per sample into `[U, R, P]` (R = most rows of one
    /// sample, padding unused) and multiplied with the keys in one batched
    /// matmul, so neither the forward nor the backward pass copies the keys
    /// per row or per sample.
    pub(super) fn loc_logits(
        &self,
        keys: &Tensor,
        group: &[usize],
        query: &Tensor,
    ) -> Result<Tensor> {
        let q = query.affine(1.0 / (self.cfg.pixel_dim as f64).sqrt(), 0.0)?;
        let keys = keys.narrow(2, 0, self.cfg.pixel_dim)?;
        // The CPU matmul takes the narrowed keys' row stride as it is (no
        // copy); cuBLAS through candle wants the rows packed ("matmul is
        // only supported for contiguous tensors", seen on an H200).
        let keys = if keys.device().is_cpu() {
            keys
        } else {
            keys.contiguous()?
        };
        let (u_count, n, _) = keys.dims3()?;
        let mut slot = vec![0usize; group.len()];
        let mut count = vec![0usize; u_count];
        for (r, &u) in group.iter().enumerate() {
            slot[r] = count[u];
            count[u] += 1;
        }
        let r_max = count.iter().copied().max().unwrap_or(0).max(1);
        // packed[u·R + j] = the j-th row of sample u (row 0 for padding).
        let mut packed = vec![0u32; u_count * r_max];
        for (r, &u) in group.iter().enumerate() {
            packed[u * r_max + slot[r]] = r as u32;
        }
        let p = q.dim(1)?;
        let qp = q
            .index_select(&Tensor::from_vec(packed, u_count * r_max, &self.device)?, 0)?
            .reshape((u_count, r_max, p))?;
        // [U, N, P] × [U, P, R] → [U, N, R], then turned to [U, R, N]: the
        // keys' gradient `[U, N, R] × [U, R, P]` comes out in the keys'
        // own layout, and only the small product is transposed.
        let all = keys
            .matmul(&qp.transpose(1, 2)?)?
            .transpose(1, 2)?
            .contiguous()?
            .reshape((u_count * r_max, n))?;
        let pick: Vec<u32> = group
            .iter()
            .enumerate()
            .map(|(r, &u)| (u * r_max + slot[r]) as u32)
            .collect();
        all.index_select(&Tensor::from_vec(pick, group.len(), &self.device)?, 0)
    }

    /// The hidden layer `[n·N, P]` of the per-pixel MLP of `n` global
    /// views (`N = global²` pixels), and their raw 3×3 neighbourhoods with a
    /// ones column `[n·N, 28]` (pix1's bias rides in its matrix product).
    /// Two-dimensional, so that no reshape of every pixel's activations
    /// enters the graph.
    pub(super) fn pixel_hidden(&self, globals: &[u8], n: usize) -> Result<(Tensor, Tensor)> {
        let v = self.global;
        let x = Tensor::from_vec(
            unfold3x3(globals, n, v, RAW + 1),
            (n * v * v, RAW + 1),
            &self.device,
        )?;
        Ok((self.pix1.forward_ones_column(&x)?.act(Activation::Relu)?, x))
    }

    /// The cell keys with their raw neighbourhoods `[n, N, P + 27]`: the
    /// context of [`Policy::act`].
    pub(super) fn context(&self, globals: &[u8], n: usize) -> Result<Tensor> {
        let (h, x) = self.pixel_hidden(globals, n)?;
        Tensor::cat(&[&self.pix2.forward(&h)?, &x.narrow(1, 0, RAW)?], 1)?.reshape((
            n,
            self.global * self.global,
            (),
        ))
    }

    /// For the update: the keys `[n, N, P]` without pix2's bias (a constant
    /// shift of every key adds the same to each cell's logit, so the cell
    /// softmax is blind to it), and the key and raw neighbourhood `[rows,
    /// P + 27]` of each step's chosen cell, recomputed from its 27 raw values
    /// (the same numbers a gather from the full keys gives) so that the
    /// backward pass scatters nothing into a gradient of every pixel. Each
    /// step is `(global view, cell)`.
    pub(super) fn update_keys(
        &self,
        globals: &[u8],
        n: usize,
        chosen: &[(usize, usize)],
    ) -> Result<(Tensor, Tensor)> {
        let v = self.global;
        let (h, _) = self.pixel_hidden(globals, n)?;
        let keys = self
            .pix2
            .forward_no_bias(&h)?
            .reshape((n, v * v, self.cfg.pixel_dim))?;
        let mut raw = vec![0f32; chosen.len() * RAW];
        for (r, &(e, cell)) in chosen.iter().enumerate() {
            let img = &globals[e * v * v * 3..(e + 1) * v * v * 3];
            neighbourhood(
                img,
                v,
                cell.min(v * v - 1),
                &mut raw[r * RAW..(r + 1) * RAW],
            );
        }
        let raw = Tensor::from_vec(raw, (chosen.len(), RAW), &self.device)?;
        let k = self
            .pix2
            .forward(&self.pix1.forward(&raw)?.act(Activation::Relu)?)?;
        Ok((keys, Tensor::cat(&[&k, &raw], 1)?))
    }

    /// The context row `[rows, P + 27]` of each row's chosen cell.
    pub(super) fn chosen_context(
        &self,
        context: &Tensor,
        group: &[usize],
        cells: &Tensor,
    ) -> Result<Tensor> {
        let (u_count, n, w) = context.dims3()?;
        let base = Tensor::from_vec(
            group.iter().map(|&u| (u * n) as u32).collect::<Vec<_>>(),
            group.len(),
            &self.device,
        )?;
        context
            .reshape((u_count * n, w))?
            .index_select(&(base + cells)?, 0)
    }

    /// The fine state `[rows, H]` for the offset and size heads, from the
    /// chosen cell's key and raw neighbourhood `[rows, P + 27]`.
    pub(super) fn fine_state(&self, chosen: &Tensor, t: &Tensor) -> Result<Tensor> {
        self.fine
            .forward(&Tensor::cat(&[chosen, t], 1)?)?
            .act(Activation::Relu)
    }
}
