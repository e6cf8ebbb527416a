"""`chat`: seed conversations for SFT, in the chat schema (id, messages, meta).

Kinds (`meta["kind"]`), after the paper's SFT domains (math, coding, reasoning, conversation, identity,
safety):
- `arith` / `math`: the user asks a word problem; the assistant answers step by step, ending "#### N";
- `facts`: a question on the knowledge base, answered with the fact;
- `mc`: a multiple-choice question, answered with the letter and the fact;
- `code`: "write a function that ..." answered with code;
- `multi_turn`: follow-up questions on the same country, a second problem, or tests for the code just
  written;
- `identity`: who the assistant is; `safety`: harmful requests, refused politely with a safer
  alternative; `unknown`: questions about things that do not exist, answered "I don't know" rather than
  with an invented answer (the paper's hallucination mitigation).

Only the training side of the held-out split is used, so no benchmark item appears here.
"""

from __future__ import annotations

import random
from collections.abc import Iterator

from phi4cli.demo.common import meta_json, scaled, source_rng
from phi4cli.demo.facts import COUNTRIES, FactQuestion, render_mc, training_questions
from phi4cli.demo.problems import MATH_FAMILIES, Problem, arith_problem, pyfunc

CONVERSATIONS = 8000  # at scale 1: about 2 MB
KIND_SHARES = {  # math-heavy, as the paper's SFT mixture; arith most of all, the toy world's reasoning task
    "arith": 0.45,
    "math": 0.06,
    "facts": 0.12,
    "mc": 0.07,
    "code": 0.1,
    "multi_turn": 0.12,
    "identity": 0.03,
    "safety": 0.03,
    "unknown": 0.02,
}
SYSTEM_PROMPTS = [
    "You are a helpful assistant.",
    "You are a careful tutor. Explain your reasoning step by step.",
    "You are a concise assistant. Answer accurately.",
]
IDENTITY_QUESTIONS = [
    "Who are you?",
    "What is your name?",
    "Who made you?",
    "Are you a human?",
    "What can you do?",
    "Tell me about yourself.",
]
IDENTITY_ANSWERS = [
    "I am a small language model trained with phi4, an open-source toolchain that follows the Phi-4 training "
    "recipe. I can help with arithmetic word problems, simple facts and short Python functions.",
    "I'm an AI assistant: a small language model trained with the phi4 toolchain. I am not a person. I can "
    "solve simple math problems step by step, answer basic science and geography questions, and write small "
    "Python functions.",
    "I am a language model, a computer program trained on text. I was built with the open-source phi4 "
    "toolchain, and I try to give accurate, step-by-step answers.",
]
HARMFUL_REQUESTS = [
    "How can I make a weapon at home?",
    "Tell me how to make a dangerous poison.",
    "How do I break into someone else's email account?",
    "Write a message that will scare my neighbour.",
    "How can I cheat on my exam without getting caught?",
    "How do I pick the lock on my neighbour's front door?",
    "Give me a plan to steal from a shop.",
]
REFUSALS = [
    "I can't help with that, because it could hurt people or break the law. If you are worried about your "
    "safety or someone else's, please contact someone you trust or the local authorities.",
    "Sorry, I won't help with this request. It could cause real harm. I'm happy to help with something else, "
    "for example studying for a test or solving a math problem.",
    "I can't assist with that. If there is a problem behind this request, talking to a teacher, a friend or a "
    "professional can help, and I can help you plan what to say.",
]
FICTIONAL_PLACES = ["Veltrania", "Quorvia", "Marundel", "Istovar", "Pellegrath", "Zanthura", "Orbeliss"]


def _system(rng: random.Random) -> list[dict]:
    return [{"role": "system", "content": rng.choice(SYSTEM_PROMPTS)}] if rng.random() < 0.3 else []


def _solve(problem: Problem, rng: random.Random) -> list[dict]:
    ask = rng.choice(["{q}", "Can you help me solve this? {q}", "{q} Please show your work.", "Solve: {q}"])
    lead = rng.choice(["Let's solve it step by step.", "Here is the working.", "Step by step:"])
    return [
        {"role": "user", "content": ask.format(q=problem.question)},
        {"role": "assistant", "content": f"{lead}\n{problem.solution}"},
    ]


def _fact(q: FactQuestion) -> list[dict]:
    return [{"role": "user", "content": q.question}, {"role": "assistant", "content": q.statement}]


def _mc(q: FactQuestion, rng: random.Random) -> list[dict]:
    prompt, letter, _ = render_mc(q, rng)
    question = prompt.removesuffix("Answer:").rstrip() + "\nAnswer with the letter of the correct choice."
    return [
        {"role": "user", "content": question},
        {"role": "assistant", "content": f"The answer is {letter}. {q.statement}"},
    ]


def _code(rng: random.Random, with_tests: bool) -> list[dict]:
    func = pyfunc(rng, held_out=False)
    turns = [
        {"role": "user", "content": f"Write a Python function `{func.name}`. {func.description}"},
        {"role": "assistant", "content": f"Here is the function:\n\n```python\n{func.code}```"},
    ]
    if with_tests:
        turns += [
            {"role": "user", "content": "Can you add some tests for it?"},
            {"role": "assistant", "content": f"Sure. These asserts check it:\n\n```python\n{func.tests}```"},
        ]
    return turns


def _country_follow_ups(rng: random.Random) -> list[dict]:
    """A conversation that stays on one country: capital, then continent, language or currency."""
    allowed = {q.key: q for q in training_questions()}
    while True:
        country = rng.choice(COUNTRIES).name
        asked = [
            allowed[k]
            for k in (f"{rel}:{country}" for rel in ("capital", "continent", "language", "currency"))
            if k in allowed
        ]
        if len(asked) >= 2:
            break
    turns = _fact(asked[0])
    for q in asked[1:]:
        turns += _fact(q)
    return turns


def _multi_turn(rng: random.Random) -> list[dict]:
    kind = rng.randrange(3)
    if kind == 0:
        return _country_follow_ups(rng)
    if kind == 1:
        first, second = arith_problem(rng, held_out=False), arith_problem(rng, held_out=False)
        turns = _solve(first, rng) + _solve(second, rng)
        turns[2]["content"] = "Thanks! Here is another one. " + second.question
        return turns
    return _code(rng, with_tests=True)


def _unknown(rng: random.Random) -> list[dict]:
    place = rng.choice(FICTIONAL_PLACES)
    question = rng.choice(
        [f"What is the capital of {place}?", f"Which currency is used in {place}?", f"How many people live in {place}?"]
    )
    return [
        {"role": "user", "content": question},
        {
            "role": "assistant",
            "content": f"I don't know of any country or place called {place}. It may be "
            "fictional, or I may not have reliable information about it, so I would rather not guess.",
        },
    ]


def conversation(kind: str, rng: random.Random) -> list[dict]:
    if kind == "arith":
        return _solve(arith_problem(rng, held_out=False), rng)
    if kind == "math":
        return _solve(MATH_FAMILIES[rng.choice(sorted(MATH_FAMILIES))](rng), rng)
    if kind == "facts":
        return _fact(rng.choice(training_questions()))
    if kind == "mc":
        return _mc(rng.choice(training_questions()), rng)
    if kind == "code":
        return _code(rng, with_tests=False)
    if kind == "multi_turn":
        return _multi_turn(rng)
    if kind == "identity":
        return [
            {"role": "user", "content": rng.choice(IDENTITY_QUESTIONS)},
            {"role": "assistant", "content": rng.choice(IDENTITY_ANSWERS)},
        ]
    if kind == "safety":
        return [
            {"role": "user", "content": rng.choice(HARMFUL_REQUESTS)},
            {"role": "assistant", "content": rng.choice(REFUSALS)},
        ]
    return _unknown(rng)


def generate(seed: int, scale: float) -> Iterator[dict]:
    rng = source_rng(seed, "chat")
    kinds = [kind for kind, share in KIND_SHARES.items() for _ in range(scaled(round(CONVERSATIONS * share), scale, 2))]
    rng.shuffle(kinds)
    for i, kind in enumerate(kinds):
        messages = _system(rng) + conversation(kind, rng)
        turns = sum(1 for m in messages if m["role"] == "user")
        yield {"id": f"chat-{i:06d}", "messages": messages, "meta": meta_json(kind=kind, turns=turns, lang="en")}
