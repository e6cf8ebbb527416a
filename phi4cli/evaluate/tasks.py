"""Benchmark tasks with the paper's pretraining-time protocol (PHI4-RECIPE.md, "Evaluation").

Three kinds of task, one runner each:
- multiple choice by log-likelihood (MMLU format 5-shot `acc`; ARC format 1-shot `acc`, `acc_norm`):
  the model scores every choice as a continuation of the few-shot prompt; the best one is its answer;
- generation (GSM8K 8-shot, MATH 4-shot, TriviaQA 1-shot, long-context key-value recall): greedy
  decoding up to a stop string, then answer extraction and comparison;
- code (HumanEval 0-shot, MBPP 3-shot): n samples per problem, each run against the problem's tests
  in the sandbox, scored with the unbiased pass@k.
Few-shot examples come from `--shots TASK=FILE`, or else from the evaluated file itself with the item
being evaluated left out (chosen once by --seed, so all items share the same shots where they can).
The protocol's numbers (shots, token budgets, temperatures, pass@k, sandbox limits, long-context
lengths) are settings, stages/eval.toml, read into `Options.config` (phi4cli/evaluate/config.py).

Every task returns per-sample records: {"id", "metrics": {name: value}, ...what was asked and answered}.
A sample that could not be run (its prompt does not fit the model's context, the server refused it) is a
record with "error" and no metrics: counted in the result's `n_failed`, never scored as a wrong answer.
Prompts are measured against a local model's context before anything is generated.
"""

from __future__ import annotations

import json
import random
import string
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

from phi4cli.errors import Phi4Error
from phi4cli.evaluate import answers
from phi4cli.evaluate.config import EvalConfig
from phi4cli.evaluate.metrics import mean_and_stderr, pass_at_k
from phi4cli.evaluate.sandbox import Limits, Program, network_isolation, run_programs
from phi4cli.generate.types import SamplingParams
from phi4cli.io.formats import read_records
from phi4cli.log import console

LETTERS = string.ascii_uppercase
Prompt = str | list[dict]  # a text, or a conversation (--chat) in the model's chat template


@dataclass
class Options:
    """What `phi4 eval` was asked for, shared by every task."""

    backend: object | None  # a generate.Backend; None when only scoring --samples
    config: EvalConfig  # the protocol: stages/eval.toml with --set and flag overrides
    seed: int = 0
    limit: int | None = None
    shots_files: dict[str, str] = field(default_factory=dict)
    workers: int = 4
    samples: dict[str, list[str]] | None = None  # --samples: id -> completions produced elsewhere
    chat: bool = False  # --chat: generation tasks ask in the chat template, shots as earlier turns

    @property
    def sandbox(self) -> Limits:
        return Limits(timeout=self.config.sandbox.timeout_s, memory_mb=self.config.sandbox.memory_mb)


@dataclass
class TaskResult:
    name: str
    primary: str
    records: list[dict]
    settings: dict
    error: str | None = None  # the task could not be run at all (its other results, e.g. sibling families, stand)

    def summary(self) -> dict:
        """Means over the scored samples; `n` counts them, `n_failed` the samples that could not be run."""
        if self.error is not None:
            return failed_summary(self.error)
        scored = [r for r in self.records if "error" not in r]
        names = list(scored[0]["metrics"]) if scored else [self.primary]
        metrics = {}
        for name in names:
            value, stderr = mean_and_stderr([r["metrics"][name] for r in scored if name in r["metrics"]])
            metrics[name] = {"value": value, "stderr": stderr}
        head = metrics.get(self.primary, {"value": float("nan"), "stderr": float("nan")})
        return {
            "metric": self.primary,
            "value": head["value"],
            "stderr": head["stderr"],
            "n": len(scored),
            "n_failed": len(self.records) - len(scored),
            "metrics": metrics,
            "settings": self.settings,
        }


def failed_summary(error: str) -> dict:
    """results.json's entry for a task without a result."""
    return {"metric": None, "value": None, "stderr": None, "n": 0, "error": error, "metrics": {}}


# ------------------------------------------------------------------------------------------- data


def load_items(path: str | Path, task: str, required: tuple[str, ...], limit: int | None) -> list[dict]:
    """Rows of a task's data file; a row without a required field names its line.

    With a limit the first `limit` rows are evaluated, but the returned list keeps the rest after
    them as `.pool` so few-shot examples still come from the whole file."""
    path = Path(path)
    if not path.exists():
        raise Phi4Error(f"{path}: no such file (the data for task {task})")
    rows = read_records(path)
    if not rows:
        raise Phi4Error(f"{path}: no items for task {task}")
    for i, row in enumerate(rows, 1):
        for name in required:
            if row.get(name) in (None, ""):
                raise Phi4Error(f"{path}:{i}: missing field {name!r} (a {task} item needs {', '.join(required)})")
    items = Items(rows[:limit] if limit else rows)
    items.pool = rows
    return items


class Items(list):
    """The evaluated rows; `.pool` is every row of the file (the evaluated ones first)."""

    pool: list[dict]


def shot_indices(pool_size: int, k: int, seed: int) -> list[int]:
    """k+1 fixed candidates from the pool (one spare, for when the item itself is a candidate)."""
    order = list(range(pool_size))
    random.Random(seed).shuffle(order)
    return order[: k + 1]


def shots_for(candidates: list[int], k: int, exclude: int | None) -> list[int]:
    return [i for i in candidates if i != exclude][:k]


def few_shot_pool(task: str, opts: Options, items: list[dict], required: tuple[str, ...]) -> tuple[list[dict], bool]:
    """(the shots pool, whether it is the evaluated file itself)."""
    if task in opts.shots_files:
        return load_items(opts.shots_files[task], task, required, None), False
    return getattr(items, "pool", items), True


def shots_note(k: int, own: bool, opts: Options, task: str) -> str:
    if k == 0:
        return "0-shot"
    if own:
        return f"{k}-shot from the evaluated file itself (the item excluded), chosen by seed {opts.seed}"
    return f"{k}-shot from {opts.shots_files[task]}"


# ---------------------------------------------------------------------------------- multiple choice


@dataclass
class Choice:
    id: str
    query: str  # the question, formatted, ending where the answer goes
    choices: list[str]  # continuations, e.g. " A" or " the answer text"
    gold: int
    shot_text: str  # the question with its answer, as a shot


def run_multiple_choice(
    name: str,
    questions: list[Choice],
    k: int,
    opts: Options,
    header: Callable[[int], str],
    pool: list[Choice],
    own: bool,
) -> list[dict]:
    """Score each choice's log-likelihood after the few-shot prompt; acc and acc_norm (per byte).
    `own`: the pool is the evaluated file (questions = its first rows), so item i is never its own shot."""
    candidates = shot_indices(len(pool), k, opts.seed)
    pairs, owners = [], []
    for i, q in enumerate(questions):
        shots = shots_for(candidates, k, i if own else None)
        prompt = header(i) + "".join(pool[j].shot_text + "\n\n" for j in shots) + q.query
        for choice in q.choices:
            pairs.append((prompt, choice))
            owners.append(i)
    scores = opts.backend.loglikelihood(pairs)
    per_question: list[list[float]] = [[] for _ in questions]
    for i, (logprob, _) in zip(owners, scores):
        per_question[i].append(logprob)
    records = []
    for q, lls in zip(questions, per_question):
        pick = max(range(len(lls)), key=lambda c: lls[c])
        normed = [ll / max(1, len(c.strip().encode())) for ll, c in zip(lls, q.choices)]
        pick_norm = max(range(len(lls)), key=lambda c: normed[c])
        records.append(
            {
                "id": q.id,
                "query": q.query,
                "choices": q.choices,
                "gold": q.gold,
                "loglikelihoods": lls,
                "metrics": {"acc": float(pick == q.gold), "acc_norm": float(pick_norm == q.gold)},
            }
        )
    return records


def _answer_index(value, n_choices: int, where: str) -> int:
    if isinstance(value, int) or (isinstance(value, str) and value.strip().isdigit()):
        index = int(value)
    elif isinstance(value, str) and len(value.strip()) == 1 and value.strip().upper() in LETTERS:
        index = LETTERS.index(value.strip().upper())
    else:
        raise Phi4Error(f"{where}: answer {value!r} is neither a choice index nor a letter")
    if not 0 <= index < n_choices:
        raise Phi4Error(f"{where}: answer {value!r} is out of range for {n_choices} choices")
    return index


def mmlu_choice(row: dict, i: int, where: str) -> Choice:
    choices = row.get("choices") or [row[c] for c in "ABCD" if c in row]
    if not isinstance(choices, list) or len(choices) < 2:
        raise Phi4Error(f"{where}: 'choices' must be a list of at least two answers (or columns A, B, C, D)")
    gold = _answer_index(row["answer"], len(choices), where)
    body = row["question"].strip() + "\n" + "".join(f"{LETTERS[c]}. {t}\n" for c, t in enumerate(choices)) + "Answer:"
    return Choice(
        str(row.get("id", i)), body, [f" {LETTERS[c]}" for c in range(len(choices))], gold, f"{body} {LETTERS[gold]}"
    )


def arc_choice(row: dict, i: int, where: str) -> Choice:
    choices = row["choices"]
    if isinstance(choices, dict):  # the Hugging Face layout: {"text": [...], "label": [...]}
        texts, labels = list(choices.get("text", [])), [str(x) for x in choices.get("label", [])]
    else:
        texts, labels = list(choices), [LETTERS[c] for c in range(len(choices))]
    key = row.get("answerKey", row.get("answer"))
    if str(key) in labels:
        gold = labels.index(str(key))
    else:
        gold = _answer_index(key, len(texts), where)
    body = f"Question: {row['question'].strip()}\nAnswer:"
    return Choice(str(row.get("id", i)), body, [f" {t}" for t in texts], gold, f"{body} {texts[gold]}")


def mmlu_task(path: str, opts: Options) -> list[TaskResult]:
    items = load_items(path, "mmlu", ("question", "answer"), opts.limit)
    questions = [mmlu_choice(r, i, f"{path}:{i + 1}") for i, r in enumerate(items)]
    pool_rows, own = few_shot_pool("mmlu", opts, items, ("question", "answer"))
    where = f"{opts.shots_files['mmlu']}" if not own else str(path)
    pool = [mmlu_choice(r, i, f"{where}:{i + 1}") for i, r in enumerate(pool_rows)]
    k = opts.config.shots_for("mmlu")

    def header(i: int) -> str:
        subject = str(items[i].get("subject") or "").replace("_", " ")
        about = f" about {subject}" if subject else ""
        return f"The following are multiple choice questions (with answers){about}.\n\n"

    records = run_multiple_choice("mmlu", questions, k, opts, header, pool, own)
    for r in records:
        r["metrics"].pop("acc_norm")  # the letters have equal length: acc_norm is acc
    return [
        TaskResult(
            "mmlu",
            "acc",
            records,
            {"shots": shots_note(k, own, opts, "mmlu"), "scoring": "log-likelihood of ' A'..' D'"},
        )
    ]


def arc_task(path: str, opts: Options) -> list[TaskResult]:
    items = load_items(path, "arc", ("question", "choices"), opts.limit)
    questions = [arc_choice(r, i, f"{path}:{i + 1}") for i, r in enumerate(items)]
    pool_rows, own = few_shot_pool("arc", opts, items, ("question", "choices"))
    where = f"{opts.shots_files['arc']}" if not own else str(path)
    pool = [arc_choice(r, i, f"{where}:{i + 1}") for i, r in enumerate(pool_rows)]
    k = opts.config.shots_for("arc")
    records = run_multiple_choice("arc", questions, k, opts, lambda i: "", pool, own)
    settings = {
        "shots": shots_note(k, own, opts, "arc"),
        "scoring": "log-likelihood of each answer text; acc_norm per byte",
    }
    return [TaskResult("arc", "acc", records, settings)]


# ------------------------------------------------------------------------------------- generation


def sampling(opts: Options, task: str, stop: list[str]) -> SamplingParams:
    """The task's decoding settings (stages/eval.toml: max_new_tokens.TASK, temperature)."""
    return SamplingParams(
        max_new_tokens=opts.config.max_new_tokens_for(task),
        temperature=opts.config.temperature,
        stop=stop,
        seed=opts.seed,
    )


def complete(opts: Options, ids: list[str], prompts: list[str], params: SamplingParams) -> list[str | Exception]:
    """Completions for prompts, or given ones (--samples); a sample that cannot be run is its error."""
    if opts.samples is not None:
        return [(opts.samples.get(i) or [Phi4Error(f"no completion for {i} in --samples")])[0] for i in ids]
    return generate_each(opts, prompts, [params] * len(prompts))


def generate_each(opts: Options, prompts: list[Prompt], params: list[SamplingParams]) -> list[str | Exception]:
    """One completion per prompt, or the reason it has none; one bad prompt never stops the others.

    A prompt is a text, or a conversation (--chat) that the model's chat template renders. A local model:
    prompts that do not fit its context are found by length first (reported before any generation) and
    the rest run as one batch. A server: one request per prompt, `concurrency` at a time, so its refusal
    of one request fails only that sample."""
    out: list[str | Exception | None] = list(too_long(opts.backend, prompts))
    todo = [i for i, failure in enumerate(out) if failure is None]
    if getattr(opts.backend, "engine", None) is not None:
        if todo:
            chosen, chosen_params = [prompts[i] for i in todo], [params[i] for i in todo]
            if opts.chat:
                generations = opts.backend.generate_ids(prompt_ids(opts.backend, chosen), chosen_params)
            else:
                generations = opts.backend.generate(chosen, chosen_params)
            for i, generation in zip(todo, generations):
                out[i] = generation.text
        return out

    def one(i: int) -> str | Exception:
        try:
            if isinstance(prompts[i], list):
                return opts.backend.chat([prompts[i]], params[i])[0].text
            return opts.backend.generate([prompts[i]], params[i])[0].text
        except Phi4Error as e:
            return e

    with ThreadPoolExecutor(max_workers=max(1, getattr(opts.backend, "concurrency", 8))) as pool:
        for i, result in zip(todo, pool.map(one, todo)):
            out[i] = result
    return out


def prompt_ids(backend, prompts: list[Prompt]) -> list[list[int]]:
    """A local model's token ids for texts and conversations (rendered with the generation prompt)."""
    if not any(isinstance(p, list) for p in prompts):
        return backend.encode_prompts(prompts)
    tokenizer = backend.tokenizer
    return [
        tokenizer.render_chat(p, add_generation_prompt=True)[0] if isinstance(p, list) else tokenizer.encode(p)
        for p in prompts
    ]


def too_long(backend, prompts: list[Prompt]) -> list[Phi4Error | None]:
    """For a local model: an error naming the length of each prompt that leaves no room in its context
    (the engine's own rule), and one warning line for all of them; None for the prompts that fit."""
    engine = getattr(backend, "engine", None)
    if engine is None:
        return [None] * len(prompts)
    context = engine.max_context
    lengths = [len(ids) for ids in prompt_ids(backend, prompts)]
    over = [n for n in lengths if n >= context]
    if over:
        console.print(
            f"[yellow]eval: {len(over)} of {len(prompts)} prompts are longer than the model's context of "
            f"{context:,} tokens (longest {max(over):,}): not generated, counted in n_failed"
        )
    return [_length_error(n, context) for n in lengths]


def _length_error(n: int, context: int) -> Phi4Error | None:
    if n == 0:
        return Phi4Error("empty prompt")
    if n >= context:
        return Phi4Error(f"prompt of {n:,} tokens is longer than the model's context of {context:,} tokens")
    return None


def run_generation(
    opts: Options,
    ids: list[str],
    prompts: list[str],
    params: SamplingParams,
    score: Callable[[int, str], dict],
    metric: str,
) -> list[dict]:
    records = []
    for i, (id_, prompt, completion) in enumerate(zip(ids, prompts, complete(opts, ids, prompts, params))):
        if isinstance(completion, Exception):
            records.append({"id": id_, "prompt": prompt, "error": str(completion), "metrics": {}})
            continue
        records.append({"id": id_, "prompt": prompt, "completion": completion, **score(i, completion)})
    report_failures(records)
    return records


def report_failures(records: list[dict]) -> None:
    """One warning line for a task's failed samples; a task where every sample failed has no result."""
    failed = [r for r in records if "error" in r]
    if failed and len(failed) == len(records):
        raise Phi4Error(f"every sample failed ({len(failed)}; first: {failed[0]['error']})")
    if failed:
        console.print(
            f"[yellow]eval: {len(failed)} of {len(records)} samples failed, counted in n_failed and not scored "
            f"(first: {failed[0]['error']})"
        )


def qa_prompt(question: str, answer: str | None = None) -> str:
    return f"Question: {question.strip()}\nAnswer:" + (f" {answer.strip()}" if answer is not None else "")


def few_shot_prompts(
    task: str,
    items: list[dict],
    opts: Options,
    k: int,
    required: tuple[str, ...],
    shot: Callable[[dict], str],
    query: Callable[[dict], str],
    sep: str = "\n\n",
    turns: Callable[[dict], tuple[str, str]] | None = None,
) -> tuple[list[Prompt], str]:
    """Few-shot prompts: texts, or with --chat (and `turns`: an item's question and answer) conversations
    whose earlier turns are the shots, as lm-eval's --apply_chat_template --fewshot_as_multiturn."""
    pool, own = few_shot_pool(task, opts, items, required)
    candidates = shot_indices(len(pool), k, opts.seed)
    prompts: list[Prompt] = []
    for i, item in enumerate(items):
        shots = shots_for(candidates, k, i if own else None)
        if opts.chat and turns is not None:
            prompts.append(chat_turns([turns(pool[j]) for j in shots], turns(item)[0]))
        else:
            prompts.append("".join(shot(pool[j]) + sep for j in shots) + query(item))
    note = shots_note(k, own, opts, task)
    return prompts, f"{note}, chat template" if opts.chat and turns is not None else note


def chat_turns(shots: list[tuple[str, str]], question: str) -> list[dict]:
    """A conversation: each shot as a user question and the assistant's answer, then the question."""
    messages = []
    for shot_question, shot_answer in shots:
        messages += [{"role": "user", "content": shot_question}, {"role": "assistant", "content": shot_answer}]
    return [*messages, {"role": "user", "content": question}]


def gsm8k_task(path: str, opts: Options) -> list[TaskResult]:
    required = ("question", "answer")
    items = load_items(path, "gsm8k", required, opts.limit)
    k = opts.config.shots_for("gsm8k")
    prompts, note = few_shot_prompts(
        "gsm8k",
        items,
        opts,
        k,
        required,
        lambda r: qa_prompt(r["question"], r["answer"]),
        lambda r: qa_prompt(r["question"]),
        turns=lambda r: (r["question"].strip(), r["answer"].strip()),
    )
    ids = [str(r.get("id", f"gsm8k/{i}")) for i, r in enumerate(items)]

    def score(i: int, completion: str) -> dict:
        predicted, target = answers.gsm8k_answer(completion), answers.gsm8k_answer(items[i]["answer"])
        return {"predicted": predicted, "target": target, "metrics": {"exact_match": float(predicted == target)}}

    params = sampling(opts, "gsm8k", ["\n\n", "Question:"])
    records = run_generation(opts, ids, prompts, params, score, "exact_match")
    return [
        TaskResult(
            "gsm8k",
            "exact_match",
            records,
            {
                "shots": note,
                "extraction": "number after '####', else the last number",
                "max_new_tokens": params.max_new_tokens,
                "temperature": params.temperature,
            },
        )
    ]


def math_reference(row: dict) -> str | None:
    return row.get("answer") or answers.last_boxed(row["solution"])


def math_task(path: str, opts: Options) -> list[TaskResult]:
    required = ("problem", "solution")
    items = load_items(path, "math", required, opts.limit)
    k = opts.config.shots_for("math")
    prompts, note = few_shot_prompts(
        "math",
        items,
        opts,
        k,
        required,
        lambda r: f"Problem:\n{r['problem'].strip()}\n\nSolution:\n{r['solution'].strip()}",
        lambda r: f"Problem:\n{r['problem'].strip()}\n\nSolution:\n",
        turns=lambda r: (r["problem"].strip(), r["solution"].strip()),
    )
    ids = [str(r.get("id", r.get("unique_id", f"math/{i}"))) for i, r in enumerate(items)]

    def score(i: int, completion: str) -> dict:
        predicted, target = answers.math_answer(completion), math_reference(items[i])
        return {
            "predicted": predicted,
            "target": target,
            "metrics": {"exact_match": float(answers.math_equal(predicted, target))},
        }

    params = sampling(opts, "math", ["\n\nProblem:", "Problem:"])
    records = run_generation(opts, ids, prompts, params, score, "exact_match")
    settings = {
        "shots": note,
        "extraction": "last \\boxed{}, else 'final answer is'",
        "equivalence": "normalised string or sympy",
    }
    return [TaskResult("math", "exact_match", records, settings)]


def trivia_answers(row: dict, where: str) -> list[str]:
    answer = row.get("answer", row.get("answers"))
    if isinstance(answer, dict):  # the Hugging Face layout: {"value", "aliases", ...}
        return [answer.get("value", ""), *answer.get("aliases", [])]
    if isinstance(answer, list):
        return [str(a) for a in answer]
    if isinstance(answer, str):
        return [answer]
    raise Phi4Error(f"{where}: 'answer' must be a string, a list, or {{value, aliases}}")


def triviaqa_task(path: str, opts: Options) -> list[TaskResult]:
    items = load_items(path, "triviaqa", ("question",), opts.limit)
    refs = [trivia_answers(r, f"{path}:{i + 1}") for i, r in enumerate(items)]
    k = opts.config.shots_for("triviaqa")
    prompts, note = few_shot_prompts(
        "triviaqa",
        items,
        opts,
        k,
        ("question",),
        lambda r: qa_prompt(r["question"], trivia_answers(r, "shot")[0]),
        lambda r: qa_prompt(r["question"]),
        sep="\n",
    )
    ids = [str(r.get("id", r.get("question_id", f"triviaqa/{i}"))) for i, r in enumerate(items)]

    def score(i: int, completion: str) -> dict:
        return {
            "target": refs[i][:5],
            "metrics": {"exact_match": float(answers.exact_match(completion.strip(), refs[i]))},
        }

    records = run_generation(opts, ids, prompts, sampling(opts, "triviaqa", ["\n", "Question:"]), score, "exact_match")
    return [
        TaskResult("triviaqa", "exact_match", records, {"shots": note, "metric": "normalised exact match over aliases"})
    ]


# ------------------------------------------------------------------------------------------- code


HUMANEVAL_STOP = ["\nclass", "\ndef", "\n#", "\nif", "\nprint"]


def code_results(
    name: str,
    opts: Options,
    ids: list[str],
    prompts: list[str],
    programs: Callable[[int, str], Program],
    params: SamplingParams,
    settings: dict,
) -> list[TaskResult]:
    """n completions per problem -> sandbox -> per-problem pass@k for every k <= n."""
    completions = _code_completions(opts, ids, prompts, params)
    flat = [(i, c) for i, cs in enumerate(completions) for c in cs]
    sources = [programs(i, c) if isinstance(c, str) else None for i, c in flat]
    runs = iter(run_programs([s for s in sources if s is not None], opts.sandbox, opts.workers))
    outcomes = []
    for (_, completion), source in zip(flat, sources):
        if source is None:  # no completion (the prompt did not fit, the server refused it): not run, not scored
            outcomes.append((None, f"no completion: {completion}"))
        else:
            run = next(runs)
            outcomes.append((run.passed, run.reason))
    per_problem: list[list[tuple[bool | None, str]]] = [[] for _ in ids]
    for (i, _), outcome in zip(flat, outcomes):
        per_problem[i].append(outcome)
    records = [_code_record(opts, ids[i], prompts[i], completions[i], results) for i, results in enumerate(per_problem)]
    report_failures(records)
    primary = f"pass@{min(opts.config.k)}"
    settings = {
        **settings,
        "samples_per_problem": max(len(p) for p in per_problem),
        "temperature": params.temperature,
        "sandbox": {
            "timeout_s": opts.sandbox.timeout,
            "memory_mb": opts.sandbox.memory_mb,
            "network": network_isolation(),
        },
    }
    if opts.samples is not None:
        settings["completions"] = "from --samples"
    return [TaskResult(name, primary, records, settings)]


def _code_record(
    opts: Options, id_: str, prompt: str, completions: list, results: list[tuple[bool | None, str]]
) -> dict:
    """pass@k of one problem over its samples that ran; a problem none of whose samples ran is failed."""
    texts = [x if isinstance(x, str) else str(x) for x in completions]
    record = {"id": id_, "prompt": prompt, "completions": texts, "results": [reason for _, reason in results]}
    ran = [ok for ok, _ in results if ok is not None]
    if not ran:
        return {**record, "error": results[0][1], "metrics": {}}
    n, c = len(ran), sum(ran)
    ks = [k for k in opts.config.k if k <= n] or [1]
    return {
        **record,
        "passed": c,
        "n": n,
        "failed_samples": len(results) - n,
        "metrics": {f"pass@{k}": pass_at_k(n, c, k) for k in ks},
    }


def _code_completions(opts: Options, ids: list[str], prompts: list[str], params: SamplingParams) -> list[list]:
    if opts.samples is not None:
        return [opts.samples.get(i) or [Phi4Error(f"no completion for {i} in --samples")] for i in ids]
    n = opts.config.num_samples
    # one sample: the protocol's (greedy) temperature; several, for pass@k: a sampling temperature
    params.temperature = opts.config.temperature if n == 1 else opts.config.sampled_temperature
    all_prompts = [p for p in prompts for _ in range(n)]
    all_params = [
        SamplingParams(**{**params.__dict__, "seed": opts.seed * 1_000_003 + j}) for j in range(len(all_prompts))
    ]
    flat = generate_each(opts, all_prompts, all_params)
    return [flat[i * n : (i + 1) * n] for i in range(len(prompts))]


def humaneval_program(item: dict, completion: str) -> Program:
    # the tests run in the sandbox's harness process and call the completion's functions across a pipe
    return Program(f"{item['prompt']}{completion}\n", f"{item['test']}\n\ncheck({item['entry_point']})\n")


def humaneval_task(path: str, opts: Options) -> list[TaskResult]:
    items = load_items(path, "humaneval", ("task_id", "prompt", "test", "entry_point"), opts.limit)
    ids = [str(r["task_id"]) for r in items]
    params = sampling(opts, "humaneval", HUMANEVAL_STOP)
    return code_results(
        "humaneval",
        opts,
        ids,
        [r["prompt"] for r in items],
        lambda i, c: humaneval_program(items[i], c),
        params,
        {"shots": "0-shot", "stop": HUMANEVAL_STOP},
    )


def mbpp_shot(row: dict, with_code: bool) -> str:
    tests = "\n".join(row["test_list"])
    head = (
        f"You are an expert Python programmer, and here is your task: {row['text'].strip()} "
        f"Your code should pass these tests:\n\n{tests}\n[BEGIN]\n"
    )
    return head + (f"{row['code'].strip()}\n[DONE]" if with_code else "")


def mbpp_task(path: str, opts: Options) -> list[TaskResult]:
    required = ("text", "code", "test_list")
    items = load_items(path, "mbpp", required, opts.limit)
    k = opts.config.shots_for("mbpp")
    prompts, note = few_shot_prompts(
        "mbpp", items, opts, k, required, lambda r: mbpp_shot(r, True), lambda r: mbpp_shot(r, False)
    )
    ids = [str(r.get("task_id", f"mbpp/{i}")) for i, r in enumerate(items)]

    def program(i: int, completion: str) -> Program:
        setup = items[i].get("test_setup_code") or ""
        return Program(f"{setup}\n{completion}\n", f"{setup}\n" + "\n".join(items[i]["test_list"]) + "\n")

    return code_results("mbpp", opts, ids, prompts, program, sampling(opts, "mbpp", ["[DONE]"]), {"shots": note})


# ------------------------------------------------------------------------------------ long context


KV_INSTRUCTION = "Extract the value corresponding to the specified key in the JSON object below."


def kv_recall_task(path: str | None, opts: Options) -> list[TaskResult]:
    """HELMET-style JSON key-value recall, generated at each requested length (in tokens)."""
    count = opts.limit or opts.config.kv_recall.items
    tokenizer = _length_tokenizer(opts)
    results = []
    for length in opts.config.kv_recall.lengths:
        rng = random.Random(f"{opts.seed}-{length}")
        items = [kv_item(rng, length, tokenizer, depth=i / max(1, count - 1)) for i in range(count)]
        ids = [f"kv-recall@{length}/{i}" for i in range(count)]

        def score(i: int, completion: str, items=items) -> dict:
            return {
                "target": items[i]["answer"],
                "metrics": {"subem": float(answers.substring_match(completion, [items[i]["answer"]]))},
            }

        records = run_generation(
            opts, ids, [it["prompt"] for it in items], sampling(opts, "kv-recall", ["\n"]), score, "subem"
        )
        settings = {"length_tokens": length, "pairs": [it["pairs"] for it in items][:1], "depths": "evenly spread 0..1"}
        results.append(TaskResult(f"kv-recall@{length}", "subem", records, settings))
    return results


def _length_tokenizer(opts: Options):
    tok = getattr(opts.backend, "tokenizer", None)
    if tok is not None:
        return tok
    from phi4cli.tokenizer import load_tokenizer

    return load_tokenizer("phi4")  # a remote model's tokenizer is unknown: cl100k counts are close for most


def _uuid(rng: random.Random) -> str:
    h = f"{rng.getrandbits(128):032x}"
    return f"{h[:8]}-{h[8:12]}-{h[12:16]}-{h[16:20]}-{h[20:]}"


def kv_item(rng: random.Random, length: int, tokenizer, depth: float) -> dict:
    """A JSON object of UUID pairs filling about `length` tokens, one key asked at relative depth."""
    probe = json.dumps({_uuid(rng): _uuid(rng) for _ in range(8)}, indent=0)
    per_pair = len(tokenizer.encode(probe)) / 8
    frame = (
        len(tokenizer.encode(f'{KV_INSTRUCTION}\n\nJSON data:\n{{}}\n\nKey: "{_uuid(rng)}"\nCorresponding value:')) + 48
    )
    pairs = max(2, int((length - frame) / per_pair))
    store = {_uuid(rng): _uuid(rng) for _ in range(pairs)}
    key = list(store)[round(depth * (pairs - 1))]
    prompt = f'{KV_INSTRUCTION}\n\nJSON data:\n{json.dumps(store, indent=0)}\n\nKey: "{key}"\nCorresponding value:'
    return {"prompt": prompt, "answer": store[key], "pairs": pairs}


# ------------------------------------------------------------------------------------------ toy world


TOY_FAMILIES = ("arith", "facts_mc", "kv_recall", "pyfunc")


def toy_task(path: str, opts: Options, only: str | None = None) -> list[TaskResult]:
    """The toy world's benchmark families (`phi4 demo-data` writes DIR/benchmarks)."""
    rows = load_items(path, "toy", ("id", "prompt", "answer", "task"), None)
    families: dict[str, list[dict]] = {}
    for row in rows:
        families.setdefault(row["task"], []).append(row)
    if only is not None and only not in families:
        raise Phi4Error(f"{path}: no items of family {only!r} (found: {', '.join(sorted(families))})")
    results = []
    for family, items in sorted(families.items()):
        if only is not None and family != only:
            continue
        limited = Items(items[: opts.limit] if opts.limit else items)
        limited.pool = items
        items = limited
        runner = {"arith": _toy_arith, "facts_mc": _toy_mc, "kv_recall": _toy_kv, "pyfunc": _toy_code}.get(family)
        if runner is None:
            console.print(f"[yellow]toy: skipping unknown family {family!r}")
            continue
        if only is None:
            console.print(f"eval: toy/{family} ...")  # so a warning below names its family
        try:
            results.append(runner(f"toy/{family}", items, opts))
        except Phi4Error as e:  # e.g. no item fits the context: the other families keep their results
            console.print(f"[red]eval: toy/{family} failed: {e}")
            results.append(TaskResult(f"toy/{family}", "", [], {}, error=str(e)))
    return results


def _meta(row: dict) -> dict:
    try:
        return json.loads(row.get("meta") or "{}")
    except json.JSONDecodeError:
        return {}


def _toy_arith(name: str, items: list[dict], opts: Options) -> TaskResult:
    k = opts.config.shots_for(name)
    prompts, note = few_shot_prompts(
        name,
        items,
        opts,
        k,
        ("prompt", "answer"),
        lambda r: qa_prompt(r["prompt"], r["answer"]),
        lambda r: qa_prompt(r["prompt"]),
        turns=lambda r: (r["prompt"].strip(), r["answer"].strip()),
    )

    def score(i: int, completion: str) -> dict:
        predicted, target = answers.gsm8k_answer(completion), answers.gsm8k_answer(items[i]["answer"])
        return {"predicted": predicted, "target": target, "metrics": {"exact_match": float(predicted == target)}}

    records = run_generation(
        opts, [r["id"] for r in items], prompts, sampling(opts, name, ["\n\n", "Question:"]), score, "exact_match"
    )
    return TaskResult(name, "exact_match", records, {"shots": note, "format": "GSM8K"})


def _toy_mc(name: str, items: list[dict], opts: Options) -> TaskResult:
    def choice(r: dict) -> Choice:
        n = len(_meta(r).get("choices") or "ABCD")
        gold = _answer_index(r["answer"], n, r["id"])
        return Choice(r["id"], r["prompt"], [f" {LETTERS[c]}" for c in range(n)], gold, f"{r['prompt']} {r['answer']}")

    def cloze(r: dict) -> Choice:
        choices = _meta(r).get("choices")
        if not choices:
            raise Phi4Error(f"{r['id']}: meta has no 'choices' list for the cloze formulation")
        gold = _answer_index(r["answer"], len(choices), r["id"])
        query = qa_prompt(r["prompt"].split("\n", 1)[0])  # the question line, without the lettered choices
        return Choice(r["id"], query, [f" {c}" for c in choices], gold, f"{query} {choices[gold]}")

    k = opts.config.shots_for(name)
    pool = [choice(r) for r in items.pool]
    records = run_multiple_choice(name, pool[: len(items)], k, opts, lambda i: "", pool, True)
    # The cloze formulation (OLMES, Gu et al. 2024): the answer texts scored after the bare question. Small
    # models stay at chance on the letter format (MMLU's) long after they know the facts; the cloze one
    # shows whether they do. Both are reported; `acc` (letters) stays the headline, as MMLU's.
    cloze_pool = [cloze(r) for r in items.pool]
    cloze_records = run_multiple_choice(name, cloze_pool[: len(items)], k, opts, lambda i: "", cloze_pool, True)
    for rec, rec_cloze in zip(records, cloze_records):
        rec["metrics"] = {"acc": rec["metrics"]["acc"], "acc_cloze": rec_cloze["metrics"]["acc"]}
        rec["cloze_loglikelihoods"] = rec_cloze["loglikelihoods"]
    return TaskResult(name, "acc", records, {"shots": shots_note(k, True, opts, name), "format": "MMLU and cloze"})


def _toy_kv(name: str, items: list[dict], opts: Options) -> TaskResult:
    def score(i: int, completion: str) -> dict:
        return {
            "target": items[i]["answer"],
            "metrics": {"subem": float(answers.substring_match(completion, [items[i]["answer"]]))},
        }

    records = run_generation(
        opts, [r["id"] for r in items], [r["prompt"] for r in items], sampling(opts, name, ["\n"]), score, "subem"
    )
    return TaskResult(name, "subem", records, {"format": "HELMET JSON KV", "shots": "0-shot"})


def _toy_code(name: str, items: list[dict], opts: Options) -> TaskResult:
    def program(i: int, completion: str) -> Program:
        return Program(f"{items[i]['prompt']}{completion}\n", f"{items[i]['tests']}\n")

    params = sampling(opts, name, HUMANEVAL_STOP)
    return code_results(
        name, opts, [r["id"] for r in items], [r["prompt"] for r in items], program, params, {"shots": "0-shot"}
    )[0]


# --------------------------------------------------------------------------------------- registry


@dataclass
class TaskSpec:
    run: Callable[..., list[TaskResult]]
    needs_data: bool
    default_data: str | None = None
    kind: str = "generation"


TASKS: dict[str, TaskSpec] = {
    "mmlu": TaskSpec(mmlu_task, True, kind="multiple choice"),
    "arc": TaskSpec(arc_task, True, kind="multiple choice"),
    "gsm8k": TaskSpec(gsm8k_task, True),
    "math": TaskSpec(math_task, True),
    "triviaqa": TaskSpec(triviaqa_task, True),
    "humaneval": TaskSpec(humaneval_task, True, kind="code"),
    "mbpp": TaskSpec(mbpp_task, True, kind="code"),
    "kv-recall": TaskSpec(kv_recall_task, False, kind="long context"),
    "toy": TaskSpec(toy_task, True, "data/demo/benchmarks", kind="toy world"),
}
for _family in TOY_FAMILIES:
    TASKS[f"toy/{_family}"] = TaskSpec(
        lambda path, opts, f=_family: toy_task(path, opts, f), True, "data/demo/benchmarks", kind="toy world"
    )
