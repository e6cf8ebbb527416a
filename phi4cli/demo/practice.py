"""`practice`: training-side problems in the benchmark schema, for the stages that search or vote on problems.

PTS (`phi4 pts`) and plurality voting (`phi4 rewrite`) need problems with reference answers, in the schema of
`benchmarks` (id, prompt, answer, task, tests, text, meta). Searching the benchmarks themselves would train on
the test set, so the toy world writes a separate set drawn from the *training* side of each family's split:
arithmetic problems whose structure hash is not held out (`problems.arith_problem(held_out=False)`), worded
with the training phrasings. `answer` is the plain step-by-step solution ending "#### N" (training text carries
no GSM8K `<<…>>` annotations), so both the PTS oracle and GSM8K's extraction read its final number.
Structures are distinct within the set, so no problem is searched twice under another name.
"""

from __future__ import annotations

from collections.abc import Iterator

from phi4cli.demo.common import meta_json, scaled, source_rng
from phi4cli.demo.problems import arith_problem

ARITH_PROBLEMS = 600  # at scale 1: enough that PTS finds problems with 0.2 <= p(success) <= 0.8 (stages/demo/pts.toml)


def generate(seed: int, scale: float) -> Iterator[dict]:
    rng = source_rng(seed, "practice/arith")
    count = scaled(ARITH_PROBLEMS, scale, minimum=8)
    seen: set[str] = set()
    for _ in range(count * 20):
        if len(seen) == count:
            break
        p = arith_problem(rng, held_out=False)
        if p.key in seen:
            continue
        seen.add(p.key)
        yield {
            "id": f"practice-arith-{len(seen) - 1:05d}",
            "prompt": p.question,
            "answer": p.solution,
            "task": "arith",
            "tests": "",
            "text": f"{p.question}\n{p.solution}",
            "meta": meta_json(final_answer=p.answer, structure=p.key),
        }
