"""PassageSpec's optional levers: a cap per article and skipping syndicated copies."""

from __future__ import annotations

from pathlib import Path

from conftest import write

from rag import Index
from rag.retrieve.passages import PassageSpec

TOPICS = ["ferry fares", "crane repairs", "container backlog", "night shifts", "safety rules",
          "pension talks", "union vote", "cargo losses", "truck queues", "berth fees"]
# Distinct paragraphs, so a query picks out the same passage in every copy of the story.
STORY = "Port strike ends\n\n" + "\n".join(
    f"On {t} the dock workers and the harbour board disagreed for weeks before the deal, "
    f"officials said, and {t} will be reviewed again next spring." for t in TOPICS * 3)


def _index(tmp_path: Path, fake) -> Index:
    write(tmp_path / "c" / "wire.txt", STORY)
    # A syndicated copy: the same wire text under another outlet's headline.
    write(tmp_path / "c" / "copy.txt", STORY.replace("Port strike ends", "Dock strike is over"))
    write(tmp_path / "c" / "other.txt", "Harbour news\n\nThe harbour ferry timetable changed.")
    return Index.build([tmp_path / "c"], tmp_path / "idx", embedder=fake, progress=False)


def test_per_article_caps_the_passages_of_one_article(tmp_path: Path, fake) -> None:
    idx = _index(tmp_path, fake)
    q = "cargo losses dock workers"
    assert max(sum(h.article_id == a for h in idx.search(q, k=5)) for a in ("wire.txt", "copy.txt")) > 1
    idx.passage = PassageSpec(per_article=1)
    ids = [h.article_id for h in idx.search(q, k=5)]
    assert len(ids) == len(set(ids)) == 3


def test_syndicated_copies_are_skipped(tmp_path: Path, fake) -> None:
    idx = _index(tmp_path, fake)
    q = "cargo losses dock workers"
    idx.passage = PassageSpec(per_article=1)
    assert {"wire.txt", "copy.txt"} <= {h.article_id for h in idx.search(q, k=5)}
    idx.passage = PassageSpec(per_article=1, same_story=0.8)
    ids = [h.article_id for h in idx.search(q, k=5)]
    assert len({"wire.txt", "copy.txt"} & set(ids)) == 1 and "other.txt" in ids
