//! `icl_score` and `icl_heads` on the tiny GPT-2 and Llama fixtures, against brute force: every
//! prompt run alone and unpadded, its per-token losses from a log-softmax of the logits in f64,
//! and each head ablated by a plain zero edit of its `attn.hook_z` (not the ablation sweep's
//! batched, prefix-reusing passes); and against the `ablation` and `induction_scores` kinds.

use crate::analysis_common::*;
use crate::iv_common::{MODELS, loaded};

use circuitry_circuits::analyses::induction_scores::{repeat_bounds, scores};
use circuitry_data::{Prompt, Rng};
use circuitry_models::burn::prelude::*;
use circuitry_models::{
    Edit, EditOp, HookKind, HookPoint, Intervention, LoadedModel, PaddingSide, Selection, Span,
    TokenBatch, host_values,
};

fn experiment(body: &str) -> String {
    format!(
        "[models.m]\npath = \"m\"\n[datasets.rep]\ngenerator = \"repeated_tokens\"\nn = 4\n\
         length = 8\n[analyses.a]\nmodel = \"m\"\ndataset = \"rep\"\n{body}\n"
    )
}

/// `[BOS] r r` prompts with `|r|` from 6 to 9, named positions as the generator sets them.
fn repeated(m: &LoadedModel, n: usize, seed: u64) -> Vec<Prompt> {
    let bos = m.tokenizer.as_ref().unwrap().bos_token_id.unwrap();
    let mut rng = Rng::new(seed);
    (0..n)
        .map(|i| {
            let len = 6 + rng.index(4);
            let r: Vec<u32> = (0..len).map(|_| 1 + rng.index(120) as u32).collect();
            let tokens = std::iter::once(bos).chain(r.clone()).chain(r).collect();
            let mut p = Prompt::from_tokens(i as u32, tokens);
            p.positions.insert("seq_start".into(), 1);
            p.positions.insert("repeat_start".into(), 1 + len);
            p
        })
        .collect()
}

/// One prompt run alone with `edits`: its per-token losses (`[t - 1]` for token `t`, f64
/// log-softmax of the logits) and every layer's attention pattern `[head][q][k]`.
fn alone(m: &LoadedModel, p: &Prompt, edits: Vec<Edit>) -> (Vec<f64>, Vec<Vec<f32>>) {
    let cfg = &m.model.config;
    let batch = TokenBatch::unpadded(std::slice::from_ref(&p.tokens), &Device::flex());
    let capture = (0..cfg.n_layers)
        .map(|l| HookPoint::layer(l, HookKind::Pattern))
        .collect();
    let out = m
        .model
        .forward(&batch, &Intervention { capture, edits }, Span::default());
    let logits = host_values(&out.logits.unwrap());
    let v = cfg.d_vocab;
    let losses = (1..p.len())
        .map(|t| {
            let row = &logits[(t - 1) * v..t * v];
            let max = row
                .iter()
                .fold(f64::NEG_INFINITY, |a, &x| a.max(f64::from(x)));
            let lse = max
                + row
                    .iter()
                    .map(|&x| (f64::from(x) - max).exp())
                    .sum::<f64>()
                    .ln();
            lse - f64::from(row[p.tokens[t] as usize])
        })
        .collect();
    let patterns = (0..cfg.n_layers)
        .map(|l| {
            out.cache
                .get(&HookPoint::layer(l, HookKind::Pattern))
                .unwrap()
                .to_vec()
        })
        .collect();
    (losses, patterns)
}

/// Mean `[prefix matching, previous token]` of every head (`layer * n_heads + head`) over
/// `runs` (per prompt, its patterns).
fn head_scores(m: &LoadedModel, prompts: &[Prompt], runs: &[Vec<Vec<f32>>]) -> Vec<[f64; 2]> {
    let cfg = &m.model.config;
    let mut sums = vec![[0.0; 2]; cfg.n_layers * cfg.n_heads];
    for (p, patterns) in prompts.iter().zip(runs) {
        let (start, repeat) = repeat_bounds(p).unwrap();
        let n = p.len();
        for (l, pattern) in patterns.iter().enumerate() {
            for h in 0..cfg.n_heads {
                let attn = |q: usize, k: usize| f64::from(pattern[(h * n + q) * n + k]);
                let s = scores(n, start, repeat, attn);
                sums[l * cfg.n_heads + h][0] += s[0] / prompts.len() as f64;
                sums[l * cfg.n_heads + h][1] += s[1] / prompts.len() as f64;
            }
        }
    }
    sums
}

fn close(a: f64, b: f64, tol: f64, what: &str) {
    assert!((a - b).abs() <= tol, "{what}: {a} vs {b}");
}

#[test]
fn icl_score_equals_per_token_losses_by_hand() {
    for name in MODELS {
        let m = loaded(name);
        let prompts = repeated(&m, 7, 3);
        let (early, late) = (3, 12);
        let losses: Vec<Vec<f64>> = prompts.iter().map(|p| alone(&m, p, vec![]).0).collect();
        for side in [PaddingSide::Left, PaddingSide::Right] {
            let body = format!("kind = \"icl_score\"\nearly = {early}\nlate = {late}");
            let mut a = built(&analysis_a(&experiment(&body)), &m);
            let sink = run_dataset(a.as_mut(), &m, &prompts, 3, side).unwrap();
            let main = sink.part(None).unwrap();
            let (got_early, got_late, got) = (
                f64s(&main, "loss_early"),
                f64s(&main, "loss_late"),
                f64s(&main, "icl_score"),
            );
            assert_eq!(
                ints(&main, "prompt"),
                (0..prompts.len()).collect::<Vec<_>>()
            );
            for (i, l) in losses.iter().enumerate() {
                close(got_early[i], l[early - 1], 1e-4, "loss on the early token");
                close(got_late[i], l[late - 1], 1e-4, "loss on the late token");
                close(got[i], l[late - 1] - l[early - 1], 1e-4, "icl score");
            }
            // The loss curve: every token index, over the prompts that have it.
            let pos = sink.part(Some("positions")).unwrap();
            let longest = prompts.iter().map(Prompt::len).max().unwrap();
            assert_eq!(ints(&pos, "token"), (1..longest).collect::<Vec<_>>());
            let (mean, counts) = (f64s(&pos, "mean_loss"), ints(&pos, "n_prompts"));
            for t in 1..longest {
                let have: Vec<f64> = losses
                    .iter()
                    .filter_map(|l| l.get(t - 1).copied())
                    .collect();
                assert_eq!(counts[t - 1], have.len());
                close(
                    mean[t - 1],
                    have.iter().sum::<f64>() / have.len() as f64,
                    1e-4,
                    "mean loss",
                );
            }
            // The summary: the mean score and its standard error.
            let summary = sink.part(Some("summary")).unwrap();
            let scores: Vec<f64> = losses.iter().map(|l| l[late - 1] - l[early - 1]).collect();
            let n = scores.len() as f64;
            let mu = scores.iter().sum::<f64>() / n;
            let sem = (scores.iter().map(|s| (s - mu).powi(2)).sum::<f64>() / (n - 1.0) / n).sqrt();
            close(f64s(&summary, "icl_score")[0], mu, 1e-4, "mean icl score");
            close(
                nullable_f64s(&summary, "sem_icl_score")[0].unwrap(),
                sem,
                1e-4,
                "sem",
            );
            assert_eq!(ints(&summary, "n_prompts"), [prompts.len()]);
        }
        // A prompt without a token `late` is an error at `late`.
        let body = "kind = \"icl_score\"\nearly = 3\nlate = 16";
        let mut a = built(&analysis_a(&experiment(body)), &m);
        let e = run_dataset(a.as_mut(), &m, &prompts, 3, PaddingSide::Right).unwrap_err();
        assert!(e.contains("no token 16"), "{e}");
    }
}

#[test]
fn icl_heads_equal_plain_zero_ablations_and_the_ablation_kind() {
    for name in MODELS {
        let m = loaded(name);
        let cfg = m.model.config.clone();
        let prompts = repeated(&m, 5, 11);
        let (early, late) = (4, 12);
        let body = format!("kind = \"icl_heads\"\nearly = {early}\nlate = {late}");
        let mut a = built(&analysis_a(&experiment(&body)), &m);
        let sink = run_dataset(a.as_mut(), &m, &prompts, 2, PaddingSide::Right).unwrap();
        let t = sink.part(None).unwrap();
        let (layers, heads) = (ints(&t, "layer"), ints(&t, "head"));
        assert_eq!(t.len(), cfg.n_layers * cfg.n_heads);
        let clean_runs: Vec<_> = prompts.iter().map(|p| alone(&m, p, vec![])).collect();
        let icl = |runs: &[(Vec<f64>, Vec<Vec<f32>>)]| {
            runs.iter()
                .map(|(l, _)| l[late - 1] - l[early - 1])
                .sum::<f64>()
                / runs.len() as f64
        };
        let patterns = |runs: &[(Vec<f64>, Vec<Vec<f32>>)]| -> Vec<Vec<Vec<f32>>> {
            runs.iter().map(|(_, p)| p.clone()).collect()
        };
        let clean_scores = head_scores(&m, &prompts, &patterns(&clean_runs));
        let others_max = |own: usize, s: &[[f64; 2]]| {
            (0..s.len())
                .filter(|&g| g != own)
                .map(|g| s[g][0])
                .fold(f64::NEG_INFINITY, f64::max)
        };
        for row in 0..t.len() {
            let (l, h) = (layers[row], heads[row]);
            let own = l * cfg.n_heads + h;
            let zero = Edit::new(
                HookPoint::layer(l, HookKind::Z),
                Selection::heads(vec![h]),
                EditOp::Zero,
            )
            .unwrap();
            let runs: Vec<_> = prompts
                .iter()
                .map(|p| alone(&m, p, vec![zero.clone()]))
                .collect();
            let ablated = head_scores(&m, &prompts, &patterns(&runs));
            let what = |c: &str| format!("{name} L{l}H{h} {c}");
            let col = |c: &str| f64s(&t, c)[row];
            close(
                col("prefix_matching_score"),
                clean_scores[own][0],
                1e-5,
                &what("prefix"),
            );
            close(
                col("previous_token_score"),
                clean_scores[own][1],
                1e-5,
                &what("prev"),
            );
            close(
                col("icl_score_clean"),
                icl(&clean_runs),
                1e-4,
                &what("icl clean"),
            );
            close(
                col("icl_score_ablated"),
                icl(&runs),
                1e-4,
                &what("icl ablated"),
            );
            let (ic, ia) = (others_max(own, &clean_scores), others_max(own, &ablated));
            close(
                col("induction_score_clean"),
                ic,
                1e-5,
                &what("induction clean"),
            );
            close(
                col("induction_score_ablated"),
                ia,
                1e-5,
                &what("induction ablated"),
            );
            close(
                col("induction_score_change"),
                ia - ic,
                1e-5,
                &what("change"),
            );
        }
        // A prompt without a token `late` is an error at `late`.
        let body = "kind = \"icl_heads\"\nearly = 4\nlate = 13";
        let mut c = built(&analysis_a(&experiment(body)), &m);
        let e = run_dataset(c.as_mut(), &m, &prompts, 2, PaddingSide::Right).unwrap_err();
        assert!(e.contains("no token 13"), "{e}");
        // The ablation kind with the ICL-score metric gives the same changes.
        let body = format!("kind = \"ablation\"\nmetric = {{ icl_score = [{early}, {late}] }}");
        let mut b = built(&analysis_a(&experiment(&body)), &m);
        let sweep = run_dataset(b.as_mut(), &m, &prompts, 2, PaddingSide::Right).unwrap();
        let s = sweep.part(None).unwrap();
        let (sl, sh, delta) = (
            opt_ints(&s, "layer"),
            opt_ints(&s, "head"),
            f64s(&s, "delta"),
        );
        for row in 0..t.len() {
            let mean = (0..s.len())
                .filter(|&i| sl[i] == Some(layers[row] as i64) && sh[i] == Some(heads[row] as i64))
                .map(|i| delta[i])
                .sum::<f64>()
                / prompts.len() as f64;
            close(
                f64s(&t, "icl_score_change")[row],
                mean,
                1e-6,
                "ablation kind",
            );
        }
    }
}
