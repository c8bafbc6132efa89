"""Retrieval quality for ADR 0800: recall@1/3/5/10 per question kind on a labelled set,
through the product's own ingestion (``ingest``), query choice (``prepare``) and search
(``search``), on the Firestore emulator with the fake's wordllama embeddings.

Run: ``functions/venv/bin/python -m bench.kb_eval tests/data/kb2`` from the repo root
(``--json FILE`` also writes the figures; settings such as ``PASSAGE_CHARS``,
``RETRIEVAL_CANDIDATES`` or ``RETRIEVAL_LEXICAL_PASSAGES`` are read from the environment, as the functions read them). A set is a folder of ``.md``/``.txt`` documents
(the id is the file's stem) and ``questions.json``: ``question``, ``document``, ``answer``
(text the passage must contain) and ``kind``. A question counts as found at k when a search
with ``top_k`` k returns a passage of its document that contains its answer; its "rank" in
the JSON is the smallest such k of 1, 3, 4, 5, 10.

Two query modes: ``variable`` (the prompt names ``question`` as its
``retrieval_query_variable``) and ``default`` (it names none: the product's default query
for a prompt with one variable inside a template).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
from collections import defaultdict
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path[:0] = [str(ROOT / "functions")]

from bench.kb_retrieval import local_kb  # noqa: E402
from promptstream._config import Settings  # noqa: E402
from promptstream.knowledge import _search  # noqa: E402
from promptstream.knowledge._ingest import IngestLimits, ingest  # noqa: E402
from promptstream.knowledge._search import search  # noqa: E402
from promptstream.run._prepare import prepare  # noqa: E402
from promptstream.run._request import ExecuteRequest  # noqa: E402
from promptstream.store._prompts import Prompt  # noqa: E402

PROJECT = "demo-kb-eval"
KS = (1, 3, 4, 5, 10)
# A prompt as people write them: instructions around the one variable.
TEMPLATE = (
    "You answer questions for members of the public from the organisation's own "
    "documents. Use only the passages given, quote the sentence that answers, and say "
    "plainly when the answer is not there. Keep it short and friendly.\n\n"
    "Question: {{question}}"
)
MODES = ("variable", "default")


def load(folder: Path) -> tuple[dict[str, Path], list[dict[str, Any]]]:
    documents = {p.stem: p for p in sorted(folder.iterdir()) if p.suffix in (".md", ".txt")}
    questions = json.loads((folder / "questions.json").read_text())
    return documents, questions


def query_of(question: str, mode: str, settings: Settings) -> str:
    """The query the product searches with for ``question`` in this mode."""
    prompt = Prompt(
        id="eval",
        owner_uid="u",
        content=TEMPLATE,
        system_prompt=None,
        variables=[{"name": "question", "required": True}],
        public=False,
        document_ids=("d",),
        retrieval_query_variable="question" if mode == "variable" else None,
    )
    body = ExecuteRequest(prompt_id="eval", variables={"question": question})
    return prepare("u", body, prompt, settings).query


def table(results: dict[str, dict[str, list[int | None]]]) -> str:
    """Recall per kind and overall, one row per (mode, kind)."""
    lines = ["| mode | kind | n | " + " | ".join(f"@{k}" for k in KS) + " |"]
    lines.append("|---|---|---|" + "---|" * len(KS))
    for mode, by_kind in results.items():
        everything = [rank for ranks in by_kind.values() for rank in ranks]
        for kind, ranks in [*sorted(by_kind.items()), ("all", everything)]:
            cells = [f"{sum(r is not None and r <= k for r in ranks) / len(ranks):.2f}" for k in KS]
            lines.append(f"| {mode} | {kind} | {len(ranks)} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


async def evaluate(folder: Path, modes: tuple[str, ...]) -> dict[str, Any]:
    # The deployment's settings, so that PASSAGE_CHARS=... varies what the product would.
    settings = Settings.from_env()
    candidates = settings.retrieval_candidates
    documents, questions = load(folder)
    async with local_kb(PROJECT, batch_size=64) as kb:
        db, client = kb.db, kb.client
        passages = 0
        for name, path in documents.items():
            result = await ingest(
                db,
                client,
                owner_uid="u",
                document_id=name,
                data=path.read_bytes(),
                title=name,
                filename=path.name,
                limits=IngestLimits.from_settings(settings),
            )
            passages += result.passage_count
        results: dict[str, dict[str, list[int | None]]] = {}
        misses: dict[str, list[str]] = defaultdict(list)
        ranks: dict[str, list[int | None]] = defaultdict(list)
        for mode in modes:
            by_kind: dict[str, list[int | None]] = defaultdict(list)
            for item in questions:
                query = query_of(item["question"], mode, settings)
                rank = None
                # One search per k, with top_k = k as a run would ask: the candidates
                # each document gives depend on top_k.
                for k in KS:
                    found = await search(
                        db,
                        client,
                        owner_uid="u",
                        document_ids=list(documents),
                        query=query,
                        top_k=k,
                        candidates=candidates,
                        lexical_passages=settings.retrieval_lexical_passages,
                    )
                    if any(
                        s.document_id == item["document"] and item["answer"] in s.text
                        for s in found.sources
                    ):
                        rank = k
                        break
                by_kind[item.get("kind", "unlabelled")].append(rank)
                ranks[mode].append(rank)
                if rank is None or rank > 5:
                    misses[mode].append(item["question"])
            results[mode] = dict(by_kind)
    return {
        "set": str(folder),
        "documents": len(documents),
        "passages": passages,
        "questions": len(questions),
        "candidates": candidates,
        "passage_chars": settings.passage_chars,
        "lexical_passages": settings.retrieval_lexical_passages,
        "lexical_weight": _search.LEXICAL_WEIGHT,
        "results": results,
        "misses_at_5": dict(misses),
        "ranks": dict(ranks),
    }


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.kb_eval")
    parser.add_argument("folder", type=Path)
    parser.add_argument("--modes", default=",".join(MODES))
    parser.add_argument("--json", type=Path, help="also write the figures here")
    parser.add_argument("--misses", action="store_true", help="print the questions missed at 5")
    args = parser.parse_args()
    modes = tuple(m for m in args.modes.split(",") if m)
    figures = asyncio.run(evaluate(args.folder, modes))
    print(
        f"{figures['set']}: {figures['documents']} documents, {figures['passages']} passages, "
        f"{figures['questions']} questions; candidates {figures['candidates']}, "
        f"whole up to {figures['lexical_passages']} passages, "
        f"lexical weight {figures['lexical_weight']}"
    )
    print(table(figures["results"]))
    if args.misses:
        for mode, missed in figures["misses_at_5"].items():
            print(f"missed at 5 ({mode}): {missed}")
    if args.json:
        args.json.write_text(json.dumps(figures, indent=1) + "\n")


if __name__ == "__main__":
    main()
