"""`acquired`: longer book-, paper- and forum-like documents — the stand-in for acquired sources.

Kinds (`meta["kind"]`):
- `book_chapter`: a numbered chapter with numbered sections on one theme of the knowledge base,
  explanations, worked examples and review questions with answers;
- `lab_report`: a student-style paper (abstract, introduction, method, results table, discussion)
  measuring a real physical law — pendulum period, free fall, Ohm's law, density, Hooke's law — with
  simulated measurement noise, so the numbers agree with physics;
- `forum_thread`: a question on a homework forum and the replies that solve it.
"""

from __future__ import annotations

import math
import random
from collections.abc import Callable, Iterator

from phi4cli.demo.common import document, scaled, source_rng
from phi4cli.demo.facts import (
    ANIMALS,
    CONCEPTS,
    CONTINENTS,
    COUNTRIES,
    ELEMENTS,
    EVENTS,
    PEOPLE,
    PLANETS,
    animal_sentences,
    concept_paragraph,
    country_sentences,
    element_sentences,
    event_sentence,
    person_sentence,
    planet_sentences,
    training_questions,
)
from phi4cli.demo.problems import MATH_FAMILIES, arith_problem
from phi4cli.demo.words import FORUM_USERS
from phi4cli.demo.words import PEOPLE as NAMES

DOCUMENTS = 900  # at scale 1: about 2.5 MB
KIND_SHARES = {"book_chapter": 0.5, "lab_report": 0.2, "forum_thread": 0.3}
G = 9.81  # m/s^2, for the simulated experiments

# ------------------------------------------------------------------------------------ book chapters

Section = tuple[str, list[str]]  # (heading, paragraphs)


def _chunks(items: list, size: int) -> list[list]:
    return [items[i : i + size] for i in range(0, len(items), size)]


def _geography_sections(rng: random.Random) -> list[Section]:
    sections = []
    for continent in rng.sample(CONTINENTS, rng.randint(3, 5)):
        countries = [c for c in COUNTRIES if c.continent == continent]
        paragraphs = [" ".join(country_sentences(c, rng)) for c in rng.sample(countries, min(len(countries), 8))]
        sections.append((f"The countries of {continent}", paragraphs))
    return sections


def _chemistry_sections(rng: random.Random) -> list[Section]:
    elements = sorted(rng.sample(ELEMENTS, rng.randint(12, 24)), key=lambda e: e.number)
    return [
        (f"Elements {part[0].number} to {part[-1].number}", [" ".join(element_sentences(e, rng)) for e in part])
        for part in _chunks(elements, 4)
    ]


def _astronomy_sections(rng: random.Random) -> list[Section]:
    inner, outer = PLANETS[:4], PLANETS[4:]
    return [
        ("The inner planets", [" ".join(planet_sentences(p, rng)) for p in inner]),
        ("The outer planets", [" ".join(planet_sentences(p, rng)) for p in outer]),
    ]


def _history_sections(rng: random.Random) -> list[Section]:
    events = sorted(rng.sample(EVENTS, rng.randint(14, 26)), key=lambda e: e.year)
    return [
        (f"From {part[0].year} to {part[-1].year}", [" ".join(event_sentence(e, rng) for e in part)])
        for part in _chunks(events, 5)
    ]


def _science_people_sections(rng: random.Random) -> list[Section]:
    people = rng.sample(PEOPLE, rng.randint(10, 20))
    return [
        ("Pioneers and their discoveries", [" ".join(person_sentence(p, rng) for p in part)])
        for part in _chunks(people, 4)
    ]


def _animal_sections(rng: random.Random) -> list[Section]:
    animals = rng.sample(ANIMALS, rng.randint(15, 28))
    return [
        ("Animals and their groups", [" ".join(s for a in part for s in animal_sentences(a, rng))])
        for part in _chunks(animals, 5)
    ]


def _math_sections(rng: random.Random) -> list[Section]:
    sections = []
    for family in rng.sample(sorted(MATH_FAMILIES), rng.randint(3, 5)):
        examples = []
        for _ in range(rng.randint(3, 6)):
            p = MATH_FAMILIES[family](rng)
            examples.append(f"Example. {p.question} {' '.join(p.steps)} The answer is {p.answer}.")
        sections.append((f"Worked examples: {family}", examples))
    word_problems = [arith_problem(rng, held_out=False) for _ in range(rng.randint(2, 4))]
    sections.append(
        (
            "Problems in words",
            [f"Example. {p.question} {' '.join(p.steps)} The answer is {p.answer}." for p in word_problems],
        )
    )
    return sections


# theme -> (book title, the concepts a chapter explains, the builder of its knowledge-base sections)
THEMES: dict[str, tuple[str, list[str], Callable[[random.Random], list[Section]]]] = {
    "geography": (
        "Countries of the World",
        ["Weather and climate", "Volcanoes and moving plates"],
        _geography_sections,
    ),
    "chemistry": ("The Chemical Elements", ["Atoms", "Chemical reactions", "States of matter"], _chemistry_sections),
    "astronomy": (
        "The Solar System",
        ["The Solar System", "The seasons", "Phases of the Moon", "Gravity"],
        _astronomy_sections,
    ),
    "history": (
        "A Short History of the Modern World",
        ["The printing press", "The Industrial Revolution", "The Roman Empire", "Ancient Egypt"],
        _history_sections,
    ),
    "science": (
        "Pioneers of Science",
        ["The scientific method", "Energy", "Electric circuits", "Light and colour", "Sound"],
        _science_people_sections,
    ),
    "biology": (
        "The Living World",
        ["Cells", "Photosynthesis", "Food chains", "Digestion", "The immune system"],
        _animal_sections,
    ),
    "mathematics": (
        "Numbers and Shapes",
        [
            "Fractions",
            "Percentages",
            "Prime numbers",
            "The Pythagorean theorem",
            "Area and perimeter",
            "Binary numbers and algorithms",
        ],
        _math_sections,
    ),
}
CONCEPT_BY_TITLE = {c.title: c for c in CONCEPTS}


def _review_questions(rng: random.Random, theme: str) -> str:
    subjects = {
        "geography": {"geography", "economics"},
        "history": {"history"},
        "science": {"history of science"},
        "chemistry": {"chemistry"},
        "astronomy": {"astronomy"},
        "biology": {"biology"},
        "mathematics": {"mathematics"},
    }[theme]
    pool = [q for q in training_questions() if q.subject in subjects]
    chosen = rng.sample(pool, min(len(pool), rng.randint(3, 6)))
    questions = "\n".join(f"{i + 1}. {q.question}" for i, q in enumerate(chosen))
    answers = "\n".join(f"{i + 1}. {q.answer}" for i, q in enumerate(chosen))
    return f"Review questions\n\n{questions}\n\nAnswers\n\n{answers}"


def book_chapter(rng: random.Random, number: int, theme: str | None = None) -> str:
    theme = theme or rng.choice(sorted(THEMES))
    book_title, concept_titles, build_sections = THEMES[theme]
    sections: list[Section] = [
        (t, [concept_paragraph(CONCEPT_BY_TITLE[t], rng, min_sentences=5)])
        for t in rng.sample(concept_titles, rng.randint(2, len(concept_titles)))
    ]
    sections += build_sections(rng)
    parts = [f"Chapter {number}: {book_title}"]
    for i, (heading, paragraphs) in enumerate(sections):
        parts.append(f"{number}.{i + 1} {heading}")
        parts.extend(paragraphs)
    if rng.random() < 0.7:
        parts.append(_review_questions(rng, theme))
    return "\n\n".join(parts)


# ------------------------------------------------------------------------------------ lab reports


def _noisy(rng: random.Random, value: float, relative: float = 0.01) -> float:
    return value * (1 + rng.gauss(0, relative))


def _pendulum(rng: random.Random) -> dict:
    lengths = [0.2 * i for i in range(1, rng.randint(5, 8))]
    rows, estimates = [], []
    for length in lengths:
        period = _noisy(rng, 2 * math.pi * math.sqrt(length / G))
        estimate = 4 * math.pi**2 * length / period**2
        estimates.append(estimate)
        rows.append(f"{length:.2f} | {period:.3f} | {estimate:.2f}")
    return {
        "title": "Measuring the acceleration due to gravity with a simple pendulum",
        "law": "For small swings, the period T of a simple pendulum of length L is T = 2π√(L/g), so g = 4π²L/T².",
        "method": "A small metal bob was hung from a light string. For each length, the time for ten swings was "
        "measured with a stopwatch and divided by ten to give the period.",
        "header": "length L (m) | period T (s) | g estimate (m/s²)",
        "rows": rows,
        "quantity": "the acceleration due to gravity",
        "estimate": sum(estimates) / len(estimates),
        "accepted": G,
        "unit": "m/s²",
    }


def _free_fall(rng: random.Random) -> dict:
    heights = [0.5 * i for i in range(1, rng.randint(5, 8))]
    rows, estimates = [], []
    for height in heights:
        t = _noisy(rng, math.sqrt(2 * height / G))
        estimates.append(2 * height / t**2)
        rows.append(f"{height:.2f} | {t:.3f} | {estimates[-1]:.2f}")
    return {
        "title": "Timing a falling ball to find g",
        "law": "An object dropped from rest falls a height h in a time t with h = g t² / 2, so g = 2h / t².",
        "method": "A steel ball was released from an electromagnet and its fall was timed with a light gate "
        "at several heights. Each time is the average of five drops.",
        "header": "height h (m) | time t (s) | g estimate (m/s²)",
        "rows": rows,
        "quantity": "the acceleration due to gravity",
        "estimate": sum(estimates) / len(estimates),
        "accepted": G,
        "unit": "m/s²",
    }


def _ohms_law(rng: random.Random) -> dict:
    resistance = rng.choice([47, 68, 100, 150, 220, 330])
    rows, estimates = [], []
    for volts in range(1, rng.randint(6, 10)):
        milliamps = _noisy(rng, 1000 * volts / resistance)
        estimates.append(1000 * volts / milliamps)
        rows.append(f"{volts:.1f} | {milliamps:.1f} | {estimates[-1]:.1f}")
    return {
        "title": f"Checking Ohm's law for a {resistance} ohm resistor",
        "law": "Ohm's law states that the voltage V across a resistor equals the current I times its resistance "
        "R, so R = V / I.",
        "method": "The resistor was connected in series with an ammeter to an adjustable power supply, and a "
        "voltmeter was connected across it. The voltage was raised one volt at a time.",
        "header": "voltage V (V) | current I (mA) | R estimate (ohm)",
        "rows": rows,
        "quantity": "the resistance",
        "estimate": sum(estimates) / len(estimates),
        "accepted": resistance,
        "unit": "ohm",
    }


DENSITIES = {"aluminium": 2.70, "iron": 7.87, "copper": 8.96, "lead": 11.34, "zinc": 7.14}


def _density(rng: random.Random) -> dict:
    metal = rng.choice(sorted(DENSITIES))
    rows, estimates = [], []
    for side in (1.0, 1.5, 2.0, 2.5, 3.0)[: rng.randint(3, 5)]:
        mass = _noisy(rng, DENSITIES[metal] * side**3)
        estimates.append(mass / side**3)
        rows.append(f"{side:.1f} | {side**3:.2f} | {mass:.1f} | {estimates[-1]:.2f}")
    return {
        "title": "Identifying a metal from its density",
        "law": "Density is mass divided by volume. Each pure metal has its own density, so measuring density "
        "can identify the metal.",
        "method": "Cubes of an unknown metal were measured with a ruler and weighed on a balance.",
        "header": "side (cm) | volume (cm³) | mass (g) | density (g/cm³)",
        "rows": rows,
        "quantity": f"the density, which matches {metal}",
        "estimate": sum(estimates) / len(estimates),
        "accepted": DENSITIES[metal],
        "unit": "g/cm³",
    }


def _hookes_law(rng: random.Random) -> dict:
    k = rng.choice([10, 20, 25, 40, 50])
    rows, estimates = [], []
    for grams in range(50, 50 * rng.randint(5, 8), 50):
        force = grams / 1000 * G
        extension = _noisy(rng, force / k)
        estimates.append(force / extension)
        rows.append(f"{grams} | {force:.3f} | {100 * extension:.2f} | {estimates[-1]:.1f}")
    return {
        "title": "Measuring the stiffness of a spring",
        "law": "Hooke's law says that the extension of a spring is proportional to the force on it: F = k x.",
        "method": "Slotted masses were hung from the spring one at a time and the extension was read from a "
        "metre rule behind it.",
        "header": "mass (g) | force (N) | extension (cm) | k estimate (N/m)",
        "rows": rows,
        "quantity": "the spring constant",
        "estimate": sum(estimates) / len(estimates),
        "accepted": k,
        "unit": "N/m",
    }


EXPERIMENTS = [_pendulum, _free_fall, _ohms_law, _density, _hookes_law]
ERROR_SOURCES = [
    "reaction time when starting and stopping the timer",
    "reading the scale by eye",
    "the precision of the instruments",
]


def lab_report(rng: random.Random) -> str:
    e = rng.choice(EXPERIMENTS)(rng)
    authors = ", ".join(rng.sample([n for n, _, _ in NAMES], 3))
    error = 100 * abs(e["estimate"] - e["accepted"]) / e["accepted"]
    return "\n\n".join(
        [
            e["title"],
            f"Authors: {authors}",
            f"Abstract\n\nWe measured {e['quantity']} and found {e['estimate']:.2f} {e['unit']}, within "
            f"{error:.1f}% of the expected value of {e['accepted']} {e['unit']}.",
            f"1. Introduction\n\n{e['law']} {concept_paragraph(CONCEPT_BY_TITLE['The scientific method'], rng)}",
            f"2. Method\n\n{e['method']} Every measurement was repeated to reduce random error.",
            "3. Results\n\n" + "\n".join([e["header"], *e["rows"]]),
            f"4. Discussion\n\nThe mean of our estimates is {e['estimate']:.2f} {e['unit']}. The expected value is "
            f"{e['accepted']} {e['unit']}, so the percentage error is {error:.1f}%. The largest source of error was "
            f"{rng.choice(ERROR_SOURCES)}.",
            "5. Conclusion\n\nThe measurements agree with the law within experimental error.",
        ]
    )


# ------------------------------------------------------------------------------------ forum threads


def _forum_exchange(rng: random.Random, first: bool) -> tuple[str, str, str]:
    """(question, answer, thanks) for one round of a homework thread."""
    opener = "Can someone check my working?" if first else "I have another one, if that's OK."
    if rng.random() < 0.6:
        p = (
            arith_problem(rng, held_out=False)
            if rng.random() < 0.6
            else MATH_FAMILIES[rng.choice(sorted(MATH_FAMILIES))](rng)
        )
        answer = "Here is how I would do it:\n" + "\n".join(p.steps) + f"\nSo the answer is {p.answer}."
        thanks = f"Thanks! I got {p.answer + rng.choice([1, 2, 10])} because I mixed up one step. Now it makes sense."
        return f"{opener} {p.question}", answer, thanks
    q = rng.choice(training_questions())
    return f"{opener} {q.question} My friend and I disagree about this one.", q.statement, "Thank you, that settles it."


def forum_thread(rng: random.Random) -> str:
    asker, *helpers = rng.sample(FORUM_USERS, 4)
    posts = []
    for round_ in range(rng.randint(1, 3)):
        question, answer, thanks = _forum_exchange(rng, first=round_ == 0)
        posts += [(asker, question), (rng.choice(helpers), answer), (asker, thanks)]
    background = concept_paragraph(rng.choice(CONCEPTS), rng)
    posts.append((rng.choice(helpers), f"Good explanations. A bit of background that helped me: {background}"))
    body = "\n\n".join(f"{user} wrote:\n{text}" for user, text in posts)
    title = rng.choice(["Stuck on a homework problem", "Quick question", "Please check my answers", "Help needed"])
    return f"Thread: {title}\nForum: Homework help\n\n{body}"


# ------------------------------------------------------------------------------------ the source


def generate(seed: int, scale: float) -> Iterator[dict]:
    rng = source_rng(seed, "acquired")
    kinds = [kind for kind, share in KIND_SHARES.items() for _ in range(scaled(round(DOCUMENTS * share), scale, 2))]
    rng.shuffle(kinds)
    for i, kind in enumerate(kinds):
        if kind == "book_chapter":
            text = book_chapter(rng, rng.randint(1, 12))
        elif kind == "lab_report":
            text = lab_report(rng)
        else:
            text = forum_thread(rng)
        yield document(f"acquired-{i:06d}", text, "acquired", kind=kind, lang="en")
