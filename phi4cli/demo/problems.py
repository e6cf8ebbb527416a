"""Problem families shared by `synthetic`, `chat` and `benchmarks`.

- arithmetic word problems (the `arith` benchmark, GSM8K format: step-by-step solution, then "#### N");
- other worked math (unit conversions, linear equations, percentages, fractions, geometry);
- small Python functions with a docstring and tests (the `pyfunc` benchmark, HumanEval-like);
- JSON key-value stores (the `kv_recall` benchmark and the `long` documents).

Arithmetic word problems take two steps and keep their numbers small (factors 2-6, results under 50) so that a
few-million-parameter model learns them within the toy compute budget (docs/toy-results.md): with three- and
four-step problems and results in the hundreds, every toy stage stayed near zero, where no stage can show
its effect. Every sentence has several phrasings, so the same problem reads differently from document to
document.

The held-out split is built so that 13-gram decontamination finds planted benchmark items and (almost)
nothing else, although training and benchmark problems come from the same templates: held-out arithmetic
problems are picked by a hash of their structure (`structure_key`: the template and its numbers) and
worded with question phrasings of their own (`Phrasing`); held-out functions take their parameters from
ranges no training function uses.
"""

from __future__ import annotations

import json
import random
import re
from collections.abc import Callable
from dataclasses import dataclass, replace

from phi4cli.demo.common import is_held_out
from phi4cli.demo.words import BAKED, PEOPLE, PLANTS, RELATIVES, SAVINGS_GOALS, SHOPS, THINGS

ARITH_HELD_OUT_ONE_IN = 3


@dataclass(frozen=True)
class Problem:
    family: str  # "arith", "units", "algebra", "percent", "fractions", "geometry"
    question: str
    steps: tuple[str, ...]
    answer: int
    key: str = ""  # arithmetic problems: the structure key that decides the held-out split

    @property
    def solution(self) -> str:
        """The GSM8K-style answer: one line per step, then the final number after '####'."""
        return "\n".join(self.steps) + f"\n#### {self.answer}"


def _person(rng: random.Random) -> tuple[str, str, str]:
    return rng.choice(PEOPLE)


def _count(n: int, noun: str) -> str:
    return f"{n} {noun}" if n == 1 else f"{n} {noun}s"


def _money(amount: int) -> str:
    return f"${amount}"


# --------------------------------------------------------------------------- arithmetic word problems


def _pick(rng: random.Random, *variants: str) -> str:
    """One of several phrasings: the same problem reads differently from document to document."""
    return rng.choice(variants)


@dataclass(frozen=True)
class Phrasing:
    """Chooses the wording of question sentences for one side of the held-out split.

    Training problems use several shared phrasings; benchmark problems use one of their own. Otherwise
    a benchmark question would share, by chance, 13-word windows of template text and one number with
    a handful of training problems — too rare for decontamination's common-phrase whitelist, frequent
    enough to be flagged. A benchmark phrasing is a training one with a phrase of its own in each sentence
    ("... at $4 each" -> "... for a school project, at $4 each"), so that every 13-word window holds a
    benchmark-only word while a toy model still recognises the problem: wholly reworded questions cost
    it half its exact match (docs/toy-results.md). The solution steps are shared: their windows carry all
    of a problem's numbers, and the structure-key split keeps those numbers out of training.
    """

    rng: random.Random
    held_out: bool

    def ask(self, benchmark: str, *training: str) -> str:
        return benchmark if self.held_out else self.rng.choice(training)


def _shopping(rng: random.Random, say: Phrasing) -> Problem:
    name, he, _ = _person(rng)
    _, things = rng.choice(THINGS)
    n, price = rng.randint(2, 5), rng.randint(2, 6)
    cost = n * price
    bill = rng.choice([b for b in (10, 20, 50) if b > cost])
    he_ = he.capitalize()
    question = " ".join(
        [
            say.ask(
                f"{name} buys {n} {things} for a school project, at {_money(price)} each.",
                f"{name} buys {n} {things} at {_money(price)} each.",
                f"{name} buys {n} {things} that cost {_money(price)} each.",
                f"At the {rng.choice(SHOPS)}, {name} picks up {n} {things}, and each one costs {_money(price)}.",
                f"Each of the {things} costs {_money(price)}, and {name} buys {n} of them.",
            ),
            say.ask(
                f"At the till {he} pays with a {_money(bill)} bill.",
                f"{he_} pays with a {_money(bill)} bill.",
                f"{he_} hands the cashier a {_money(bill)} bill.",
                f"{he_} gives the seller {_money(bill)}.",
            ),
            say.ask(
                f"How much change is {he} owed?",
                f"How much change does {he} get?",
                f"How much change should {he} receive?",
                f"How many dollars does {he} get back?",
            ),
        ]
    )
    return Problem(
        "arith",
        question,
        (
            _pick(
                rng,
                f"The {things} cost {n} * {price} = {_money(cost)}.",
                f"First find the total cost: {n} * {price} = {_money(cost)}.",
                f"{n} {things} at {_money(price)} each cost {n} * {price} = {_money(cost)}.",
            ),
            _pick(
                rng,
                f"The change is {bill} - {cost} = {_money(bill - cost)}.",
                f"{he_} gets back {bill} - {cost} = {_money(bill - cost)}.",
            ),
        ),
        bill - cost,
    )


def _sharing(rng: random.Random, say: Phrasing) -> Problem:
    name, he, his = _person(rng)
    _, things = rng.choice(THINGS)
    g, f = rng.randint(2, 5), rng.randint(2, 5)
    n = g * f + rng.randint(1, 9)
    x = g * f
    question = " ".join(
        [
            say.ask(
                f"{name} has {n} {things} in a jar.",
                f"{name} has {n} {things}.",
                f"{name} starts with {n} {things}.",
                f"There are {n} {things} in {his} collection, {name} says.",
            ),
            say.ask(
                f"{he.capitalize()} gives {g} {things} to each of {f} classmates and keeps the rest.",
                f"{he.capitalize()} gives {g} {things} to each of {f} friends and keeps the rest.",
                f"{he.capitalize()} shares some with {f} friends, giving each friend {g} {things}.",
                f"{f} friends each get {g} {things} from {name}.",
            ),
            say.ask(
                f"How many {things} are still in the jar?",
                f"How many {things} does {name} keep?",
                f"How many {things} are left for {name}?",
                f"How many {things} does {he} have now?",
            ),
        ]
    )
    return Problem(
        "arith",
        question,
        (
            _pick(
                rng,
                f"{he.capitalize()} gives away {g} * {f} = {x} {things}.",
                f"The friends get {g} * {f} = {x} {things} in total.",
            ),
            _pick(
                rng, f"{he.capitalize()} keeps {n} - {x} = {n - x} {things}.", f"{n} - {x} = {n - x} {things} are left."
            ),
        ),
        n - x,
    )


def _savings(rng: random.Random, say: Phrasing) -> Problem:
    name, he, _ = _person(rng)
    goal = rng.choice(SAVINGS_GOALS)
    w, n = rng.randint(2, 6), rng.randint(2, 5)
    saved = w * n
    cost = rng.randint(2, saved - 1)
    question = " ".join(
        [
            say.ask(
                f"{name} saves {_money(w)} every week for {n} weeks in a row.",
                f"{name} saves {_money(w)} every week for {n} weeks.",
                f"For {n} weeks, {name} puts {_money(w)} into a savings jar each week.",
                f"{name} puts aside {_money(w)} a week, and does this for {n} weeks.",
            ),
            say.ask(
                f"Then {he} buys a new {goal} for {_money(cost)}.",
                f"Then {he} buys a {goal} for {_money(cost)}.",
                f"After that {he} spends {_money(cost)} on a {goal}.",
                f"{he.capitalize()} then uses {_money(cost)} of it to buy a {goal}.",
            ),
            say.ask(
                f"How much money does {he} still have?",
                f"How much money does {he} have left?",
                f"How many dollars does {he} have left?",
                "How much of the savings is left?",
            ),
        ]
    )
    return Problem(
        "arith",
        question,
        (
            _pick(
                rng,
                f"{he.capitalize()} saves {w} * {n} = {_money(saved)}.",
                f"The savings come to {w} * {n} = {_money(saved)}.",
            ),
            _pick(
                rng,
                f"After buying the {goal}, {he} has {saved} - {cost} = {_money(saved - cost)} left.",
                f"{saved} - {cost} = {_money(saved - cost)} is left.",
            ),
        ),
        saved - cost,
    )


def _garden(rng: random.Random, say: Phrasing) -> Problem:
    name, he, his = _person(rng)
    plant = rng.choice(PLANTS)
    r, k = rng.randint(2, 5), rng.randint(2, 6)
    total = r * k
    x = rng.randint(1, total // 2)
    question = " ".join(
        [
            say.ask(
                f"{name} plants {r} rows of {plant} plants in the garden, with {k} plants in each row.",
                f"{name} plants {r} rows of {plant} plants with {k} plants in each row.",
                f"In {his} garden, {name} makes {r} rows of {plant} plants, with {k} plants per row.",
                f"{name} sets out {plant} plants in {r} rows of {k}.",
            ),
            say.ask(
                f"Later, {x} of the plants are eaten by rabbits.",
                f"{x} of the {plant} plants do not grow.",
                f"Later, {x} of the plants die.",
                f"Unfortunately, {x} plants are eaten by rabbits.",
            ),
            say.ask(
                f"How many {plant} plants are still in the garden?",
                f"How many {plant} plants grow?",
                "How many plants are still growing?",
                f"How many {plant} plants are left?",
            ),
        ]
    )
    return Problem(
        "arith",
        question,
        (
            _pick(
                rng,
                f"{he.capitalize()} plants {r} * {k} = {total} {plant} plants.",
                f"There are {r} * {k} = {total} plants at the start.",
            ),
            _pick(
                rng,
                f"Of these, {total} - {x} = {total - x} plants grow.",
                f"{total} - {x} = {total - x} plants are left.",
            ),
        ),
        total - x,
    )


def _baking(rng: random.Random, say: Phrasing) -> Problem:
    name, he, _ = _person(rng)
    baked = rng.choice(BAKED)
    c, b = rng.randint(2, 5), rng.randint(2, 6)
    need = c * b
    have = rng.randint(1, need - 1)
    question = " ".join(
        [
            say.ask(
                f"Each batch of {baked} takes {c} cups of flour to make.",
                f"One batch of {baked} needs {c} cups of flour.",
                f"A recipe for {baked} uses {c} cups of flour per batch.",
                f"Each batch of {baked} takes {c} cups of flour.",
            ),
            say.ask(
                f"{name} wants to make {b} batches of {baked} for a school fair and already has {have} cups of flour.",
                f"{name} wants to make {b} batches of {baked} and already has {have} cups of flour.",
                f"{name} plans to bake {b} batches and has {have} cups of flour in the cupboard.",
            ),
            say.ask(
                f"How much more flour, in cups, does {he} have to buy?",
                f"How many more cups of flour does {he} need?",
                f"How many cups of flour must {he} buy?",
            ),
        ]
    )
    return Problem(
        "arith",
        question,
        (
            _pick(
                rng,
                f"{b} batches need {c} * {b} = {need} cups of flour.",
                f"For {b} batches {he} needs {c} * {b} = {need} cups.",
            ),
            _pick(
                rng,
                f"{he.capitalize()} needs {need} - {have} = {need - have} more cups.",
                f"So {he} must buy {need} - {have} = {need - have} cups.",
            ),
        ),
        need - have,
    )


def _ages(rng: random.Random, say: Phrasing) -> Problem:
    name, _, his = _person(rng)
    relative, _ = rng.choice(RELATIVES)
    a, d, y = rng.randint(3, 15), rng.randint(2, 10), rng.randint(2, 9)
    now = a + d
    question = " ".join(
        [
            say.ask(f"{name} is {a} years old today.", f"{name} is {a} years old.", f"{name} has just turned {a}."),
            say.ask(
                f"{name} has a {relative} who is {d} years older.",
                f"{his.capitalize()} {relative} is {d} years older than {name}.",
                f"{his.capitalize()} {relative} is {d} years older.",
                f"{name}'s {relative} was born {d} years earlier.",
            ),
            say.ask(
                f"How old will the {relative} be {y} years from now?",
                f"How old will {his} {relative} be in {y} years?",
                f"In {y} years, how old will the {relative} be?",
            ),
        ]
    )
    return Problem(
        "arith",
        question,
        (
            _pick(
                rng,
                f"{name}'s {relative} is {a} + {d} = {now} years old now.",
                f"The {relative} is now {a} + {d} = {now}.",
            ),
            _pick(
                rng,
                f"In {y} years the {relative} will be {now} + {y} = {now + y} years old.",
                f"After {y} more years: {now} + {y} = {now + y}.",
            ),
        ),
        now + y,
    )


def _practice(rng: random.Random, say: Phrasing) -> Problem:
    name, he, _ = _person(rng)
    instrument = rng.choice(["piano", "violin", "guitar", "flute", "drums", "cello", "trumpet"])
    minutes = rng.choice([15, 20, 30])
    days = rng.choice([d for d in range(2, 9) if minutes * d % 60 == 0])
    total = minutes * days
    question = " ".join(
        [
            say.ask(
                f"{name} practises the {instrument} for {minutes} minutes every single day.",
                f"{name} practises the {instrument} for {minutes} minutes every day.",
                f"Every day {name} spends {minutes} minutes practising the {instrument}.",
                f"{name} has {instrument} practice for {minutes} minutes a day.",
            ),
            say.ask(
                f"How many hours does {he} practise in {days} days altogether?",
                f"How many hours does {he} practise in {days} days?",
                f"How many hours of practice is that over {days} days?",
            ),
        ]
    )
    return Problem(
        "arith",
        question,
        (
            _pick(
                rng,
                f"{he.capitalize()} practises {minutes} * {days} = {total} minutes.",
                f"Over {days} days that is {minutes} * {days} = {total} minutes.",
            ),
            _pick(
                rng,
                f"That is {total} / 60 = {total // 60} hours.",
                f"An hour has 60 minutes, so {total} / 60 = {total // 60} hours.",
            ),
        ),
        total // 60,
    )


def _pocket_money(rng: random.Random, say: Phrasing) -> Problem:
    name, he, his = _person(rng)
    money = rng.randint(3, 15) * 2
    half = money // 2
    lunch = rng.randint(1, half - 1)
    thing = rng.choice(["book", "board game", "puzzle", "kite", "poster", "football", "paint set"])
    question = " ".join(
        [
            say.ask(
                f"{name} has {_money(money)} in a wallet.",
                f"{name} has {_money(money)}.",
                f"{name} gets {_money(money)} for {his} birthday.",
            ),
            say.ask(
                f"{he.capitalize()} spends half of it on a new {thing} and then {_money(lunch)} on lunch.",
                f"{he.capitalize()} spends half of it on a {thing} and then {_money(lunch)} on lunch.",
                f"{he.capitalize()} uses half of the money to buy a {thing}, "
                f"and later spends {_money(lunch)} on lunch.",
            ),
            say.ask(
                "How much money is left in the wallet?",
                f"How much money does {he} have left?",
                "How many dollars are left?",
            ),
        ]
    )
    return Problem(
        "arith",
        question,
        (
            _pick(
                rng,
                f"Half of {money} is {money} / 2 = {_money(half)}.",
                f"The {thing} costs {money} / 2 = {_money(half)}.",
            ),
            _pick(
                rng,
                f"After lunch {he} has {half} - {lunch} = {_money(half - lunch)} left.",
                f"{half} - {lunch} = {_money(half - lunch)} is left.",
            ),
        ),
        half - lunch,
    )


def _average(rng: random.Random, say: Phrasing) -> Problem:
    name, _, his = _person(rng)
    game = rng.choice(["basketball", "spelling", "quiz", "bowling", "darts", "chess puzzle"])
    a = rng.randint(2, 25)
    b = rng.choice([x for x in range(2, 26) if (a + x) % 2 == 0])
    total = a + b
    question = " ".join(
        [
            say.ask(
                f"{name} plays two {game} games this week and scores {a} and {b} points.",
                f"In two {game} games {name} scores {a} and {b} points.",
                f"{name} plays two {game} games and scores {a} and {b} points.",
                f"{name}'s scores in two {game} games are {a} and {b}.",
            ),
            say.ask(
                "What is the average score per game?",
                f"What is {his} average score per game?",
                "What is the mean score?",
            ),
        ]
    )
    return Problem(
        "arith",
        question,
        (
            _pick(rng, f"The total score is {a} + {b} = {total}.", f"Add the scores: {a} + {b} = {total}."),
            _pick(
                rng,
                f"The average is {total} / 2 = {total // 2}.",
                f"Divide by the number of games: {total} / 2 = {total // 2}.",
            ),
        ),
        total // 2,
    )


ARITH_TEMPLATES: list[Callable[[random.Random, Phrasing], Problem]] = [
    _shopping,
    _sharing,
    _savings,
    _garden,
    _baking,
    _ages,
    _practice,
    _pocket_money,
    _average,
]


def structure_key(template: Callable, question: str) -> str:
    """A problem's identity for the held-out split: its template and its numbers.

    Names, objects and phrasing are cosmetic, so a benchmark problem never has a twin in training that
    differs only in who buys what or how it is worded.
    """
    numbers = sorted(int(n) for n in re.findall(r"[0-9]+", question))  # sorted: phrasings order them differently
    return f"{template.__name__.lstrip('_')}:{','.join(map(str, numbers))}"


def arith_problem(rng: random.Random, held_out: bool) -> Problem:
    """A random arithmetic word problem on the requested side of the split, with its structure key."""
    while True:
        template = rng.choice(ARITH_TEMPLATES)
        problem = template(rng, Phrasing(rng, held_out))
        key = structure_key(template, problem.question)
        if is_held_out(f"arith:{key}", ARITH_HELD_OUT_ONE_IN) == held_out:
            return replace(problem, key=key)


# --------------------------------------------------------------------------- other worked math

# (larger unit, its singular, smaller unit, factor): one larger unit is `factor` smaller units
CONVERSIONS = [
    ("kilometres", "kilometre", "metres", 1000),
    ("metres", "metre", "centimetres", 100),
    ("kilograms", "kilogram", "grams", 1000),
    ("hours", "hour", "minutes", 60),
    ("minutes", "minute", "seconds", 60),
    ("litres", "litre", "millilitres", 1000),
    ("days", "day", "hours", 24),
    ("weeks", "week", "days", 7),
    ("centimetres", "centimetre", "millimetres", 10),
]


def units_problem(rng: random.Random) -> Problem:
    big, one, small, factor = rng.choice(CONVERSIONS)
    x = rng.randint(2, 12)
    if rng.random() < 0.5:
        return Problem(
            "units",
            f"Convert {x} {big} to {small}.",
            (f"One {one} is {factor} {small}, so {x} {big} is {x} * {factor} = {x * factor} {small}.",),
            x * factor,
        )
    return Problem(
        "units",
        f"How many {big} are {x * factor} {small}?",
        (f"One {one} is {factor} {small}, so {x * factor} {small} is {x * factor} / {factor} = {x} {big}.",),
        x,
    )


def algebra_problem(rng: random.Random) -> Problem:
    x, a, b = rng.randint(1, 15), rng.randint(2, 9), rng.randint(1, 20)
    form = rng.randrange(3)
    if form == 0:
        c = a * x + b
        return Problem(
            "algebra",
            f"Solve for x: {a}x + {b} = {c}.",
            (
                f"Subtract {b} from both sides: {a}x = {c} - {b} = {c - b}.",
                f"Divide both sides by {a}: x = {c - b} / {a} = {x}.",
            ),
            x,
        )
    if form == 1:
        x = x + b  # keep a*x - b positive
        c = a * x - b
        return Problem(
            "algebra",
            f"Solve for x: {a}x - {b} = {c}.",
            (
                f"Add {b} to both sides: {a}x = {c} + {b} = {c + b}.",
                f"Divide both sides by {a}: x = {c + b} / {a} = {x}.",
            ),
            x,
        )
    c = a * (x + b)
    return Problem(
        "algebra",
        f"Solve for x: {a}(x + {b}) = {c}.",
        (
            f"Divide both sides by {a}: x + {b} = {c} / {a} = {x + b}.",
            f"Subtract {b} from both sides: x = {x + b} - {b} = {x}.",
        ),
        x,
    )


def percent_problem(rng: random.Random) -> Problem:
    p = rng.choice([10, 20, 25, 50, 75, 5, 30, 40])
    n = rng.randint(1, 12) * (100 // _gcd(p, 100))
    part = n * p // 100
    if rng.random() < 0.5:
        return Problem("percent", f"What is {p}% of {n}?", (f"{p}% of {n} is {n} * {p} / 100 = {part}.",), part)
    item = rng.choice(["jacket", "lamp", "bicycle helmet", "chess set", "backpack"])
    return Problem(
        "percent",
        f"A {item} costs ${n}. In a sale the price is cut by {p}%. What is the sale price in dollars?",
        (f"The discount is {n} * {p} / 100 = ${part}.", f"The sale price is {n} - {part} = ${n - part}."),
        n - part,
    )


def _gcd(a: int, b: int) -> int:
    while b:
        a, b = b, a % b
    return a


def fractions_problem(rng: random.Random) -> Problem:
    den = rng.choice([2, 3, 4, 5, 6, 8, 10])
    num = rng.randint(1, den - 1)
    n = den * rng.randint(2, 12)
    return Problem(
        "fractions",
        f"What is {num}/{den} of {n}?",
        (
            f"To find {num}/{den} of {n}, divide {n} by {den} and multiply by {num}.",
            f"{n} / {den} = {n // den}, and {n // den} * {num} = {num * n // den}.",
        ),
        num * n // den,
    )


def geometry_problem(rng: random.Random) -> Problem:
    length, width = rng.randint(2, 20), rng.randint(2, 20)
    shape = rng.randrange(3)
    if shape == 0:
        return Problem(
            "geometry",
            f"A rectangle is {length} cm long and {width} cm wide. What is its area in square centimetres?",
            (f"The area is length times width: {length} * {width} = {length * width}.",),
            length * width,
        )
    if shape == 1:
        return Problem(
            "geometry",
            f"A rectangle is {length} m long and {width} m wide. What is its perimeter in metres?",
            (f"The perimeter is 2 * {length} + 2 * {width} = {2 * length} + {2 * width} = {2 * (length + width)}.",),
            2 * (length + width),
        )
    base = 2 * rng.randint(1, 10)
    return Problem(
        "geometry",
        f"A triangle has a base of {base} cm and a height of {width} cm. What is its area in square centimetres?",
        (f"The area of a triangle is half of base times height: {base} * {width} / 2 = {base * width // 2}.",),
        base * width // 2,
    )


MATH_FAMILIES: dict[str, Callable[[random.Random], Problem]] = {
    "units": units_problem,
    "algebra": algebra_problem,
    "percent": percent_problem,
    "fractions": fractions_problem,
    "geometry": geometry_problem,
}


# --------------------------------------------------------------------------- Python functions

WORDS = [
    "apple",
    "banana",
    "river",
    "planet",
    "garden",
    "yellow",
    "pencil",
    "orbit",
    "ladder",
    "echo",
    "mosaic",
    "zebra",
    "violin",
    "quartz",
    "lemon",
    "tiger",
]


def _ints(rng: random.Random, lo: int = -5, hi: int = 30) -> list[int]:
    return [rng.randint(lo, hi) for _ in range(rng.randint(1, 7))]


def _text(rng: random.Random) -> str:
    return " ".join(rng.sample(WORDS, rng.randint(1, 4)))


@dataclass(frozen=True)
class FuncFamily:
    """A family of small Python functions: templates filled from `params`, checked by `reference`.

    `params(rng, held_out)` draws the parameters from the training or the benchmark range; the ranges
    are disjoint, so a benchmark function's parameters (in its name, docstring and body) never occur in
    a training function of the same family, and no 13-gram that contains one can recur by chance. (Where
    two families' bodies read alike — `x > 9`, `x % 9` — their ranges are disjoint across families too.)
    """

    family: str
    params: Callable[[random.Random, bool], dict]
    signature: str  # "def multiply_by_{k}(xs: list[int]) -> list[int]:"
    doc: str
    body: str  # indented by four spaces, ends with a newline
    inputs: Callable[[random.Random, dict], tuple]  # one argument tuple
    edge_inputs: tuple[tuple, ...]  # fixed argument tuples every test list includes
    reference: Callable[[dict, tuple], object]  # what the function must return, written independently


def _between(rng: random.Random, held_out: bool, train: tuple[int, int], bench: tuple[int, int]) -> int:
    return rng.randint(*(bench if held_out else train))


def _two_of(rng: random.Random, held_out: bool, train: range, bench: range) -> dict:
    a, b = sorted(rng.sample(bench if held_out else train, 2))
    return {"a": a, "b": b}


def _clamp_params(rng: random.Random, held_out: bool) -> dict:
    lo = _between(rng, held_out, (0, 9), (30, 39))
    return {"lo": lo, "hi": lo + rng.randint(3, 20) if held_out else rng.randint(12, 29)}


SEPARATORS = {"dash": "-", "comma": ", ", "space": " ", "plus": "+", "slash": "/", "semicolon": "; "}
TRAIN_SEPARATORS, BENCH_SEPARATORS = ("dash", "comma", "space"), ("plus", "slash", "semicolon")


def _repeat_params(rng: random.Random, held_out: bool) -> dict:
    sepname = rng.choice(BENCH_SEPARATORS if held_out else TRAIN_SEPARATORS)
    return {"n": _between(rng, held_out, (2, 4), (5, 7)), "sepname": sepname, "sep": SEPARATORS[sepname]}


TRAIN_FIZZ, BENCH_FIZZ = ("Fizz", "Buzz", "Ping", "Pong"), ("Zip", "Zap", "Tick", "Tock")


def _fizzbuzz_params(rng: random.Random, held_out: bool) -> dict:
    params = _two_of(rng, held_out, range(2, 6), range(6, 10))
    wa, wb = rng.sample(BENCH_FIZZ if held_out else TRAIN_FIZZ, 2)
    return {**params, "wa": wa, "wb": wb, "wa_lower": wa.lower(), "wb_lower": wb.lower()}


def _quadratic_params(rng: random.Random, held_out: bool) -> dict:
    return {
        "a": _between(rng, held_out, (1, 3), (4, 6)),
        "b": _between(rng, held_out, (0, 4), (5, 9)),
        "c": _between(rng, held_out, (0, 4), (5, 9)),
    }


def _caesar(text: str, k: int) -> str:
    shifted = "abcdefghijklmnopqrstuvwxyz"
    table = str.maketrans(shifted, shifted[k:] + shifted[:k])
    return text.translate(table)


FUNC_FAMILIES = [
    FuncFamily(
        "multiply",
        lambda r, h: {"k": _between(r, h, (2, 9), (11, 19))},
        "def multiply_by_{k}(xs: list[int]) -> list[int]:",
        "Multiply each number in xs by {k} and return the results as a new list.",
        "    return [x * {k} for x in xs]\n",
        lambda r, p: (_ints(r),),
        (([],),),
        lambda p, a: [x * p["k"] for x in a[0]],
    ),
    FuncFamily(
        "count_letter",
        lambda r, h: {"c": r.choice("nopstuvwy" if h else "abcdeghilmr")},
        "def count_letter_{c}(text: str) -> int:",
        "Count how many times the letter '{c}' appears in text.",
        '    return text.count("{c}")\n',
        lambda r, p: (_text(r),),
        (("",),),
        lambda p, a: sum(1 for ch in a[0] if ch == p["c"]),
    ),
    FuncFamily(
        "clamp",
        _clamp_params,
        "def clamp_{lo}_to_{hi}(x: int) -> int:",
        "Limit x to the range {lo} to {hi}: values below {lo} become {lo} and values above {hi} become {hi}.",
        "    return max({lo}, min({hi}, x))\n",
        lambda r, p: (r.randint(-10, 70),),
        ((-100,), (100,)),
        lambda p, a: p["lo"] if a[0] < p["lo"] else p["hi"] if a[0] > p["hi"] else a[0],
    ),
    FuncFamily(
        "sum_multiples",
        lambda r, h: _two_of(r, h, range(2, 6), range(6, 10)),
        "def sum_multiples_of_{a}_or_{b}(n: int) -> int:",
        "Add up the numbers from 1 to n - 1 that are divisible by {a} or by {b}.",
        "    return sum(i for i in range(1, n) if i % {a} == 0 or i % {b} == 0)\n",
        lambda r, p: (r.randint(1, 60),),
        ((1,),),
        lambda p, a: sum(set(range(p["a"], a[0], p["a"])) | set(range(p["b"], a[0], p["b"]))),
    ),
    FuncFamily(
        "keep_above",
        lambda r, h: {"t": _between(r, h, (0, 9), (14, 25))},
        "def keep_above_{t}(xs: list[int]) -> list[int]:",
        "Keep the numbers in xs that are greater than {t}, in their original order.",
        "    return [x for x in xs if x > {t}]\n",
        lambda r, p: (_ints(r),),
        (([],),),
        lambda p, a: list(filter(lambda x: x > p["t"], a[0])),
    ),
    FuncFamily(
        "quadratic",
        _quadratic_params,
        "def quadratic_{a}_{b}_{c}(x: int) -> int:",
        "Compute {a}*x*x + {b}*x + {c} for the integer x.",
        "    return {a} * x * x + {b} * x + {c}\n",
        lambda r, p: (r.randint(-6, 6),),
        ((0,),),
        lambda p, a: p["a"] * a[0] ** 2 + p["b"] * a[0] + p["c"],
    ),
    FuncFamily(
        "repeat",
        _repeat_params,
        "def repeat_{n}_times_{sepname}(word: str) -> str:",
        "Join {n} copies of word, separated by '{sep}'.",
        '    return "{sep}".join([word] * {n})\n',
        lambda r, p: (r.choice(WORDS),),
        (("",),),
        lambda p, a: p["sep"].join(a[0] for _ in range(p["n"])),
    ),
    FuncFamily(
        "sequence",
        lambda r, h: {"s": _between(r, h, (0, 9), (10, 20)), "d": _between(r, h, (1, 4), (5, 9))},
        "def term_{s}_step_{d}(n: int) -> int:",
        "Return the n-th term of the sequence that starts at {s} and grows by {d} each time (n = 1 gives {s}).",
        "    return {s} + (n - 1) * {d}\n",
        lambda r, p: (r.randint(1, 30),),
        ((1,),),
        lambda p, a: list(range(p["s"], 10_000, p["d"]))[a[0] - 1],
    ),
    FuncFamily(
        "count_divisible",
        lambda r, h: {"k": _between(r, h, (2, 5), (10, 13))},
        "def count_divisible_by_{k}(xs: list[int]) -> int:",
        "Count the numbers in xs that are divisible by {k}.",
        "    return sum(1 for x in xs if x % {k} == 0)\n",
        lambda r, p: (_ints(r, 0, 50),),
        (([],),),
        lambda p, a: len([x for x in a[0] if x % p["k"] == 0]),
    ),
    FuncFamily(
        "fizzbuzz",
        _fizzbuzz_params,
        "def {wa_lower}_{wb_lower}_{a}_{b}(n: int) -> str:",
        "Return '{wa}{wb}' if n is divisible by both {a} and {b}, '{wa}' if it is divisible only by {a}, "
        "'{wb}' if it is divisible only by {b}, and str(n) otherwise.",
        '    if n % {a} == 0 and n % {b} == 0:\n        return "{wa}{wb}"\n    if n % {a} == 0:\n'
        '        return "{wa}"\n    if n % {b} == 0:\n        return "{wb}"\n    return str(n)\n',
        lambda r, p: (r.randint(1, 90),),
        ((1,),),
        lambda p, a: (p["wa"] * (a[0] % p["a"] == 0) + p["wb"] * (a[0] % p["b"] == 0)) or str(a[0]),
    ),
    FuncFamily(
        "digit_sum",
        lambda r, h: {"k": _between(r, h, (2, 5), (6, 9))},
        "def digit_sum_times_{k}(n: int) -> int:",
        "Add up the decimal digits of the non-negative integer n and multiply the total by {k}.",
        "    return sum(int(d) for d in str(n)) * {k}\n",
        lambda r, p: (r.randint(0, 99999),),
        ((0,),),
        lambda p, a: p["k"] * sum(map(int, str(a[0]))),
    ),
    FuncFamily(
        "shift_letters",
        lambda r, h: {"k": _between(r, h, (1, 12), (13, 25))},
        "def shift_letters_by_{k}(text: str) -> str:",
        "Move every lowercase letter in text {k} places forward in the alphabet, wrapping from z back to a; "
        "leave all other characters unchanged.",
        '    out = []\n    for ch in text:\n        if "a" <= ch <= "z":\n'
        '            out.append(chr((ord(ch) - ord("a") + {k}) % 26 + ord("a")))\n'
        '        else:\n            out.append(ch)\n    return "".join(out)\n',
        lambda r, p: (_text(r),),
        (("xyz, ABC!",),),
        lambda p, a: _caesar(a[0], p["k"]),
    ),
    FuncFamily(
        "running_totals",
        lambda r, h: {"s": _between(r, h, (0, 10), (11, 30))},
        "def running_totals_from_{s}(xs: list[int]) -> list[int]:",
        "Start a total at {s}, add the numbers of xs one by one, and return the total after each addition.",
        "    total = {s}\n    out = []\n    for x in xs:\n        total += x\n        out.append(total)\n"
        "    return out\n",
        lambda r, p: (_ints(r),),
        (([],),),
        lambda p, a: [p["s"] + sum(a[0][: i + 1]) for i in range(len(a[0]))],
    ),
    FuncFamily(
        "pairs_summing",
        lambda r, h: {"t": _between(r, h, (5, 12), (13, 20))},
        "def count_pairs_summing_to_{t}(xs: list[int]) -> int:",
        "Count the pairs of positions i < j for which xs[i] + xs[j] equals {t}.",
        "    count = 0\n    for i in range(len(xs)):\n        for j in range(i + 1, len(xs)):\n"
        "            if xs[i] + xs[j] == {t}:\n                count += 1\n    return count\n",
        lambda r, p: (_ints(r, 0, 15),),
        (([],),),
        lambda p, a: sum(1 for i, x in enumerate(a[0]) for y in a[0][i + 1 :] if x + y == p["t"]),
    ),
    FuncFamily(
        "shorten",
        lambda r, h: {"n": _between(r, h, (3, 7), (8, 12))},
        "def shorten_to_{n}(text: str) -> str:",
        "Return text unchanged if it has at most {n} characters; otherwise return its first {n} characters "
        "followed by '...'.",
        '    if len(text) <= {n}:\n        return text\n    return text[:{n}] + "..."\n',
        lambda r, p: (_text(r),),
        (("",),),
        lambda p, a: a[0] if len(a[0]) <= p["n"] else a[0][: p["n"]] + "...",
    ),
]


@dataclass(frozen=True)
class PyFunc:
    family: str
    name: str  # the entry point
    prompt: str  # signature and docstring, HumanEval style
    body: str  # the canonical solution: the indented function body
    tests: str  # assert statements calling the function by name
    description: str  # the docstring's first sentence, for exercises written in prose

    @property
    def code(self) -> str:
        return self.prompt + self.body


def _call(name: str, args: tuple) -> str:
    return f"{name}({', '.join(repr(a) for a in args)})"


def make_pyfunc(fam: FuncFamily, rng: random.Random, held_out: bool = False) -> PyFunc:
    """One function of a family. Benchmark prompts carry a doctest example line, as HumanEval's do;
    training docstrings do not, so an example next to the body is never a window training text has."""
    params = fam.params(rng, held_out)
    signature = fam.signature.format(**params)
    name = signature[len("def ") : signature.index("(")]
    description = fam.doc.format(**params)
    if held_out:
        example = fam.inputs(rng, params)
        docstring = (
            f'    """{description}\n\n    >>> {_call(name, example)}\n    {fam.reference(params, example)!r}\n    """\n'
        )
    else:
        docstring = f'    """{description}"""\n'
    cases = [*fam.edge_inputs, *(fam.inputs(rng, params) for _ in range(3))]
    if fam.family == "fizzbuzz":  # make sure every branch is exercised
        cases = [(params["a"] * params["b"],), (params["a"],), (params["b"],), *cases]
    tests = "".join(f"assert {_call(name, args)} == {fam.reference(params, args)!r}\n" for args in cases)
    return PyFunc(fam.family, name, f"{signature}\n{docstring}", fam.body.format(**params), tests, description)


def pyfunc(rng: random.Random, held_out: bool) -> PyFunc:
    """A random small function from the training or the benchmark parameter range."""
    return make_pyfunc(rng.choice(FUNC_FAMILIES), rng, held_out)


# --------------------------------------------------------------------------- key-value stores


def random_uuid(rng: random.Random) -> str:
    h = f"{rng.getrandbits(128):032x}"
    return f"{h[:8]}-{h[8:12]}-{h[12:16]}-{h[16:20]}-{h[20:]}"


def kv_store(rng: random.Random, n_pairs: int) -> dict[str, str]:
    return {random_uuid(rng): random_uuid(rng) for _ in range(n_pairs)}


def kv_json(store: dict[str, str], indent: int | None = None) -> str:
    return json.dumps(store, indent=indent)
