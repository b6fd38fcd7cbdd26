"""Remote inference on localhost: per-interaction latency local vs remote, wire bytes, concurrent clients.

One run, the same engine in both places: a simulated user (``nninteractive-eval``'s random agent,
one seed) segments every object of a synthetic CT-sized volume through a
:class:`~napari_nninteractive.core.remote.client.RemoteSession` on an ``nninteractive-serve``
started in this process (127.0.0.1, ephemeral port), and every prompt also goes to a local
session (in alternating order); the two masks must stay identical. Printed:

* latency per interaction, local and remote: median, p95, and the ratio of the medians;
* bytes sent and received per interaction (bodies and headers), and their ratio to the changed
  box compressed as the server sends it (NNIA, Zstd);
* N concurrent clients (N = 1, 2, 4) on one server, each with its own session and object: all
  complete without errors?, throughput (interactions per second) and p95 latency.

Default: the weight-free engine. ``--model DIR`` uses the nnInteractive network from a model
folder instead (CPU here: seconds per forward pass). Run on an otherwise idle machine:

    python benchmarks/remote.py
    python benchmarks/remote.py --shape 64,160,160 --interactions 4 --clients 1,2   # quicker
"""

from __future__ import annotations

import argparse
import statistics
import threading
import time
from typing import Any

import numpy as np

from napari_nninteractive.core.api import Change
from napari_nninteractive.core.prompts import Point
from napari_nninteractive.core.remote import wire
from napari_nninteractive.core.remote.client import RemoteSession
from napari_nninteractive.core.session import Session
from napari_nninteractive.eval.runner import evaluate
from napari_nninteractive.server import BackgroundServer, EngineSource, ServerConfig, network_source, weight_free_source
from napari_nninteractive.testing import synthetic_volume


class Timed:
    """A session wrapper that records every interaction: seconds, bytes on the wire, compressed changed box."""

    def __init__(self, session: Any):
        self.session = session
        self.records: list[dict[str, float]] = []

    def __getattr__(self, name: str) -> Any:
        return getattr(self.session, name)

    def add_prompts(self, prompts, run: bool = True) -> Change:
        traffic = getattr(self.session, "traffic", None)
        sent, received = (traffic.sent, traffic.received) if traffic else (0, 0)
        t0 = time.perf_counter()
        change = self.session.add_prompts(prompts, run)
        seconds = time.perf_counter() - t0
        box = len(wire.encode(change.values)) if change.values is not None else 0
        rec = {"seconds": seconds, "box_bytes": box}
        if traffic:
            rec |= {"sent": traffic.sent - sent, "received": traffic.received - received}
        self.records.append(rec)
        return change


class Twin(Timed):
    """The remote session driven by the simulated user, with a local twin given every prompt too.

    Each interaction runs on both, in alternating order (so neither always goes first), and must
    give the same voxels; ``records`` pair the two times.
    """

    def __init__(self, remote: Any, local: Any):
        super().__init__(remote)
        self.local = local
        self.identical = True

    def set_image(self, image: np.ndarray) -> None:
        self.local.set_image(image)
        self.session.set_image(image)

    def reset_object(self) -> Change:
        self.local.reset_object()
        return self.session.reset_object()

    def add_prompts(self, prompts, run: bool = True) -> Change:
        remote_first = len(self.records) % 2 == 1
        if remote_first:
            change = super().add_prompts(prompts, run)
        t0 = time.perf_counter()
        self.local.add_prompts(prompts, run)
        local_seconds = time.perf_counter() - t0
        if not remote_first:
            change = super().add_prompts(prompts, run)
        self.records[-1]["local_seconds"] = local_seconds
        self.identical &= bool(np.array_equal(self.local.read_mask(), self.session.read_mask()))
        return change


def pct(values: list[float], q: float) -> float:
    return float(np.percentile(values, q)) if values else float("nan")


def one_user(session: Any, image: np.ndarray, labels: np.ndarray, n: int, seed: int, values=None):
    timed = session if isinstance(session, Timed) else Timed(session)
    timed.set_image(image)
    runs = evaluate(timed, labels, ["random"], n, seed, values)
    return timed.records, [r.dices for r in runs]


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--shape", default="96,256,256", help="synthetic volume z,y,x (default 96,256,256)")
    p.add_argument("--interactions", type=int, default=6, help="corrections after the first prompt (default 6)")
    p.add_argument("--clients", default="1,2,4", help="concurrent client counts (default 1,2,4)")
    p.add_argument("--model", default=None, help="nnInteractive model folder (default: weight-free engine)")
    p.add_argument("--seed", type=int, default=0)
    args = p.parse_args(argv)
    shape = tuple(int(v) for v in args.shape.split(","))
    image, labels = synthetic_volume(shape, seed=1)
    image = (image * 10).astype(np.int16)  # CT-like integers: what scanners store
    if args.model:
        source: EngineSource = network_source(args.model, device="cpu")
    else:
        source = weight_free_source()
    print(f"volume {shape} int16, {len(np.unique(labels)) - 1} objects, engine: {source.facts.description}")

    counts = [int(c) for c in args.clients.split(",")]
    config = ServerConfig(max_sessions=max(counts) + 1, autozoom=True)
    with BackgroundServer(config, source) as server:
        with RemoteSession(server.url) as warm:  # warm up both paths on one object
            one_user(Twin(warm, Session(source.factory())), image, labels, 1, args.seed, [1])
        t0 = time.perf_counter()
        remote = RemoteSession(server.url)
        twin = Twin(remote, Session(source.factory()))
        remote_records, _ = one_user(twin, image, labels, args.interactions, args.seed)
        print(f"local + remote sessions incl. image upload: {time.perf_counter() - t0:.1f} s")
        upload = remote.traffic
        trips = []  # requests without engine work: a queued point, then its undo
        for _ in range(20):
            t = time.perf_counter()
            remote.add_prompts([Point((shape[0] // 2, shape[1] // 2, shape[2] // 2))], run=False)
            remote.undo()
            trips.append((time.perf_counter() - t) / 2)
        remote.close()

        lt = [r["local_seconds"] for r in remote_records]
        rt = [r["seconds"] for r in remote_records]
        paired = [r / l_ for r, l_ in zip(rt, lt)]
        print(
            f"\nper interaction ({len(lt)} interactions, each run locally and remotely; masks identical: {twin.identical})"
        )
        print(f"  local : median {statistics.median(lt) * 1000:7.1f} ms   p95 {pct(lt, 95) * 1000:7.1f} ms")
        print(f"  remote: median {statistics.median(rt) * 1000:7.1f} ms   p95 {pct(rt, 95) * 1000:7.1f} ms")
        ratio = statistics.median(rt) / statistics.median(lt)
        print(
            f"  remote/local: ratio of medians {ratio:.3f}, median of paired ratios {statistics.median(paired):.3f} "
            f"(overhead {100 * (statistics.median(paired) - 1):+.1f} %; goal <= +10 %)"
        )
        overhead = [r - l_ for r, l_ in zip(rt, lt)]
        print(f"  added per interaction: median {statistics.median(overhead) * 1000:.1f} ms")
        print(
            f"  one request without engine work (protocol, HTTP, server bookkeeping): median "
            f"{statistics.median(trips) * 1000:.1f} ms = {100 * statistics.median(trips) / statistics.median(lt):.1f} % "
            "of a local interaction"
        )

        sent = [r["sent"] for r in remote_records]
        recv = [r["received"] for r in remote_records]
        wire_ratio = [(r["sent"] + r["received"]) / r["box_bytes"] for r in remote_records if r["box_bytes"]]
        big = [(r["sent"] + r["received"]) / r["box_bytes"] for r in remote_records if r["box_bytes"] >= 1024]
        print("\nbytes per interaction")
        print(f"  sent median {statistics.median(sent):.0f} B, received median {statistics.median(recv):.0f} B")
        print(
            f"  compressed changed box median {statistics.median([r['box_bytes'] for r in remote_records]):.0f} B; "
            f"wire/box ratio median {statistics.median(wire_ratio):.2f}, max {max(wire_ratio):.2f} (goal <= 2)"
        )
        within = sum(r <= 2 for r in wire_ratio)
        print(f"  interactions within 2x: {within} of {len(wire_ratio)}")
        if big:
            print(f"  boxes of 1 KB or more ({len(big)}): wire/box ratio median {statistics.median(big):.2f}")
        print("  (the rest is HTTP headers and the prompt: about 0.5 KB per interaction whatever the box)")
        print(f"  whole first session: {upload.sent / 1e6:.2f} MB sent (image {image.nbytes / 1e6:.1f} MB raw)")

        print("\nconcurrent clients (one session and one object each)")
        objects = [int(v) for v in np.unique(labels) if v]
        for n in counts:
            latencies: list[float] = []
            errors: list[str] = []

            def client(i: int, latencies: list[float] = latencies, errors: list[str] = errors) -> None:
                try:
                    with RemoteSession(server.url) as session:
                        records, _ = one_user(
                            session, image, labels, args.interactions, args.seed + i, [objects[i % len(objects)]]
                        )
                        latencies.extend(r["seconds"] for r in records)
                except Exception as exc:  # counted and shown
                    errors.append(f"{type(exc).__name__}: {exc}")

            threads = [threading.Thread(target=client, args=(i,)) for i in range(n)]
            t0 = time.perf_counter()
            for t in threads:
                t.start()
            for t in threads:
                t.join(timeout=1800)
            wall = time.perf_counter() - t0
            hung = sum(t.is_alive() for t in threads)
            print(
                f"  N={n}: {len(latencies)} interactions in {wall:.1f} s (incl. uploads) -> "
                f"{len(latencies) / wall:.2f}/s, p95 {pct(latencies, 95) * 1000:.0f} ms, "
                f"errors {len(errors)}, unfinished {hung}"
            )
            for e in errors[:3]:
                print(f"    {e}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
