"""The peers' side of scripts/bench-peers.sh: Faiss (and, on a GPU machine, PyTorch) on the
data and codebooks that kvpq's `peers` binary wrote, one JSON object per line on stdout.

    python scripts/peers.py quality --data DIR --grid 2:6,8:8 [--k-frac 0.05]
    python scripts/peers.py speed --data DIR --grid 2:6,16:8,32:4 --tokens 32768,131072

quality: per (M, bits), Faiss IndexPQ with the inner product, given kvpq's trained
centroids (`codebook_m<M>_b<bits>.npy`) so that only the scoring differs (Faiss's float
ADC against kvpq's fixed-point datapath); Faiss encodes the keys itself. Reports recall@k
against the exact top-k and the attention mass its selection captures.

speed: one thread, one query, k = 5 % of N: IndexPQ for 6- and 8-bit codes,
IndexPQFastScan for 4-bit ones, with the same centroids; the median of `reps` searches.
"""

from __future__ import annotations

import argparse
import json
import pathlib
import time

import numpy as np


def emit(**row) -> None:
    """One result row: a JSON object on its own line."""
    print(json.dumps(row), flush=True)


def exact_top_k(keys: np.ndarray, q: np.ndarray, k: int) -> np.ndarray:
    """Indices of the k largest inner products (ties to the smaller index)."""
    s = keys @ q
    # A stable sort of -s keeps the smaller index first among equal scores.
    return np.argsort(-s, kind="stable")[:k]


def mass(keys: np.ndarray, group: np.ndarray, ids: np.ndarray) -> float:
    """Softmax mass (scale 1/sqrt(D)) of `ids`, mean over the group's query heads."""
    d = keys.shape[1]
    total = 0.0
    for q in group.astype(np.float64):
        logits = keys.astype(np.float64) @ q / np.sqrt(d)
        p = np.exp(logits - logits.max())
        total += p[np.unique(ids)].sum() / p.sum()
    return total / len(group)


def quality(data: pathlib.Path, grid: list[str], k_frac: float) -> None:
    import faiss

    faiss.omp_set_num_threads(1)
    keys = np.load(data / "keys.npy").astype(np.float32)
    queries = np.load(data / "queries.npy").astype(np.float32)
    # A user's pair has no group: each query is its own head.
    group_path = data / "group_queries.npy"
    group = np.load(group_path).astype(np.float32) if group_path.exists() else queries[:, None, :]
    n, d = keys.shape
    k = max(1, int(n * k_frac))
    exact = [exact_top_k(keys, q, k) for q in queries]
    for pair in grid:
        m, bits = (int(x) for x in pair.split(":"))
        centroids = np.load(data / f"codebook_m{m}_b{bits}.npy").astype(np.float32)
        index = faiss.IndexPQ(d, m, bits, faiss.METRIC_INNER_PRODUCT)
        faiss.copy_array_to_vector(centroids.ravel(), index.pq.centroids)
        index.is_trained = True
        index.add(keys)
        _, found = index.search(queries, k)
        recalls = [len(np.intersect1d(f, e)) / k for f, e in zip(found, exact)]
        masses = [mass(keys, g, f[f >= 0]) for g, f in zip(group, found)]
        emit(
            section="quality",
            peer="faiss IndexPQ",
            m=m,
            bits=bits,
            tokens=n,
            k=k,
            recall=float(np.mean(recalls)),
            mass=float(np.mean(masses)),
        )


def train(data: pathlib.Path, grid: list[str], iters: int) -> None:
    """Faiss's k-means (ProductQuantizer.train) on the points kvpq trained on, the same
    iterations, all cores: seconds and the recall@k of Faiss's own codebooks."""
    import faiss

    keys = np.load(data / "keys.npy").astype(np.float32)
    queries = np.load(data / "queries.npy").astype(np.float32)
    n, d = keys.shape
    k = max(1, int(n * 0.05))
    exact = [exact_top_k(keys, q, k) for q in queries]
    for pair in grid:
        m, bits = (int(x) for x in pair.split(":"))
        points = np.load(data / f"train_points_m{m}_b{bits}.npy").astype(np.float32)
        index = faiss.IndexPQ(d, m, bits, faiss.METRIC_INNER_PRODUCT)
        index.pq.cp.niter = iters
        index.pq.cp.min_points_per_centroid = 1
        index.pq.cp.max_points_per_centroid = len(points)
        t = time.perf_counter()
        index.train(points)
        seconds = time.perf_counter() - t
        index.add(keys)
        _, found = index.search(queries, k)
        recalls = [len(np.intersect1d(f, e)) / k for f, e in zip(found, exact)]
        emit(
            section="train",
            peer="faiss k-means",
            m=m,
            bits=bits,
            points=len(points),
            iters=iters,
            threads=faiss.omp_get_max_threads(),
            seconds=seconds,
            recall=float(np.mean(recalls)),
        )


def faiss_index(d: int, m: int, bits: int, centroids: np.ndarray):
    """IndexPQ (or IndexPQFastScan for 4-bit codes) with the inner product and kvpq's
    centroids."""
    import faiss

    if bits == 4:
        index = faiss.IndexPQFastScan(d, m, bits, faiss.METRIC_INNER_PRODUCT)
    else:
        index = faiss.IndexPQ(d, m, bits, faiss.METRIC_INNER_PRODUCT)
    faiss.copy_array_to_vector(centroids.ravel(), index.pq.centroids)
    index.is_trained = True
    return index


def speed(data: pathlib.Path, grid: list[str], tokens: list[int], reps: int) -> None:
    import faiss

    faiss.omp_set_num_threads(1)
    keys = np.load(data / "keys.npy").astype(np.float32)
    q = np.load(data / "queries.npy").astype(np.float32)[:1]
    d = keys.shape[1]
    for pair in grid:
        m, bits = (int(x) for x in pair.split(":"))
        centroids = np.load(data / f"codebook_m{m}_b{bits}.npy").astype(np.float32)
        for n in tokens:
            index = faiss_index(d, m, bits, centroids)
            index.add(keys[:n])
            k = n // 20
            index.search(q, k)  # warm-up
            times = []
            for _ in range(reps):
                t = time.perf_counter()
                index.search(q, k)
                times.append(time.perf_counter() - t)
            median = float(np.median(times))
            emit(
                section="speed",
                peer=type(index).__name__.replace("Index", "faiss Index"),
                m=m,
                bits=bits,
                tokens=n,
                k=k,
                seconds=median,
                tokens_per_s=n / median,
            )


def report(rows_path: pathlib.Path, machine: str) -> str:
    """The markdown tables of docs/benchmarks.md's host part, from the JSON lines of both
    sides."""
    rows = [json.loads(line) for line in rows_path.read_text().splitlines() if line.strip()]
    out = []
    q_kvpq = {(r["m"], r["bits"]): r for r in rows if r["section"] == "quality" and "peer" not in r}
    q_faiss = {(r["m"], r["bits"]): r for r in rows if r["section"] == "quality" and "peer" in r}
    if q_kvpq:
        any_row = next(iter(q_kvpq.values()))
        out.append(
            f"## Retrieval quality ({machine}; N = {any_row['tokens']}, k = {any_row['k']}, "
            f"{any_row['queries']} queries)\n"
        )
        out.append(
            "| M | bits | kvpq recall@k (integer path) | Faiss IndexPQ recall@k | difference | "
            "goal (within 0.02) | kvpq mass | Faiss mass | exact top-k mass |"
        )
        out.append("|---|---|---|---|---|---|---|---|---|")
        for key, r in q_kvpq.items():
            f = q_faiss.get(key)
            diff = r["recall"] - f["recall"] if f else float("nan")
            met = "met" if f and abs(diff) <= 0.02 else "missed"
            out.append(
                f"| {key[0]} | {key[1]} | {r['recall']:.4f} | {f['recall'] if f else float('nan'):.4f} | "
                f"{diff:+.4f} | {met} | {r['mass']:.3f} | {f['mass'] if f else float('nan'):.3f} | "
                f"{r['exact_mass']:.3f} |"
            )
        out.append("")
    # Speed rows come in alternating rounds of both sides: the median over rounds per point.
    def by_point(mine: bool) -> dict:
        groups: dict = {}
        for r in rows:
            if r["section"] == "speed" and (r["peer"] == "kvpq cpu") == mine:
                groups.setdefault((r["m"], r["bits"], r["tokens"]), []).append(r)
        return {
            key: dict(rs[0], tokens_per_s=float(np.median([r["tokens_per_s"] for r in rs])))
            for key, rs in groups.items()
        }

    s_kvpq, s_peer = by_point(True), by_point(False)
    if s_kvpq:
        rounds = sum(1 for r in rows if r["section"] == "speed" and r["peer"] == "kvpq cpu") // max(1, len(s_kvpq))
        out.append(
            f"## Host speed per core ({machine}; one thread, one query, k = 5 % of N; "
            f"medians of {rounds} alternating rounds of both sides)\n"
        )
        out.append("| M | bits | N | kvpq cpu (M tokens/s) | peer | peer (M tokens/s) | ratio | goal |")
        out.append("|---|---|---|---|---|---|---|---|")
        for key, r in s_kvpq.items():
            p = s_peer.get(key)
            if not p:
                continue
            ratio = r["tokens_per_s"] / p["tokens_per_s"]
            need = 1.0 if "FastScan" in p["peer"] else 2.0
            met = "met" if ratio >= need else "missed"
            out.append(
                f"| {key[0]} | {key[1]} | {key[2]} | {r['tokens_per_s'] / 1e6:.1f} | {p['peer']} | "
                f"{p['tokens_per_s'] / 1e6:.1f} | {ratio:.2f} | >= {need:.0f}x: {met} |"
            )
        out.append("")
    t_kvpq = {(r["m"], r["bits"]): r for r in rows if r["section"] == "train" and r["peer"] == "kvpq k-means"}
    t_faiss = {(r["m"], r["bits"]): r for r in rows if r["section"] == "train" and r["peer"] != "kvpq k-means"}
    if t_kvpq:
        any_row = next(iter(t_kvpq.values()))
        out.append(
            f"## Training ({machine}; the same points and {any_row['iters']} Lloyd iterations on both "
            f"sides, {any_row['threads']} threads)\n"
        )
        out.append(
            "| M | bits | points | kvpq k-means (s) | Faiss k-means (s) | kvpq / Faiss | "
            "recall@k, kvpq codebooks (integer path) | recall@k, Faiss codebooks |"
        )
        out.append("|---|---|---|---|---|---|---|---|")
        for key, r in t_kvpq.items():
            f = t_faiss.get(key)
            if not f:
                continue
            out.append(
                f"| {key[0]} | {key[1]} | {r['points']} | {r['seconds']:.3f} | {f['seconds']:.3f} | "
                f"{r['seconds'] / f['seconds']:.2f} | {r['recall']:.4f} | {f['recall']:.4f} |"
            )
        out.append("")
    return "\n".join(out)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    sub = p.add_subparsers(dest="command", required=True)
    q = sub.add_parser("quality")
    q.add_argument("--data", type=pathlib.Path, required=True)
    q.add_argument("--grid", default="2:6,4:8,8:8,16:8,32:4")
    q.add_argument("--k-frac", type=float, default=0.05)
    sp = sub.add_parser("speed")
    sp.add_argument("--data", type=pathlib.Path, required=True)
    sp.add_argument("--grid", default="2:6,16:8,32:4")
    sp.add_argument("--tokens", default="32768,131072")
    sp.add_argument("--reps", type=int, default=15)
    tr = sub.add_parser("train")
    tr.add_argument("--data", type=pathlib.Path, required=True)
    tr.add_argument("--grid", default="2:6,16:8,32:4")
    tr.add_argument("--iters", type=int, default=10)
    r = sub.add_parser("report")
    r.add_argument("--rows", type=pathlib.Path, required=True)
    r.add_argument("--machine", default="this machine")
    args = p.parse_args()
    if args.command == "report":
        print(report(args.rows, args.machine))
    elif args.command == "quality":
        quality(args.data, args.grid.split(","), args.k_frac)
    elif args.command == "train":
        train(args.data, args.grid.split(","), args.iters)
    elif args.command == "speed":
        speed(args.data, args.grid.split(","), [int(t) for t in args.tokens.split(",")], args.reps)


if __name__ == "__main__":
    main()
