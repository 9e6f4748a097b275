"""The Markdown page of benchmarks/scale.py: one table per section from the results dict it writes as JSON."""

from __future__ import annotations

from typing import Any

K = 10


def write_markdown(results: dict[str, Any]) -> str:
    env, log = results["environment"], results["log"]
    lines = ["# scale: prepare, two-tower training, FAISS index on a power-law log", "",
             f"Machine: {env['cpu_count']} CPUs ({env['cpu']}), {env['memory_GB']} GB RAM, Python {env['python']}, "
             + ", ".join(f"{name} {version}" for name, version in env["packages"].items() if version)
             + f"; {env['java'] or 'no Java'}. Load average at the last run's start: {env['load_average']}; "
             f"{env['date']}.", "",
             "Commands (latest last; `--only` reruns update their rows, the others are kept):", "",
             *[f"    {command}" for command in results["commands"]], "",
             (f"Log: {log['events']:,} events, {log['items']:,} items, {log['users']:,} users "
             f"(Zipf exponents: items {log['item_exponent']}, users {log['user_exponent']}; every user and item has "
             f">= 1 event; no taste structure), {log['format']}, seed {log['seed']}; "
             "`benchmarks/power_law_log.py`."), "",
             ("Memory: peak of the summed RSS of the step's whole process tree (sampled every 0.1 s; the Spark JVM "
             "and its workers included); 'sum of peaks' adds each process's own peak (VmHWM), an upper bound."), ""]
    lines += generate_section(results.get("generate"))
    lines += prepare_section(results["prepare"])
    lines += train_section(results["train"])
    lines += index_section(results["index"])
    lines += service_section(results.get("service_http"))
    return "\n".join(lines) + "\n"


def table(header: list[str], rows: list[list[Any]]) -> list[str]:
    def cell(value: Any) -> str:
        if isinstance(value, bool) or value is None:
            return "-" if value is None else str(value)
        return f"{value:,}" if isinstance(value, int) else str(value)

    return ["| " + " | ".join(header) + " |", "|" + "---|" * len(header),
            *["| " + " | ".join(cell(value) for value in row) + " |" for row in rows], ""]


def generate_section(row: dict[str, Any] | None) -> list[str]:
    if not row:
        return []
    sizes = ", ".join(f"{name} {size / 2**20:,.0f} MB" for name, size in row["file_bytes"].items())
    return ["## generating the log", "", f"{row['generation_s']} s to generate and write ({sizes}); "
            f"peak tree RSS {row['peak_tree_rss_MB']:,} MB"
            + (" (of a run that reused the files: see an earlier run for the memory)" if row["reused"] else "")
            + ".", ""]


def prepare_section(rows: dict[str, dict[str, Any]]) -> list[str]:
    if not rows:
        return []
    header = ["engine", "status", "wall s", "CPU s", "events/s", "peak tree RSS MB", "sum of peaks MB", "processes",
              "interactions kept", "users", "items", "output MB", "load avg before / after"]
    body = []
    for engine, row in rows.items():
        counts = row.get("counts", {})
        body.append([engine, row["status"], row["wall_s"], row.get("cpu_s"), row.get("events_per_s"),
                     row["peak_tree_rss_MB"], row["sum_of_process_peaks_MB"], row["processes"],
                     counts.get("interactions"), counts.get("users"), counts.get("items"), row.get("output_MB"),
                     load(row)])
    lines = ["## prepare (`foryou prepare CONFIG [--engine spark]`, writing the Parquet dataset)", "",
             *table(header, body)]
    for engine, row in rows.items():
        if row["status"] != "ok":
            lines += [f"{engine}: the last lines of its output:", "", "```", *row.get("error_tail", []), "```", ""]
    spark, pandas = rows.get("spark", {}), rows.get("pandas", {})
    if spark.get("counts") and pandas.get("counts"):
        same = spark["counts"] == pandas["counts"]
        lines += [f"Spark and pandas counts {'match' if same else 'DIFFER'}.", ""]
    return lines


def train_section(rows: dict[str, Any]) -> list[str]:
    if not rows:
        return []
    lines = ["## two-tower training throughput (sampled softmax)", ""]
    if "skipped" in rows:
        return [*lines, f"Skipped: {rows['skipped']}", ""]
    measured = {key: row for key, row in rows.items() if "samples_per_s" in row}
    header = ["device, batch", "status", "s/step", "CPU s/step", "catalog pass s", "optimizer s/step", "targets/step",
              "samples/s", "setup s", "est. epoch (last window)", "est. epoch (whole history)", "peak tree RSS MB",
              "load avg before / after"]
    body = [[key, row["status"], row.get("s_per_step"), row.get("cpu_s_per_step"), catalog(row),
             row.get("optimizer_s_per_step", "-"), row.get("targets_per_step"), row.get("samples_per_s"),
             row.get("setup_s"),
             epoch(row.get("epoch_last_window")), epoch(row.get("epoch_whole_history")), row.get("peak_tree_rss_MB"),
             load(row)] for key, row in rows.items()]
    lines += table(header, body)
    if measured:
        lines += train_notes(next(iter(measured.values())))
    return lines


def train_notes(first: dict[str, Any]) -> list[str]:
    return [(f"`TwoTower.fit` on the train split ({first['train_events']:,} events, {first['train_users']:,} "
             f"users, {first['catalog_items']:,} items) with `training_batches` capped at {first['warmup_steps']} "
             f"untimed + {first['steps_timed']} timed steps: the model `foryou train` fits on this log (the "
             f"data-shaped defaults of foryou.tuning.shape: {first['model']}) with loss {first['loss']} (shared "
             "negatives + in-batch) and the row's batch size. samples = next-event targets; CPU s/step counts "
             "every thread (2 threads: up to 2x s/step). setup = histories, item features and the module before the "
             "first step. catalog pass = the item tower over every catalog item, forward + backward, timed alone "
             "after the steps (median of 3): not part of a sampled-softmax step, which encodes only the distinct "
             "items it reads (histories, targets, negatives); a full-softmax step pays it. optimizer s/step = the "
             "mean time of the timed steps' optimizer updates, part of s/step: "
             f"{first.get('parameters', 0):,} parameters, {first.get('embedding_table_parameters', 0):,} in "
             "embedding tables, the item-id table "
             + ("sparse (SparseAdam updates the rows a step read, AdamW the rest)" if first.get("sparse_id_table")
                else "dense (AdamW updates every row every step)")
             + ". Epoch estimates = steps per epoch x s/step (last window: train.whole_history false, what the shaped defaults pick at this size; whole history: every event a "
             "target)."), "",
            ("A sampled-softmax step encodes the batch's items, not the catalog, and updates the id rows it read. "
             "Full softmax is not run: it adds a (targets x catalog) logit matrix per step (about 1 GB per 250 "
             "targets at 1M items) and is not what one trains at this size: the data-shaped defaults pick sampled "
             "softmax once train events x items passes 2e9 logits an epoch."), ""]


def catalog(row: dict[str, Any]) -> str:
    if "catalog_forward_backward_s" not in row:
        return "-"
    return f"{row['catalog_forward_backward_s']} ({row['catalog_forward_s']} + backward)"


def load(row: dict[str, Any]) -> str:
    """The 1-minute load average when the step started and ended (2 cores: above 2, the step shared them)."""
    found = row.get("load_average_1min")
    return "-" if not found else f"{found[0]} / {found[1]}"


def epoch(value: dict[str, Any] | None) -> str:
    if not value:
        return "-"
    return f"{duration(value['estimated_s'])} ({value['steps']:,} steps)"


def duration(seconds: float) -> str:
    if seconds < 120:
        return f"{seconds:.0f} s"
    return f"{seconds / 60:.0f} min" if seconds < 7200 else f"{seconds / 3600:.1f} h"


def latency(row: dict[str, Any], shape: str) -> str:
    found = row.get("latency_ms", {}).get(shape)
    return "-" if found is None else f"{found['p50_ms']} / {found['p99_ms']}"


def index_section(rows: dict[str, Any]) -> list[str]:
    if not rows:
        return []
    inputs = rows.get("inputs", {})
    header = ["kind", "settings", "status", "build s", f"recall@{K}", "plain p50 / p99 ms", "10 seen denied",
              "category filter", "memory estimate MB", "RSS added MB", "peak tree RSS MB"]
    body = [[kind, row.get("settings"), row["status"], row.get("build_s"), row.get(f"recall@{K}"),
             latency(row, "plain"), latency(row, "10 seen denied"), latency(row, "category filter"),
             row.get("memory_estimate_MB"), row.get("rss_added_by_build_MB"), row.get("peak_tree_rss_MB")]
            for kind, row in rows.items() if kind != "inputs"]
    sizes: dict[str, int] = next((row["category_filter_sizes"] for kind, row in rows.items() if "category_filter_sizes" in row), {})
    return ["## FAISS index (the service's query path, without HTTP)", "",
            (f"{inputs.get('items', 0):,} synthetic unit vectors, d={inputs.get('dim')} "
            f"({inputs.get('categories')} categories from the generated items table), {inputs.get('queries', 0):,} "
            "queries; exact / HNSW / IVF through `foryou.index.build_index` at the `index` defaults, IVF-PQ as raw "
            "faiss (not an `index.kind`: no filters, memory = its serialized size). Latency: one "
            "`VectorIndex.search(query, k=10[, denied=, allowed=])` per call on 1 faiss thread, as the service "
            "calls it; '10 seen denied' excludes 10 items, 'category filter' allows only the items of one "
            f"category drawn by catalog share (median {sizes.get('median', 0):,} items, smallest "
            f"{sizes.get('min', 0):,}). Builds on every core. Memory estimate: `VectorIndex.memory_bytes()`; "
            "RSS added: the step's RSS after the build minus before."), "", *table(header, body)]


def service_section(quote: dict[str, Any] | None) -> list[str]:
    if not quote:
        return []
    body = [[row["route"], row["requests"], row["concurrency"], row["p50_ms"], row["p99_ms"], row["requests_per_s"]]
            for row in quote["rows"]]
    return ["## the HTTP service at 1M items (quoted from serve_latency, not rerun here)", "",
            (f"From `{quote['source']}` ({quote['date']}, `{quote['command']}`): {quote['bundle']}, "
            f"{quote['items']:,} items through {quote['index']} (built in {quote['hnsw_build_s']} s at "
            f"efConstruction 64), one uvicorn worker, wrk on the same machine; load {quote['load_s']} s, "
            f"RSS {quote['rss_MB']:,} MB (the {quote['baseline_bundle']['name']} bundle alone, "
            f"{quote['baseline_bundle']['items']:,} items: load {quote['baseline_bundle']['load_s']} s, RSS "
            f"{quote['baseline_bundle']['rss_MB']:,} MB)."), "",
            *table(["route", "requests", "concurrency", "p50 ms", "p99 ms", "requests/s"], body)]
