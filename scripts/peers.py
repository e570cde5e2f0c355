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


def torch_pq_topk(codes, centroids, queries, n: int, k: int):
    """PyTorch's PQ retrieval for a layer, as a PQCache-style implementation does it: the
    float LUT of every head (one batched einsum), the scores by gathering each token's M
    entries (`codes` already hold flat LUT offsets, int64, as `torch.gather` wants), and
    `torch.topk` without sorting (kvpq's hits are in token order, not score order)."""
    import torch

    h, m, kc, sub = centroids.shape
    lut = torch.einsum("hmd,hmkd->hmk", queries.view(h, m, sub), centroids).reshape(h, m * kc)
    scores = torch.gather(lut, 1, codes[:, : n * m]).view(h, n, m).sum(-1)
    return torch.topk(scores, k, dim=-1, sorted=False).indices


def gpu(data: pathlib.Path, tokens: list[int], reps: int) -> None:
    """PyTorch on the data `peers gpu` wrote: the same layer on the GPU and on the host's
    cores (all of torch's threads), per context the median of `reps` calls to the result's
    completion, and how far its float selection agrees with kvpq's integer one."""
    import torch

    codes = np.load(data / "codes.npy").astype(np.int64)
    centroids = np.load(data / "centroids.npy").astype(np.float32)
    queries = np.load(data / "queries.npy").astype(np.float32)
    h, _, m = codes.shape
    kc = centroids.shape[2]
    flat = torch.from_numpy((codes + np.arange(m) * kc).reshape(h, -1))
    cpu_name = "host CPU"
    for line in pathlib.Path("/proc/cpuinfo").read_text().splitlines():
        if line.startswith("model name"):
            cpu_name = line.split(":", 1)[1].strip()
            break
    devices = [("cpu", f"{torch.get_num_threads()} threads of {cpu_name}")]
    if torch.cuda.is_available():
        devices.insert(0, ("cuda", torch.cuda.get_device_name()))
    # Eager PyTorch launches a kernel per op from Python; a captured CUDA graph replays the
    # same kernels without that overhead: PyTorch's best case for this layer.
    if torch.cuda.is_available():
        devices.insert(1, ("cuda graph", torch.cuda.get_device_name()))
    for dev, name in devices:
        where = dev.split()[0]
        c = flat.to(where)
        cent = torch.from_numpy(centroids).to(where)
        q = torch.from_numpy(queries).to(where)
        sync = torch.cuda.synchronize if where == "cuda" else (lambda: None)
        for n in tokens:
            k = n // 20
            call = lambda: torch_pq_topk(c, cent, q, n, k)  # noqa: E731
            if dev == "cuda graph":
                side = torch.cuda.Stream()
                side.wait_stream(torch.cuda.current_stream())
                with torch.cuda.stream(side):
                    call()  # warm-up before capture, as CUDA graphs require
                torch.cuda.current_stream().wait_stream(side)
                graph = torch.cuda.CUDAGraph()
                with torch.cuda.graph(graph):
                    captured = call()
                call = lambda: (graph.replay(), captured)[1]  # noqa: E731
            ids = call()  # warm-up
            sync()
            times = []
            for _ in range(reps if where == "cuda" else max(3, reps // 10)):
                t = time.perf_counter()
                call()
                sync()
                times.append(time.perf_counter() - t)
            mine = np.load(data / f"hits_n{n}.npy").astype(np.int64)
            found = ids.cpu().numpy()
            agree = np.mean([len(np.intersect1d(a, b)) / k for a, b in zip(found, mine)])
            emit(
                section="gpu",
                peer=f"pytorch {dev}",
                device=name,
                heads=h,
                m=m,
                bits=int(np.log2(kc)),
                tokens=n,
                k=k,
                seconds=float(np.median(times)),
                agreement=float(agree),
            )


def read_rows(path: pathlib.Path) -> list[dict]:
    """The JSON lines of `path` (none when it does not exist)."""
    if not path.exists():
        return []
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


def report(rows_path: pathlib.Path, machine: str, gpu_path: pathlib.Path | None = None) -> str:
    """The markdown tables of docs/benchmarks.md, from the JSON lines of both sides (the GPU
    rows from `gpu_path`, written on a GPU machine by scripts/bench-peers-gpu.sh)."""
    rows = read_rows(rows_path)
    accel = {(r["m"], r["bits"], r["tokens"]): r for r in rows if r["section"] == "accel"}
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
            "goal (within 0.02) | kvpq mass | Faiss mass | exact top-k mass | "
            "accelerator per query (us): ECP5 / U55C |"
        )
        out.append("|---|---|---|---|---|---|---|---|---|---|")
        for key, r in q_kvpq.items():
            f = q_faiss.get(key)
            diff = r["recall"] - f["recall"] if f else float("nan")
            met = "met" if f and abs(diff) <= 0.02 else "missed"
            out.append(
                f"| {key[0]} | {key[1]} | {r['recall']:.4f} | {f['recall'] if f else float('nan'):.4f} | "
                f"{diff:+.4f} | {met} | {r['mass']:.3f} | {f['mass'] if f else float('nan'):.3f} | "
                f"{r['exact_mass']:.3f} | {per_query(accel.get((*key, r['tokens'])))} |"
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
        out.append(
            "| M | bits | N | kvpq cpu (M tokens/s) | peer | peer (M tokens/s) | ratio | goal | "
            "accelerator, one engine (M tokens/s): ECP5 / U55C |"
        )
        out.append("|---|---|---|---|---|---|---|---|---|")
        for key, r in s_kvpq.items():
            p = s_peer.get(key)
            if not p:
                continue
            ratio = r["tokens_per_s"] / p["tokens_per_s"]
            need = 1.0 if "FastScan" in p["peer"] else 2.0
            met = "met" if ratio >= need else "missed"
            a = accel.get(key)
            rate = (
                f"{key[2] / a['query_us_ecp5']:.0f} / {key[2] / a['query_us_u55c']:.0f}" if a else "-"
            )
            out.append(
                f"| {key[0]} | {key[1]} | {key[2]} | {r['tokens_per_s'] / 1e6:.1f} | {p['peer']} | "
                f"{p['tokens_per_s'] / 1e6:.1f} | {ratio:.2f} | >= {need:.0f}x: {met} | {rate} |"
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
    if gpu_path is not None:
        out += gpu_table(read_rows(gpu_path), accel, gpu_path)
    if accel:
        out += accel_table(accel, machine)
    return "\n".join(out)


def per_query(a: dict | None) -> str:
    """An accelerator row's microseconds per query at the ECP5 Fmax and on the U55C."""
    return f"{a['query_us_ecp5']:.1f} / {a['query_us_u55c']:.1f}" if a else "-"


def gpu_table(rows: list[dict], accel: dict, path: pathlib.Path) -> list[str]:
    """One layer's retrieval on the GPU machine: kvpq's `gpu` device against PyTorch."""
    if not rows:
        return []
    # Rounds of both sides: each point's median over them.
    groups: dict = {}
    for r in rows:
        groups.setdefault((r["peer"], r["tokens"]), []).append(r)
    points = {
        key: dict(
            rs[0],
            **{f: float(np.median([r[f] for r in rs])) for f in ("seconds", "search_seconds") if f in rs[0]},
        )
        for key, rs in groups.items()
    }
    kv = {n: r for (peer, n), r in points.items() if peer == "kvpq gpu"}
    peers = {key: r for key, r in points.items() if key[0] != "kvpq gpu"}
    rounds = max(len(rs) for rs in groups.values())
    any_row = next(iter(kv.values()))
    host = next((r["device"] for r in rows if r["peer"] == "pytorch cpu"), "the host")
    out = [
        f"## One layer's retrieval on a GPU ({any_row['device']}, host {any_row['host']}, "
        f"{any_row['date']}; {any_row['heads']} KV heads, M = {any_row['m']}, "
        f"b = {any_row['bits']}, k = 5 % of N; medians of {rounds} alternating rounds of both "
        "sides)\n",
        f"From `{path}`, written on that machine by `bash scripts/bench-peers-gpu.sh` (which "
        "`bash scripts/bench-peers.sh` runs where a GPU is present). kvpq: `select_into`, the "
        "decoding loop's path, to the stream's completion (`search`, with the hits copied to "
        "the host, beside it). PyTorch: float LUT (einsum), gather of each token's M "
        "entries, `torch.topk(sorted=False)`, to the result's completion, eager, as a "
        f"captured CUDA graph, and on the host ({host}). Agreement: the share of kvpq's "
        f"integer-path hits PyTorch's float selection also picks (with "
        f"{(1 << any_row['bits']) ** any_row['m']:,} distinct scores per head, ties at the "
        "threshold are broken differently). The accelerator column is "
        "the projected `kvpq_krnl` layer call on a U55C at 250 MHz (section below).\n",
        "| N | k | kvpq gpu (us) | kvpq gpu, hits to host (us) | PyTorch eager (us) | ratio | "
        "PyTorch CUDA graph (us) | ratio | PyTorch on the host (us) | ratio | agreement "
        "(GPU / host) | accelerator layer call, U55C (us) |",
        "|---|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for n, r in sorted(kv.items()):
        us = r["seconds"] * 1e6
        cells = []
        for peer in ("pytorch cuda", "pytorch cuda graph", "pytorch cpu"):
            p = peers.get((peer, n))
            cells.append(f"{p['seconds'] * 1e6:.1f} | {p['seconds'] * 1e6 / us:.1f}x" if p else "- | -")
        agree = "/".join(
            f"{peers[(p, n)]['agreement']:.3f}" for p in ("pytorch cuda", "pytorch cpu") if (p, n) in peers
        )
        a = accel.get((r["m"], r["bits"], n))
        fpga = f"{a['layer_us_u55c']:.1f}" if a else "-"
        out.append(
            f"| {n} | {r['k']} | {us:.1f} | {r['search_seconds'] * 1e6:.1f} | {' | '.join(cells)} | "
            f"{agree} | {fpga} |"
        )
    out.append("")
    return out


def accel_table(accel: dict, machine: str) -> list[str]:
    """The accelerator's cycles per query and per layer call, projected at two clocks."""
    a0 = next(iter(accel.values()))
    out = [
        f"## The accelerator, projected ({machine}; co-simulated in Verilator where marked)\n",
        f"Per query: cycles between back-to-back queries of one engine (LUT build, scan and "
        f"top-k overlapped as the engine runs them). Per layer call: `kvpq_krnl` answering "
        f"one query per KV head ({a0.get('layer_jobs', 8)}) on its engines, from ap_start to "
        f"the last result. Clocks: the ECP5 Fmax recorded by the board build "
        f"({a0['ecp5_mhz']:.1f} MHz, examples/pqcache-ulx3s.toml) and "
        f"{a0['u55c_mhz']:.0f} MHz on an Alveo U55C. HBM: the bytes a layer call moves over "
        f"its duration at {a0['u55c_mhz']:.0f} MHz, as a share of the U55C's 460 GB/s.\n",
        "| M | bits | N | k | lanes | engines | co-simulated | cycles per query | model | "
        "per query (us): ECP5 / U55C | cycles per layer call | model | layer call (us): "
        "ECP5 / U55C | HBM (GB/s) | HBM share | fits an ECP5-85k |",
        "|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for key in sorted(accel):
        a = accel[key]
        cosim = " + ".join(a.get("cosim_parts") or []) or "no (model)"
        out.append(
            f"| {key[0]} | {key[1]} | {key[2]} | {a['k']} | {a['lanes']} | {a['engines']} | {cosim} | "
            f"{a['query_cycles']} | {a['query_cycles_model']} | {per_query(a)} | "
            f"{a['layer_cycles']} | {a['layer_cycles_model']} | "
            f"{a['layer_us_ecp5']:.1f} / {a['layer_us_u55c']:.1f} | {a['hbm_gbps']:.1f} | "
            f"{a['hbm_share'] * 100:.1f} % | {'yes' if a.get('ecp5_valid') else 'no'} |"
        )
    notes = sorted({n for a in accel.values() for n in a.get("notes") or []})
    if notes:
        out.append("")
        out += [f"- {n}" for n in notes]
    out.append("")
    return out


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
    g = sub.add_parser("gpu")
    g.add_argument("--data", type=pathlib.Path, required=True)
    g.add_argument("--tokens", default="32768,131072,524288")
    g.add_argument("--reps", type=int, default=50)
    r = sub.add_parser("report")
    r.add_argument("--rows", type=pathlib.Path, required=True)
    r.add_argument("--machine", default="this machine")
    r.add_argument("--gpu-rows", type=pathlib.Path, default=None)
    args = p.parse_args()
    if args.command == "report":
        print(report(args.rows, args.machine, args.gpu_rows))
    elif args.command == "quality":
        quality(args.data, args.grid.split(","), args.k_frac)
    elif args.command == "train":
        train(args.data, args.grid.split(","), args.iters)
    elif args.command == "gpu":
        gpu(args.data, [int(t) for t in args.tokens.split(",")], args.reps)
    elif args.command == "speed":
        speed(args.data, args.grid.split(","), [int(t) for t in args.tokens.split(",")], args.reps)


if __name__ == "__main__":
    main()
