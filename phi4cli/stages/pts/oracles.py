"""The oracles that say whether a solution succeeded, one per problem `task`, built on phi4cli/evaluate:

- math word problems (`gsm8k`, the toy `arith`): the final number (after '####', else the last number)
  equals the reference's — `answers.gsm8k_answer`;
- competition math (`math`): the last \\boxed{} (or "final answer is X") is equal to the reference after
  normalisation or symbolically — `answers.math_answer`, `answers.math_equal`;
- multiple choice (`mmlu`, `arc`, `gpqa`, the toy `facts_mc`): the first answer letter of the solution is
  the reference letter;
- code (`humaneval`, `mbpp`, the toy `pyfunc`): the tests pass against `prompt + code` in the eval sandbox
  (`sandbox.run_programs`, tests in its harness), code being the solution's first fenced block or itself;
- key-value recall (the toy `kv_recall`): the value occurs in the solution — `answers.substring_match`;
- short answers (`triviaqa`, `qa`): normalised exact match — `answers.exact_match`.

An oracle judges many solutions of one problem at once (`judge(problem, texts) -> [bool]`), so the code
oracle runs them in parallel sandboxes.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence

from phi4cli.errors import Phi4Error
from phi4cli.evaluate import answers

Judge = Callable[[dict, Sequence[str]], list[bool]]

# A letter standing alone: "B", "(B)", "B." -> B; not the "A" of "A farmer".
_LETTER = re.compile(r"(?<![A-Za-z])\(?([A-Z])\)?(?![A-Za-z])")
_PARENTHESISED = re.compile(r"\(([A-Z])\)")
_LEADING = re.compile(r"^\s*\(?([A-Z])\)?\s*(?:[.):\n]|$)")


def choice_letter(text: str) -> str | None:
    """A multiple-choice solution's letter: the first after the last "answer is"/"answer:", else a leading
    letter on its own ("B", "B.", "(B)"), else the first parenthesised one; None when there is none (a
    capital that is a word, as in "A farmer" or "I think", is not an answer)."""
    lowered = text.lower()
    for cue in ("answer is", "answer:"):
        at = lowered.rfind(cue)
        if at >= 0:
            found = _LETTER.search(text, at + len(cue))
            if found:
                return found.group(1)
    found = _LEADING.search(text) or _PARENTHESISED.search(text)
    return found.group(1) if found else None


def _numeric(problem: dict, texts: Sequence[str]) -> list[bool]:
    target = answers.gsm8k_answer(problem["answer"])
    return [target is not None and answers.gsm8k_answer(t) == target for t in texts]


def _math(problem: dict, texts: Sequence[str]) -> list[bool]:
    reference = answers.last_boxed(problem["answer"]) or problem["answer"]
    return [answers.math_equal(answers.math_answer(t), reference) for t in texts]


def _letter(problem: dict, texts: Sequence[str]) -> list[bool]:
    target = problem["answer"].strip().upper()
    return [choice_letter(t) == target for t in texts]


def _substring(problem: dict, texts: Sequence[str]) -> list[bool]:
    return [answers.substring_match(t, [problem["answer"]]) for t in texts]


def _short_answer(problem: dict, texts: Sequence[str]) -> list[bool]:
    return [answers.exact_match(t.strip(), [problem["answer"]]) for t in texts]


_FENCE = re.compile(r"```(?:python|py)?\n(.*?)```", re.DOTALL)


def program(problem: dict, text: str):
    """The sandbox Program a code solution is tested as: code = prompt + the solution's code, tests apart (run
    by the sandbox's harness, outside the sample's interpreter). A solution that continues the prompt's
    function body and one that writes the whole function (fenced or not) both work: a later `def` wins."""
    from phi4cli.evaluate.sandbox import Program

    fenced = _FENCE.search(text)
    code = fenced.group(1) if fenced else text
    return Program(f"{problem['prompt']}{code}\n", f"{problem['tests']}\n")


class CodeJudge:
    """Unit tests in the eval sandbox (untrusted model-written code never runs in this process)."""

    def __init__(self, timeout_s: float, memory_mb: int, workers: int):
        self.timeout_s, self.memory_mb, self.workers = timeout_s, memory_mb, workers

    def __call__(self, problem: dict, texts: Sequence[str]) -> list[bool]:
        from phi4cli.evaluate.sandbox import Limits, run_programs

        limits = Limits(timeout=self.timeout_s, memory_mb=self.memory_mb)
        return [r.passed for r in run_programs([program(problem, t) for t in texts], limits, self.workers)]


ANSWER_ORACLES: dict[str, Judge] = {
    "gsm8k": _numeric,
    "arith": _numeric,
    "math": _math,
    "mmlu": _letter,
    "arc": _letter,
    "gpqa": _letter,
    "mc": _letter,
    "facts_mc": _letter,
    "kv_recall": _substring,
    "triviaqa": _short_answer,
    "qa": _short_answer,
}
CODE_TASKS = ("humaneval", "mbpp", "pyfunc", "code")
TASKS = (*ANSWER_ORACLES, *CODE_TASKS)


def oracle_for(task: str, code_judge: CodeJudge) -> Judge:
    if task in ANSWER_ORACLES:
        return ANSWER_ORACLES[task]
    if task in CODE_TASKS:
        return code_judge
    raise Phi4Error(f"task {task!r} has no oracle (known: {', '.join(TASKS)})")


def check_problem(problem: dict, where: str) -> None:
    """A problem the search can judge: a known task, and the answer or tests its oracle needs."""
    task = problem.get("task") or ""
    if task not in TASKS:
        raise Phi4Error(f"{where}: task {task!r} has no oracle (known: {', '.join(TASKS)})")
    if not (problem.get("prompt") or "").strip():
        raise Phi4Error(f"{where}: empty prompt")
    if task in CODE_TASKS:
        if not (problem.get("tests") or "").strip():
            raise Phi4Error(f"{where}: a {task} problem needs tests (the 'tests' column is empty)")
    elif not (problem.get("answer") or "").strip():
        raise Phi4Error(f"{where}: a {task} problem needs an answer (the 'answer' column is empty)")
