"""Reference fixture: scikit-learn Ridge and LogisticRegression (lbfgs, L2) probes on synthetic data,
with the objectives checked numerically: the stated (convex) objective's gradient is ~0 at sklearn's fit,
so sklearn's solution is its minimiser (a wrong C scaling or a penalised intercept would fail the check).

Setup (outside the repo):
  python3 -m venv /root/.cache/causal-ref-venv && /root/.cache/causal-ref-venv/bin/pip install \
    torch==2.6.0 transformers==4.48.3 pyvene==0.1.8 scikit-learn==1.9.1 safetensors numpy
Run (from the repo root):
  /root/.cache/causal-ref-venv/bin/python scripts/reference/sklearn_probes.py \
    tests/fixtures/causal/sklearn_probes.json

Draw order from numpy.random.default_rng(2): X (80x6), reg noise (80), bin noise (80), B (6x3),
multi noise (80x3).
"""
import json, os, sys, warnings

import numpy as np
import scipy, sklearn
from scipy.special import expit, softmax
from sklearn.linear_model import LogisticRegression, Ridge

rng = np.random.default_rng(2)
X = rng.standard_normal((80, 6)) + np.array([0.5, -1, 2, 0, 0.3, -0.7])
y_reg = X @ np.array([1, -2, 0.5, 0, 3, -1.0]) + 0.7 + 0.1 * rng.standard_normal(80)
y_bin = ((X @ np.array([1, -1, 0.5, 0, 0, 2.0]) + 0.3 + 0.8 * rng.standard_normal(80)) > 0).astype(int)
B = rng.standard_normal((6, 3))
y_multi = np.argmax(X @ B + 0.5 * rng.standard_normal((80, 3)), axis=1)
targets = {"y_reg": y_reg, "y_bin": y_bin, "y_multi": y_multi}


def check(ok, what):
    if not ok:
        sys.exit(f"objective check failed: {what}")


def ridge_grad(w, b, y, alpha):  # d/d(w,b) of ||y - Xw - b||^2 + alpha ||w||^2
    r = X @ w + b - y
    return np.concatenate([2 * X.T @ r + 2 * alpha * w, [2 * r.sum()]])


def logistic_grad(W, b, y, C):
    """Gradient of C * sum_i logloss_i + 0.5 * ||W||^2 (intercepts unpenalised).
    Binary (W: 1 x d): p = sigmoid(X w + b). Multinomial (W: K x d): p = softmax(X W^T + b)."""
    Z = X @ W.T + b
    if W.shape[0] == 1:
        E = expit(Z[:, 0]) - y
        return np.concatenate([C * X.T @ E + W[0], [C * E.sum()]])
    E = softmax(Z, axis=1) - np.eye(W.shape[0])[y]
    return np.concatenate([(C * E.T @ X + W).ravel(), C * E.sum(0)])


def logistic_polish(W, b, y, C, steps=20):
    """Newton steps (pinv: the multinomial intercept shift is a null direction) on the same objective,
    giving its optimum to ~1e-12 where lbfgs stopped at gradient ~1e-6."""
    K, d = W.shape
    Xa = np.hstack([X, np.ones((len(X), 1))])
    for _ in range(steps):
        Z = X @ W.T + b
        if K == 1:
            p = expit(Z[:, 0])
            H = C * Xa.T @ (Xa * (p * (1 - p))[:, None]) + np.diag([1.0] * d + [0.0])
            g = logistic_grad(W, b, y, C)  # order [w, b] matches Xa
            t = np.concatenate([W[0], b]) - np.linalg.pinv(H) @ g
            W, b = t[None, :d], t[d:]
        else:
            P = softmax(Z, axis=1)
            S = np.einsum("ik,kl->ikl", P, np.eye(K)) - np.einsum("ik,il->ikl", P, P)
            Hfull = C * np.einsum("ikl,ia,ib->kalb", S, Xa, Xa)  # (K, d+1, K, d+1)
            Hfull[:, :d, :, :d] += np.einsum("kl,ab->kalb", np.eye(K), np.eye(d))
            # reorder to [W.ravel() (class-major), b] as in logistic_grad
            idx = [(k, a) for k in range(K) for a in range(d)] + [(k, d) for k in range(K)]
            H = np.array([[Hfull[k, a, l, c] for (l, c) in idx] for (k, a) in idx])
            t = np.concatenate([W.ravel(), b]) - np.linalg.pinv(H) @ logistic_grad(W, b, y, C)
            W, b = t[:K * d].reshape(K, d), t[K * d:]
    return W, b


fits = []
for name, alpha in [("ridge_alpha1", 1.0), ("ridge_alpha10", 10.0)]:
    m = Ridge(alpha=alpha, fit_intercept=True).fit(X, y_reg)
    g = ridge_grad(m.coef_, m.intercept_, y_reg, alpha)
    check(np.abs(g).max() < 1e-9, f"{name} grad {np.abs(g).max()}")
    fits.append({"name": name, "kind": "ridge", "alpha": alpha, "target": "y_reg",
                 "coef": [list(map(float, m.coef_))], "intercept": [float(m.intercept_)],
                 "score": float(m.score(X, y_reg)), "max_abs_objective_grad": float(np.abs(g).max())})

for name, C, target in [("logistic_bin_C1", 1.0, "y_bin"), ("logistic_multi_C1", 1.0, "y_multi"),
                        ("logistic_multi_C0.1", 0.1, "y_multi")]:
    y = targets[target]
    with warnings.catch_warnings():  # sklearn >= 1.8 warns that `penalty` is deprecated (l1_ratio=0 is the same)
        warnings.simplefilter("ignore", FutureWarning)
        m = LogisticRegression(C=C, penalty="l2", fit_intercept=True, solver="lbfgs", tol=1e-12,
                               max_iter=100000).fit(X, y)
    g = logistic_grad(m.coef_, m.intercept_, y, C)
    check(np.abs(g).max() < 1e-6, f"{name} grad {np.abs(g).max()}")
    We, be = logistic_polish(m.coef_, m.intercept_, y, C)
    ge = np.abs(logistic_grad(We, be, y, C)).max()
    check(ge < 1e-10, f"{name} polished grad {ge}")
    if m.coef_.shape[0] > 1:
        # softmax over all K vectors (not K-1): at the optimum the penalty forces sum_k W_k = 0
        check(np.abs(m.coef_.sum(0)).max() < 1e-6, f"{name} coef class-sum")
        pred_ok = np.array_equal(np.argmax(X @ m.coef_.T + m.intercept_, 1), m.predict(X))
    else:
        pred_ok = np.array_equal((X @ m.coef_[0] + m.intercept_[0] > 0).astype(int), m.predict(X))
    check(pred_ok, f"{name} predictions")
    fits.append({"name": name, "kind": "logistic", "C": C, "target": target,
                 "coef": [list(map(float, r)) for r in m.coef_], "intercept": list(map(float, m.intercept_)),
                 "predictions": [int(p) for p in m.predict(X)],
                 "probabilities": [list(map(float, r)) for r in m.predict_proba(X)],
                 "score": float(m.score(X, y)), "n_iter": int(m.n_iter_[0]),
                 "intercept_sum": float(m.intercept_.sum()),
                 "max_abs_objective_grad": float(np.abs(g).max()),
                 "coef_exact": [list(map(float, r)) for r in We], "intercept_exact": list(map(float, be)),
                 "max_abs_objective_grad_exact": float(ge),
                 "max_abs_diff_sklearn_vs_exact": float(max(np.abs(We - m.coef_).max(), np.abs(be - m.intercept_).max()))})
    print(name, "acc", fits[-1]["score"], "grad", fits[-1]["max_abs_objective_grad"], "iters", fits[-1]["n_iter"],
          "exact grad", ge, "|sklearn - exact|", fits[-1]["max_abs_diff_sklearn_vs_exact"])

out = {
    "X": [list(map(float, r)) for r in X], "y_reg": list(map(float, y_reg)),
    "y_bin": [int(v) for v in y_bin], "y_multi": [int(v) for v in y_multi],
    "B": [list(map(float, r)) for r in B],
    "fits": fits,
    "objectives": {
        "ridge": "minimise ||y - X w - b||^2 + alpha * ||w||^2 (intercept b unpenalised; sklearn centres X, y); "
                 "score = R^2 on X",
        "logistic_binary": "one coefficient vector w (coef_ is 1 x d), p_i = sigmoid(x_i.w + b); minimise "
                           "C * sum_i logloss_i + 0.5 * ||w||^2, intercept unpenalised. sklearn's lbfgs actually "
                           "minimises the equivalent mean(logloss) + ||w||^2 / (2 C n) (LinearModelLoss, "
                           "l2_reg_strength = 1/(C*n)); same minimiser",
        "logistic_multinomial": "K = 3 vectors (coef_ is K x d), p_i = softmax(x_i W^T + b) over all K classes "
                                "(symmetric, not K-1 reference coding); minimise C * sum_i -log p_i[y_i] + "
                                "0.5 * sum_k ||W_k||^2, intercepts unpenalised. Consequently sum_k W_k = 0 at the "
                                "optimum; the intercepts are only fixed up to a common shift (lbfgs from zero "
                                "keeps sum_k b_k ~ 0, see intercept_sum)",
        "accuracy": "score = fraction of predict(X) == y; predict = argmax of X W^T + b (binary: > 0)",
        "verified": "max_abs_objective_grad = max |gradient of the stated objective| at sklearn's solution "
                    "(lbfgs stops near 1e-6 despite tol=1e-12); coef_exact/intercept_exact = that objective's "
                    "optimum refined by Newton steps from sklearn's solution (gradient < 1e-10)",
    },
    "versions": {"sklearn": sklearn.__version__, "numpy": np.__version__, "scipy": scipy.__version__},
}
os.makedirs(os.path.dirname(os.path.abspath(sys.argv[1])), exist_ok=True)
with open(sys.argv[1], "w") as f:
    json.dump(out, f)
print(f"wrote {sys.argv[1]} ({os.path.getsize(sys.argv[1])} bytes)")
