"""`synthetic`: textbook-style lessons — the stand-in for the paper's synthetic data.

Each document is one lesson of a kind the paper's pipeline produces from seeds:
- `word_problems`: multi-step arithmetic word problems, each with a step-by-step solution ending "#### N";
- `math_practice`: unit conversions, equations, percentages, fractions, geometry, after a short explanation;
- `code_exercises`: write-a-function exercises with tests, fill-in-the-middle exercises (the body is
  missing), and code-to-instruction exercises (say what given code does);
- `quiz`: multiple-choice questions on the knowledge base, answered and explained (MMLU format);
- `dialogue`: a student and a teacher working through a problem turn by turn;
- `drills`: arithmetic facts, one per line ("14 + 7 = 21"), over the ranges the word problems use, as a
  workbook's drill pages: a held-out problem needs the same facts in new combinations;
- `reading`: a fact sheet, one subject's facts from the knowledge base stated plainly — the held-out ones
  too, as prose (never as a quiz), so that a toy model reads each fact often enough to learn it.

Only problems on the training side of the held-out split are used, so nothing here is a benchmark item.
"""

from __future__ import annotations

import random
from collections.abc import Iterator

from phi4cli.demo.common import document, scaled, source_rng
from phi4cli.demo.facts import CONCEPTS, concept_paragraph, fact_questions, render_mc, training_questions
from phi4cli.demo.problems import MATH_FAMILIES, Problem, PyFunc, arith_problem, pyfunc
from phi4cli.demo.words import PEOPLE

LESSONS = 4200  # at scale 1: about 5 MB
KIND_SHARES = {
    "word_problems": 0.55,
    "math_practice": 0.04,
    "code_exercises": 0.06,
    "quiz": 0.06,
    "dialogue": 0.1,
    "reading": 0.12,
    "drills": 0.07,
}
CONCEPT_FOR = {  # the explanation that opens a math_practice lesson
    "percent": "Percentages",
    "fractions": "Fractions",
    "geometry": "Area and perimeter",
}


def _exercise(number: int, problem: Problem) -> str:
    return f"Exercise {number}. {problem.question}\nSolution.\n{problem.solution}"


def word_problems(rng: random.Random) -> str:
    problems = [arith_problem(rng, held_out=False) for _ in range(rng.randint(3, 7))]
    intro = rng.choice(
        [
            "Read each problem carefully, decide which operations are needed, and write down every step.",
            "These exercises practise problems that need more than one step. Check each answer by estimating first.",
            "Word problems describe a situation in words. Turn the words into calculations one step at a time.",
        ]
    )
    title = rng.choice(["Multi-step word problems", "Everyday arithmetic", "Problem solving practice"])
    return f"Lesson: {title}\n\n{intro}\n\n" + "\n\n".join(_exercise(i + 1, p) for i, p in enumerate(problems))


def math_practice(rng: random.Random) -> str:
    family = rng.choice(sorted(MATH_FAMILIES))
    problems = [MATH_FAMILIES[family](rng) for _ in range(rng.randint(4, 8))]
    title = {
        "units": "Converting units",
        "algebra": "Solving linear equations",
        "percent": "Percentages",
        "fractions": "Fractions of a number",
        "geometry": "Area and perimeter",
    }[family]
    parts = [f"Lesson: {title}"]
    concept = next((c for c in CONCEPTS if c.title == CONCEPT_FOR.get(family)), None)
    if concept:
        parts.append(concept_paragraph(concept, rng))
    parts += [_exercise(i + 1, p) for i, p in enumerate(problems)]
    return "\n\n".join(parts)


def _write_function(func: PyFunc) -> str:
    return (
        f"Write a Python function `{func.name}`. {func.description}\n\nSolution:\n```python\n{func.code}```\n\n"
        f"Tests:\n```python\n{func.tests}```"
    )


def _fill_in_the_middle(func: PyFunc) -> str:
    return (
        f"Fill in the missing body of this function.\n\n```python\n{func.prompt}    # missing code\n```\n\n"
        f"Answer:\n```python\n{func.body}```"
    )


def _explain_code(func: PyFunc) -> str:
    return f"What does this function do?\n\n```python\n{func.code}```\n\nAnswer: {func.description}"


def code_exercises(rng: random.Random) -> str:
    exercises = []
    for i in range(rng.randint(2, 4)):
        func = pyfunc(rng, held_out=False)
        write = rng.choice([_write_function, _write_function, _fill_in_the_middle, _explain_code])
        exercises.append(f"Exercise {i + 1}. {write(func)}")
    return "Lesson: Small Python functions\n\n" + "\n\n".join(exercises)


def quiz(rng: random.Random) -> str:
    questions = rng.sample(training_questions(), rng.randint(4, 8))
    items = []
    for i, q in enumerate(questions):
        prompt, letter, _ = render_mc(q, rng)
        items.append(f"Question {i + 1}.\n{prompt} {letter}\nExplanation: {q.statement}")
    subject = questions[0].subject
    return f"Quiz: {subject} and more\n\nChoose the correct answer for each question.\n\n" + "\n\n".join(items)


def dialogue(rng: random.Random) -> str:
    student = rng.choice(PEOPLE)[0]
    problem = (
        arith_problem(rng, held_out=False)
        if rng.random() < 0.6
        else MATH_FAMILIES[rng.choice(sorted(MATH_FAMILIES))](rng)
    )
    opening = rng.choice(["Let us go step by step.", "What do we know first?", "Start with what the problem gives us."])
    turns = [f"{student}: Can you help me with this problem? {problem.question}", f"Teacher: Of course. {opening}"]
    for step in problem.steps:
        turns.append(f"Teacher: {step}")
        turns.append(f"{student}: {rng.choice(['I see.', 'That makes sense.', 'OK, and then?', 'Got it.'])}")
    turns.append(f"{student}: So the answer is {problem.answer}?")
    turns.append(f"Teacher: {rng.choice(['Exactly.', 'Yes, well done.', 'Correct.'])} The answer is {problem.answer}.")
    return "A conversation between a student and a teacher.\n\n" + "\n".join(turns)


def reading(rng: random.Random) -> str:
    subject = rng.choice(fact_questions()).subject  # a subject by its size: every fact equally often
    pool = [q for q in fact_questions() if q.subject == subject]
    statements = [q.statement for q in rng.sample(pool, min(len(pool), rng.randint(20, 40)))]
    title = rng.choice([f"Fact sheet: {subject}", f"Reading: {subject}", f"Facts to remember: {subject}"])
    return f"{title}\n\n" + "\n".join(statements)


DRILLS = ("addition", "subtraction", "multiplication", "division")


def drill_fact(operation: str, rng: random.Random) -> str:
    """One fact over the ranges the word problems use (problems.ARITH_TEMPLATES)."""
    if operation == "addition":
        a, b = rng.randint(1, 30), rng.randint(1, 30)
        return f"{a} + {b} = {a + b}"
    if operation == "subtraction":
        a = rng.randint(2, 50)
        b = rng.randint(1, a - 1)
        return f"{a} - {b} = {a - b}"
    if operation == "multiplication":
        a, b = rng.randint(2, 9), rng.randint(2, 9)
        return f"{a} * {b} = {a * b}"
    divisor = rng.choice([2, 3, 60])
    quotient = rng.randint(1, 8 if divisor == 60 else 25)
    return f"{divisor * quotient} / {divisor} = {quotient}"


def drills(rng: random.Random) -> str:
    operation = rng.choice(DRILLS)
    facts = [drill_fact(operation, rng) for _ in range(rng.randint(20, 40))]
    return f"Drill: {operation}\n\n" + "\n".join(facts)


KINDS = {
    "word_problems": word_problems,
    "math_practice": math_practice,
    "code_exercises": code_exercises,
    "quiz": quiz,
    "dialogue": dialogue,
    "reading": reading,
    "drills": drills,
}


def generate(seed: int, scale: float) -> Iterator[dict]:
    rng = source_rng(seed, "synthetic")
    kinds = [kind for kind, share in KIND_SHARES.items() for _ in range(scaled(round(LESSONS * share), scale, 2))]
    rng.shuffle(kinds)
    for i, kind in enumerate(kinds):
        yield document(f"synthetic-{i:06d}", KINDS[kind](rng), "synthetic", kind=kind, lang="en")
