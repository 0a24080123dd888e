"""`python -m tools.evaluate_faq [--scan]`: staff answers judged on the dev and blind sets, side by side.

Each set's entries and clinic details are published through the staff API of a real app (a temporary DATA_DIR),
then every patient message goes through POST /chat: a should-answer message must cite its entry, a should-not
message must not, an emergency must be routed as one, and a clinic-detail question must cite the detail.
`--scan` also prints, per threshold, how the matcher alone would do (to calibrate FAQ_THRESHOLD on dev).
"""

from __future__ import annotations

import argparse
import shutil
import tempfile
from pathlib import Path
from typing import Any

import numpy as np
import yaml
from pydantic import SecretStr

from bot.config import Settings
from bot.embeddings import make_embedder
from bot.faq import FaqIndex
from bot.faq_store import Content, Published

ROOT = Path(__file__).resolve().parent.parent
SETS = {"dev": ROOT / "tests" / "eval" / "faq_dev.yaml", "blind": ROOT / "tests" / "eval" / "faq_blind.yaml"}
STAFF, REVIEWER = "eval-staff-token-0123456789abcdef", "eval-reviewer-token-0123456789abcdef"


def _client(data: Path, embedder: Any, threshold: float | None) -> Any:
    from fastapi.testclient import TestClient

    from bot.api import create_app

    overrides: dict[str, Any] = {"faq_threshold": threshold} if threshold is not None else {}
    settings = Settings(_env_file=None, data_dir=data, knowledge_dir=ROOT / "knowledge",  # type: ignore[call-arg]
                        staff_token=SecretStr(STAFF), reviewer_token=SecretStr(REVIEWER), database_url=None,
                        chroma_host=None,
                        redis_url=None, rate_limit_chat="1000000/minute", rate_limit_search="1000000/minute",
                        **overrides)
    return TestClient(create_app(settings, embedder=embedder, load_in_background=False))


def _publish(c: Any, spec: dict[str, Any]) -> dict[str, str]:
    """Publish a set's entries and details; entry id -> the source its citations carry."""
    staff, reviewer = {"Authorization": f"Bearer {STAFF}"}, {"Authorization": f"Bearer {REVIEWER}"}
    sources = {}
    for e in spec.get("entries", []):
        r = c.post("/staff/api/faq", headers=staff, json={"question": e["question"], "answer": e["answer"],
                                                         "applies_to": e.get("applies_to", []), "author": "eval"})
        r.raise_for_status()
        entry = c.post(f"/staff/api/faq/{r.json()['id']}/publish", headers=staff, json={"actor": "eval"}).json()
        if entry["status"] == "pending":
            c.post(f"/staff/api/faq/{entry['id']}/approve", headers=reviewer, json={"actor": "reviewer"})
        sources[e["id"]] = f"faq/{entry['slug']}"
    for key, d in (spec.get("clinic_details") or {}).items():
        entry = c.put(f"/staff/api/clinic-details/{key}", headers=staff, json={"value": d["value"],
                                                                               "author": "eval"}).json()
        if entry["status"] == "pending":
            c.post(f"/staff/api/faq/{entry['id']}/approve", headers=reviewer, json={"actor": "reviewer"})
        sources[f"detail:{key}"] = f"faq/{key}"
    return sources


def run_set(name: str, embedder: Any, built: Path, threshold: float | None = None) -> dict[str, list[Any]]:
    """Every case of one set through the real pipeline: (passed, total, misses) per group."""
    spec = yaml.safe_load(SETS[name].read_text(encoding="utf-8"))
    data = Path(tempfile.mkdtemp(prefix=f"faq-eval-{name}-")) / "data"
    shutil.copytree(built, data)
    results: dict[str, list[Any]] = {g: [0, 0, []] for g in ("should_answer", "should_not_answer", "emergency",
                                                             "clinic_detail")}

    def judge(group: str, ok: bool, message: str, got: dict[str, Any]) -> None:
        results[group][1] += 1
        results[group][0] += ok
        if not ok:
            results[group][2].append((message, got["kind"], [x["title"] for x in got["citations"]]))

    with _client(data, embedder, threshold) as c:
        sources = _publish(c, spec)

        def ask(message: str) -> dict[str, Any]:
            return dict(c.post("/chat", json={"message": message}).json())

        for e in spec.get("entries", []):
            for m in e.get("should_answer", []):
                got = ask(m)
                judge("should_answer", any(x["source"] == sources[e["id"]] for x in got["citations"]), m, got)
            for m in e.get("should_not_answer", []):
                got = ask(m)
                judge("should_not_answer", all(x["source"] != sources[e["id"]] for x in got["citations"]), m, got)
        for m in spec.get("emergencies", []):
            got = ask(m)
            judge("emergency", got["kind"] == "emergency" and not got["citations"], m, got)
        for key, d in (spec.get("clinic_details") or {}).items():
            for m in d["questions"]:
                got = ask(m)
                judge("clinic_detail", any(x["source"] == sources[f"detail:{key}"] for x in got["citations"]), m, got)
    shutil.rmtree(data.parent, ignore_errors=True)
    return results


def scan(name: str, embedder: Any) -> None:
    """The matcher alone at several thresholds: should-answer recall and should-not false matches."""
    spec = yaml.safe_load(SETS[name].read_text(encoding="utf-8"))
    items = []
    for n, e in enumerate(spec["entries"]):
        texts = [e["question"], *e.get("applies_to", [])]
        items.append(Published(n, "faq", e["id"], n, Content(e["question"], e["answer"], e.get("applies_to", [])),
                               np.asarray(embedder.embed(texts), dtype=np.float32), embedder.name))
    from bot.understanding import make_understander

    understander = make_understander(embedder, None)
    for item in items:
        assert item.vectors is not None
        item.fact = understander.understand(item.content.question, item.vectors[0]).fact
    index = FaqIndex(items)
    pos, neg = [], []

    def ranked(m: str) -> list[Any]:
        vec = np.asarray(embedder.embed([m])[0])
        return index.scores(vec, m, understander.understand(m, vec).fact)

    for e in spec["entries"]:
        for m in e.get("should_answer", []):
            top = ranked(m)[0]
            pos.append(top.score if top.item.slug == e["id"] else -1.0)
        for m in e.get("should_not_answer", []):
            neg.append(next(h for h in ranked(m) if h.item.slug == e["id"]).score)
    print(f"{name}: matcher alone ({len(pos)} should-answer, {len(neg)} should-not)")
    for t in np.arange(0.45, 0.86, 0.05):
        rec = sum(s >= t for s in pos) / len(pos)
        fp = sum(s >= t for s in neg) / len(neg)
        print(f"  threshold {t:.2f}: recall {rec:6.1%}   false matches {fp:6.1%}")


def main() -> None:
    """Print dev and blind side by side."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--scan", action="store_true", help="also print the matcher alone per threshold")
    parser.add_argument("--threshold", type=float, default=None, help="FAQ_THRESHOLD to run with")
    args = parser.parse_args()
    embedder = make_embedder(Settings(_env_file=None))  # type: ignore[call-arg]
    if args.scan:  # dev only: the threshold is chosen without looking at the blind set
        scan("dev", embedder)
    from bot.index import IndexStore
    from bot.indexing import ingest

    built = Path(tempfile.mkdtemp(prefix="faq-eval-built-")) / "data"
    ingest(ROOT / "knowledge", IndexStore(Settings(_env_file=None, data_dir=built)),  # type: ignore[call-arg]
           embedder, progress=False)
    runs = {name: run_set(name, embedder, built, args.threshold) for name in SETS}
    print(f"\n{'group':<20}" + "".join(f"{n:>16}" for n in runs))
    for group in ("should_answer", "should_not_answer", "emergency", "clinic_detail"):
        cells = [f"{r[group][0]}/{r[group][1]}" + (f" ({r[group][0] / r[group][1]:.0%})" if r[group][1] else "")
                 for r in runs.values()]
        print(f"{group:<20}" + "".join(f"{c:>16}" for c in cells))
    for name, r in runs.items():
        for group, (_ok, _total, misses) in r.items():
            for message, kind, cites in misses:
                print(f"  miss [{name} {group}] {message!r} -> {kind} {cites}")
    shutil.rmtree(built.parent, ignore_errors=True)


if __name__ == "__main__":
    main()
