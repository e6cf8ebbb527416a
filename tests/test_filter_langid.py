"""Language id over a whole batch gives exactly what fastText's own per-document `predict` gives."""

from __future__ import annotations

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pytest

from phi4cli.io import read_table
from phi4cli.stages.filter.langid import LABEL_PREFIX, NOT_LETTERS, LanguageId

pytest.importorskip("fasttext")


@pytest.fixture(scope="module")
def web_texts(tmp_path_factory) -> pa.Array:
    from phi4cli.demo import write_toy_world

    root = tmp_path_factory.mktemp("langid")
    write_toy_world(root / "world", seed=0, scale=0.2)
    texts = read_table([str(root / "world" / "web")]).column("text").to_pylist()
    # and what the batch path treats specially: repeats, empty, null, only non-letters, a long page
    texts += [texts[0], texts[3], "", None, "1 + 2 = 3; {}[]\n\n", "Der Hund schläft. " * 400, texts[0]]
    return pa.array(texts, pa.string())


def one_by_one(langid: LanguageId, texts: pa.Array) -> tuple[list[str], np.ndarray]:
    """The unbatched reference: normalise each document alone, one `model.predict` per document."""
    languages, scores = [], []
    for text in texts.to_pylist():
        one = pa.array([text or ""], pa.string())
        line = pc.replace_substring_regex(pc.utf8_slice_codeunits(one, 0, langid.max_chars), NOT_LETTERS, " ")
        labels, probs = langid.model.predict(line[0].as_py(), k=1, threshold=0.0)
        languages.append(labels[0].removeprefix(LABEL_PREFIX) if labels else "")
        scores.append(min(float(probs[0]), 1.0) if labels else 0.0)
    return languages, np.array(scores, dtype=np.float32)


def test_batched_language_id_equals_one_call_per_document(web_texts):
    langid = LanguageId()
    languages, scores = langid.identify(web_texts)
    expected_languages, expected_scores = one_by_one(langid, web_texts)
    assert languages == expected_languages
    assert scores.dtype == np.float32 and np.array_equal(scores, expected_scores)  # bit for bit, not close
    assert {"en", "de"} <= set(languages) and len(set(languages)) > 3  # the toy web has foreign pages
    assert languages[-1] == languages[0] and scores[-1] == scores[0]


def test_language_id_slices_agree_with_the_whole(web_texts):
    """Repeats are remembered per call only: any slicing of the rows gives the same answers."""
    langid = LanguageId()
    whole = langid.identify(web_texts)
    parts = [langid.identify(web_texts.slice(lo, 97)) for lo in range(0, len(web_texts), 97)]
    assert whole[0] == [lang for part in parts for lang in part[0]]
    assert np.array_equal(whole[1], np.concatenate([part[1] for part in parts]))
