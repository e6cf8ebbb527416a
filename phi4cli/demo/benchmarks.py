"""`benchmarks`: held-out test problems in the families the toy model learns.

Tasks (the `task` column):
- `arith`: multi-step arithmetic word problems; `answer` is the GSM8K-style solution ending "#### N", so the
  same extraction code scores GSM8K and this task;
- `facts_mc`: MMLU-format multiple choice over the embedded knowledge base (question, choices A-D, a
  prompt ending in "Answer:", `answer` the letter); the facts are taught as prose in `web`/`acquired`;
- `kv_recall`: find the value of one key in a JSON object of 1 to 11 random UUID pairs (the HELMET "JSON KV"
  recall task, sized for the toy contexts: a pair costs about 71 toy tokens, so 11 pairs are ~860 tokens and
  leave room for the answer in the midtrained 1,024-token context; 1 pair fits the pretrained 256);
- `pyfunc`: HumanEval-like: `prompt` = signature and docstring, `answer` = the canonical body, `tests` =
  assert statements that call the function by name, so `exec(prompt + completion + "\\n" + tests)` checks
  a completion.

Every item is on the held-out side of its family's split — arithmetic by a hash of the problem's
structure, facts by a hash of the fact, functions by parameter range — so none of them appears in
`synthetic`, `chat` or any other training source, except where `web` plants some on purpose (labelled
"contaminated"). The split is also made so that a 13-gram decontamination pass finds the planted items
and (almost) nothing else: benchmark questions have their own wording, reference solutions carry
GSM8K's calculator annotations, and held-out values never appear in training text of the same family.
"""

from __future__ import annotations

import re
from collections.abc import Callable

from phi4cli.demo.common import meta_json, scaled, source_rng
from phi4cli.demo.facts import held_out_questions, render_mc
from phi4cli.demo.problems import arith_problem, kv_json, kv_store, pyfunc

ARITH_ITEMS = 400  # at scale 1 (GSM8K has 1,319): about all the held-out structures there are; SE near 0.5 is 0.025
KV_ITEMS = 40
KV_SIZES = (
    1,
    4,
    8,
    11,
)  # pairs per store, cycled: about 150, 360, 650 and 860 toy tokens (stages/demo contexts: 256, 1,024)
PYFUNC_ITEMS = 60  # HumanEval has 164
KV_INSTRUCTION = "Extract the value corresponding to the specified key in the JSON object below."


def _row(task: str, index: int, prompt: str, answer: str, text: str, tests: str = "", **meta: object) -> dict:
    return {
        "id": f"{task}-{index:04d}",
        "prompt": prompt,
        "answer": answer,
        "task": task,
        "tests": tests,
        "text": text,
        "meta": meta_json(**meta),
    }


def _unique(make: Callable[[], tuple[str, object]], count: int, max_tries: int) -> list:
    """Up to `count` items with distinct keys; stops early if the held-out pool runs dry."""
    seen: set[str] = set()
    items = []
    for _ in range(max_tries):
        if len(items) == count:
            break
        key, item = make()
        if key not in seen:
            seen.add(key)
            items.append(item)
    return items


CALCULATION = re.compile(r"((?:\d+ [-+*/] )+\d+) = (\$?)(\d+)")


def gsm8k_annotate(solution: str) -> str:
    """Write each calculation as GSM8K's answers do: "6 * 8 = <<6*8=48>>48".

    The benchmark's reference solutions follow the GSM8K test set's own format (training text does not
    carry the annotations), which also keeps their 13-grams from recurring in training text by chance.
    """
    return CALCULATION.sub(lambda m: f"{m[1]} = {m[2]}<<{m[1].replace(' ', '')}={m[3]}>>{m[3]}", solution)


def arith_items(seed: int, scale: float) -> list[dict]:
    rng = source_rng(seed, "benchmarks/arith")
    count = scaled(ARITH_ITEMS, scale, minimum=20)

    def make():
        p = arith_problem(rng, held_out=True)
        return p.key, p

    problems = _unique(make, count, max_tries=count * 20)
    rows = []
    for i, p in enumerate(problems):
        solution = gsm8k_annotate(p.solution)
        rows.append(
            _row("arith", i, p.question, solution, f"{p.question}\n{solution}", final_answer=p.answer, structure=p.key)
        )
    return rows


def facts_mc_items(seed: int) -> list[dict]:
    """Every held-out fact, once: the size is set by the knowledge base, not by --scale."""
    rng = source_rng(seed, "benchmarks/facts_mc")
    rows = []
    for i, q in enumerate(held_out_questions()):
        prompt, letter, choices = render_mc(q, rng)
        rows.append(
            _row(
                "facts_mc",
                i,
                prompt,
                letter,
                f"{prompt} {letter}",
                subject=q.subject,
                key=q.key,
                choices=choices,
                answer_text=q.answer,
            )
        )
    return rows


def kv_recall_items(seed: int, scale: float) -> list[dict]:
    rng = source_rng(seed, "benchmarks/kv_recall")
    rows = []
    for i in range(scaled(KV_ITEMS, scale, minimum=len(KV_SIZES))):
        n_pairs = KV_SIZES[i % len(KV_SIZES)]
        store = kv_store(rng, n_pairs)
        position = rng.randrange(n_pairs)
        key = list(store)[position]
        prompt = f'{KV_INSTRUCTION}\n\nJSON data:\n{kv_json(store)}\n\nKey: "{key}"\nCorresponding value:'
        rows.append(
            _row(
                "kv_recall",
                i,
                prompt,
                store[key],
                f"{prompt} {store[key]}",
                n_pairs=n_pairs,
                depth=round(position / max(1, n_pairs - 1), 3),
            )
        )
    return rows


def pyfunc_items(seed: int, scale: float) -> list[dict]:
    rng = source_rng(seed, "benchmarks/pyfunc")
    count = scaled(PYFUNC_ITEMS, scale, minimum=8)

    def make():
        f = pyfunc(rng, held_out=True)
        return f.name + f.description, f

    funcs = _unique(make, count, max_tries=count * 20)
    return [
        _row("pyfunc", i, f.prompt, f.body, f.prompt + f.body, tests=f.tests, entry_point=f.name, family=f.family)
        for i, f in enumerate(funcs)
    ]


def build(seed: int, scale: float) -> list[dict]:
    """All benchmark items, task by task; small enough to hold in memory."""
    return [*arith_items(seed, scale), *facts_mc_items(seed), *kv_recall_items(seed, scale), *pyfunc_items(seed, scale)]
