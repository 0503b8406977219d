//! `effective_dimension`: how many dimensions each layer's residual stream and each head's
//! output use — PCA spectrum, participation ratio, components for 90% / 99% of the variance —
//! and the TwoNN intrinsic dimension of a seeded sample of tokens.
//!
//! The covariances stream (f64 sums, `d x d` per hook). A head's output `z_h W_O[h]` is never
//! materialised: its covariance is `W_O^T cov(z) W_O`, whose non-zero eigenvalues are those of
//! `S cov(z) S` with `S = (W_O W_O^T)^(1/2)` (`d_head x d_head`), and distances between outputs
//! are distances between `z S`.

use circuitry_models::{HookKind, HookPoint, host_values};
use circuitry_spec::EffectiveDimensionParams;

use super::prelude::*;
use super::{check_site, selected_layers_heads};
use crate::acts;
use crate::dimension::{Covariance, Reservoir, SpectrumStats, two_nn};
use crate::matrix::Mat;
use crate::neurons::counted_positions;

crate::table_row! {
    pub struct DimensionRow {
        layer = "Layer of the hook.",
        head: Option<i32> = "Head whose output is studied; null for the residual-stream hook.",
        hook: String = "The hook: the `site` of the layer, or `blocks.L.attn.hook_result` for a head's output.",
        tokens: i64 = "Tokens counted.",
        dimension: i32 = "Dimension of the space the vectors live in (d_model, or d_mlp for MLP sites).",
        total_variance: Option<f64> = "Sum of the variances of all components (trace of the covariance, ddof = 1).",
        participation_ratio: Option<f64> = "(sum λ)^2 / sum λ^2 of the covariance's eigenvalues λ: 1 when one direction holds all the variance, `dimension` when it is isotropic.",
        components_90: Option<i32> = "Fewest principal components holding 90% of the variance.",
        components_99: Option<i32> = "Fewest principal components holding 99% of the variance.",
        top_variance_share: Option<f64> = "Share of the variance in the first principal component.",
        twonn: Option<f64> = "TwoNN intrinsic-dimension estimate from the sampled tokens (null when skipped or with fewer than 3 distinct points).",
        twonn_points: Option<i64> = "Sampled tokens TwoNN used (duplicates dropped).",
    }
}

crate::table_row! {
    pub struct SpectrumRow {
        layer = "Layer of the hook.",
        head: Option<i32> = "Head whose output is studied; null for the residual-stream hook.",
        hook: String = "The hook, as in the main table.",
        component: i32 = "Principal component (0 = largest variance). Heads list d_head components (the rest are 0).",
        variance: f64 = "Variance along the component (eigenvalue of the covariance, ddof = 1).",
        share: f64 = "Its share of the total variance.",
        cumulative_share: f64 = "Share of the total variance in components 0..=component.",
    }
}

/// Streaming state of one studied hook: its covariance and its sampled vectors.
struct Stream {
    cov: Covariance,
    width: usize,
    /// `capacity x width`, row-major; rows beyond the reservoir's fill are unused.
    samples: Vec<f32>,
}

impl Stream {
    fn new(width: usize, capacity: usize) -> Stream {
        Stream {
            cov: Covariance::new(width),
            width,
            samples: vec![0.0; width * capacity],
        }
    }
}

pub struct EffectiveDimension {
    params: EffectiveDimensionParams,
    site: HookKind,
    layers: Vec<usize>,
    heads: Vec<usize>,
    reservoir: Reservoir,
    /// Per selected layer: the site's stream, and one per selected head (over `hook_z`).
    site_streams: Vec<Stream>,
    head_streams: Vec<Vec<Stream>>,
}

impl Kind for EffectiveDimension {
    type Params = EffectiveDimensionParams;
    const TABLES: &'static [TableDecl] = &[
        TableDecl::main::<DimensionRow>(),
        TableDecl::part::<SpectrumRow>("spectrum"),
    ];

    fn build(params: Self::Params, cx: BuildContext) -> Result<Self, AnalysisError> {
        let cfg = cx.config;
        check_site(
            cfg,
            params.site,
            circuitry_models::HookKind::from(params.site),
            "site",
        )?;
        let (layers, heads) =
            selected_layers_heads(cfg, params.layers.as_deref(), params.heads.as_deref())?;
        let heads = if params.head_outputs {
            heads
        } else {
            Vec::new()
        };
        let site = HookKind::from(params.site);
        let (_, width) = circuitry_models::hook_position_shape(cfg, site);
        let capacity = params.twonn_points as usize;
        Ok(EffectiveDimension {
            site_streams: layers
                .iter()
                .map(|_| Stream::new(width, capacity))
                .collect(),
            head_streams: layers
                .iter()
                .map(|_| {
                    heads
                        .iter()
                        .map(|_| Stream::new(cfg.d_head, capacity))
                        .collect()
                })
                .collect(),
            reservoir: Reservoir::new(capacity, params.seed.unwrap_or(0)),
            site,
            layers,
            heads,
            params,
        })
    }
}

/// Adds the rows at `flat` (indices into the `[rows, width]` view of `data`, starting at
/// `offset` within each row) to `stream`, storing the sampled ones.
fn absorb(
    stream: &mut Stream,
    data: &[f32],
    flat: &[(usize, Option<usize>)],
    stride: usize,
    offset: usize,
) {
    let w = stream.width;
    let mut block = Vec::with_capacity(flat.len() * w);
    for &(at, slot) in flat {
        let v = &data[at * stride + offset..at * stride + offset + w];
        block.extend_from_slice(v);
        if let Some(s) = slot {
            stream.samples[s * w..(s + 1) * w].copy_from_slice(v);
        }
    }
    stream.cov.add_rows(&block);
}

impl Analysis for EffectiveDimension {
    fn requirements(&self) -> Requirements {
        let mut hooks: Vec<HookPoint> = self
            .layers
            .iter()
            .map(|&l| HookPoint::layer(l, self.site))
            .collect();
        if !self.heads.is_empty() {
            hooks.extend(
                self.layers
                    .iter()
                    .map(|&l| HookPoint::layer(l, HookKind::Z)),
            );
        }
        Requirements::hooks(hooks)
    }

    fn process(
        &mut self,
        model: &ModelContext,
        batch: &BatchContext,
        _sink: &mut dyn TableSink,
    ) -> Result<(), AnalysisError> {
        let bos = model.tokenizer.bos_token_id;
        let [_, t] = batch.clean.ids.dims();
        // (row * t + slot, reservoir slot) of every counted token, in stream order.
        let mut flat = Vec::new();
        for (r, prompt) in batch.prompts.iter().enumerate() {
            for i in counted_positions(prompt, self.params.include_bos, bos) {
                flat.push((r * t + batch.slot(r, i), self.reservoir.offer()));
            }
        }
        for (li, &layer) in self.layers.iter().enumerate() {
            let acts = acts::host(batch.clean_output, HookPoint::layer(layer, self.site))?;
            let stream = &mut self.site_streams[li];
            let width = stream.width;
            absorb(stream, acts::dense(&acts), &flat, width, 0);
            if self.heads.is_empty() {
                continue;
            }
            let z = acts::host(batch.clean_output, HookPoint::layer(layer, HookKind::Z))?;
            let [_, _, n_heads, d_head] = z.shape[..] else {
                return Err(AnalysisError::new("internal error: hook_z of rank != 4"));
            };
            for (hi, &head) in self.heads.iter().enumerate() {
                let stream = &mut self.head_streams[li][hi];
                absorb(
                    stream,
                    acts::dense(&z),
                    &flat,
                    n_heads * d_head,
                    head * d_head,
                );
            }
        }
        Ok(())
    }

    fn finish(
        &mut self,
        model: &ModelContext,
        sink: &mut dyn TableSink,
    ) -> Result<(), AnalysisError> {
        let filled = self.reservoir.filled();
        let linalg = |e: crate::matrix::LinalgError| AnalysisError::new(format!("{e}"));
        let mut main = Rows::<DimensionRow>::new();
        let mut spectrum = Rows::<SpectrumRow>::new();
        for (li, &layer) in self.layers.iter().enumerate() {
            let stream = &self.site_streams[li];
            let hook = HookPoint::layer(layer, self.site).to_string();
            let stats = stream
                .cov
                .covariance()
                .map(|c| SpectrumStats::of_covariance(&c))
                .transpose()
                .map_err(linalg)?;
            let points = Mat::from_f32(
                filled,
                stream.width,
                &stream.samples[..filled * stream.width],
            );
            let summary = Summary {
                layer,
                head: None,
                hook: &hook,
                tokens: stream.cov.count(),
                dimension: stream.width,
                stats: stats.as_ref(),
                twonn: self.twonn(&points),
            };
            summary.push(&mut main, &mut spectrum);
            if self.heads.is_empty() {
                continue;
            }
            let w_o = host_values(&model.model.blocks()[layer].attn().w_o_heads());
            let (d_head, d_model) = (model.model.config.d_head, model.model.config.d_model);
            let hook = HookPoint::layer(layer, HookKind::Result).to_string();
            for (hi, &head) in self.heads.iter().enumerate() {
                let stream = &self.head_streams[li][hi];
                let block = d_head * d_model;
                let w = Mat::from_f32(d_head, d_model, &w_o[head * block..(head + 1) * block]);
                let root = sqrt_psd(&w.matmul_t(&w)).map_err(linalg)?;
                let stats = stream
                    .cov
                    .covariance()
                    .map(|c| SpectrumStats::of_covariance(&root.matmul(&c).matmul(&root)))
                    .transpose()
                    .map_err(linalg)?;
                let z = Mat::from_f32(filled, d_head, &stream.samples[..filled * d_head]);
                Summary {
                    layer,
                    head: Some(head),
                    hook: &hook,
                    tokens: stream.cov.count(),
                    dimension: d_model,
                    stats: stats.as_ref(),
                    twonn: self.twonn(&z.matmul(&root)),
                }
                .push(&mut main, &mut spectrum);
            }
        }
        emit(sink, None, main)?;
        emit(sink, Some("spectrum"), spectrum)
    }
}

impl EffectiveDimension {
    fn twonn(&self, points: &Mat) -> Option<(f64, usize)> {
        if self.params.twonn_points == 0 {
            return None;
        }
        two_nn(points)
    }
}

/// The symmetric square root of a positive semi-definite matrix (negative eigenvalues from
/// rounding are clipped to 0).
fn sqrt_psd(a: &Mat) -> Result<Mat, crate::matrix::LinalgError> {
    let (values, vectors) = a.symmetric_eigen()?;
    let n = values.len();
    let scaled = Mat::from_fn(n, n, |i, j| vectors[(i, j)] * values[j].max(0.0).sqrt());
    Ok(scaled.matmul_t(&vectors))
}

/// One studied hook's rows.
struct Summary<'a> {
    layer: usize,
    head: Option<usize>,
    hook: &'a str,
    tokens: u64,
    dimension: usize,
    stats: Option<&'a SpectrumStats>,
    twonn: Option<(f64, usize)>,
}

impl Summary<'_> {
    fn push(self, main: &mut Rows<DimensionRow>, spectrum: &mut Rows<SpectrumRow>) {
        let s = self.stats;
        main.push(DimensionRow {
            layer: self.layer as i32,
            head: self.head.map(|h| h as i32),
            hook: self.hook.to_string(),
            tokens: self.tokens as i64,
            dimension: self.dimension as i32,
            total_variance: s.map(|s| s.total),
            participation_ratio: s.map(|s| s.participation_ratio),
            components_90: s.map(|s| s.components_90 as i32),
            components_99: s.map(|s| s.components_99 as i32),
            top_variance_share: s.map(|s| s.top_share),
            twonn: self.twonn.map(|t| t.0),
            twonn_points: self.twonn.map(|t| t.1 as i64),
        });
        let Some(s) = s else { return };
        let mut cumulative = 0.0;
        for (k, &v) in s.variances.iter().enumerate() {
            let share = if s.total > 0.0 { v / s.total } else { 0.0 };
            cumulative += share;
            spectrum.push(SpectrumRow {
                layer: self.layer as i32,
                head: self.head.map(|h| h as i32),
                hook: self.hook.to_string(),
                component: k as i32,
                variance: v,
                share,
                cumulative_share: cumulative,
            });
        }
    }
}
