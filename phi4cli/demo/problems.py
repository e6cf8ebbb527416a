"""Problem families shared by `synthetic`, `chat` and `benchmarks`.

- arithmetic word problems (the `arith` benchmark, GSM8K format: step-by-step solution, then "#### N");
- other worked math (unit conversions, linear equations, percentages, fractions, geometry);
- small Python functions with a docstring and tests (the `pyfunc` benchmark, HumanEval-like);
- JSON key-value stores (the `kv_recall` benchmark and the `long` documents).

Arithmetic word problems keep their numbers small (factors under 10, addends under 21, results mostly under 200)
so that a few-million-parameter model learns them within the toy compute budget (docs/toy-results.md): a
harder world leaves every toy stage at zero, where no stage can show its effect. Every sentence has several
phrasings, so the same problem reads differently from document to document.

The held-out split is built so that 13-gram decontamination finds planted benchmark items and nothing
else, although training and benchmark problems come from the same templates: held-out arithmetic problems
are picked by a hash of their structure (`structure_key`) and worded with question phrasings of their own
(`Phrasing`); held-out functions take their parameters from ranges no training function uses.
"""

from __future__ import annotations

import json
import random
import re
from collections.abc import Callable
from dataclasses import dataclass, replace

from phi4cli.demo.common import is_held_out
from phi4cli.demo.words import BAKED, PEOPLE, PLANTS, RELATIVES, SAVINGS_GOALS, SHOPS, THINGS, VEHICLES

ARITH_HELD_OUT_ONE_IN = 8


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
    enough to be flagged. The solution steps are shared: their windows carry all of a problem's numbers,
    and the structure-key split keeps those numbers out of training.
    """

    rng: random.Random
    held_out: bool

    def ask(self, benchmark: str, *training: str) -> str:
        return benchmark if self.held_out else self.rng.choice(training)


def _shopping(rng: random.Random, say: Phrasing) -> Problem:
    name, he, _ = _person(rng)
    _, things = rng.choice(THINGS)
    n, price = rng.randint(2, 6), rng.randint(1, 9)
    cost = n * price
    bill = next(b for b in (10, 20, 50, 100, 200) if b > cost)
    he_ = he.capitalize()
    question = " ".join(
        [
            say.ask(
                f"{name} needs {n} {things} for a school project, and they are sold for {_money(price)} apiece.",
                f"{name} buys {n} {things} at {_money(price)} each.",
                f"{name} buys {n} {things} that cost {_money(price)} each.",
                f"At the {rng.choice(SHOPS)}, {name} picks up {n} {things}, and each one costs {_money(price)}.",
                f"Each of the {things} costs {_money(price)}, and {name} buys {n} of them.",
            ),
            say.ask(
                f"At the till {he} hands over one {_money(bill)} note.",
                f"{he_} pays with a {_money(bill)} bill.",
                f"{he_} hands the cashier a {_money(bill)} bill.",
                f"{he_} gives the seller {_money(bill)}.",
            ),
            say.ask(
                f"What amount of change is {he} owed?",
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


def _bakery(rng: random.Random, say: Phrasing) -> Problem:
    shop = rng.choice(["bakery", "café", "school kitchen", "market stall"])
    morning, afternoon = rng.randint(6, 20), rng.randint(5, 15)
    total = morning + afternoon
    sold = rng.randint(5, total - 6)
    given = rng.randint(2, total - sold - 1)
    gone, left = sold + given, total - sold - given
    question = " ".join(
        [
            say.ask(
                f"Before lunch the {shop} turns out {morning} loaves, and after lunch another {afternoon}.",
                f"A {shop} bakes {morning} loaves of bread in the morning and {afternoon} loaves in the afternoon.",
                f"In the morning a {shop} bakes {morning} loaves of bread, "
                f"and in the afternoon it bakes {afternoon} more.",
                f"A {shop} makes {morning} loaves before noon and {afternoon} loaves after noon.",
            ),
            say.ask(
                f"Customers take home {sold} of them, while {given} are set aside for a charity.",
                f"It sells {sold} loaves and gives {given} loaves to a food bank.",
                f"{sold} loaves are sold and {given} are donated to a food bank.",
                f"During the day it sells {sold} loaves, and it gives {given} to a shelter.",
            ),
            say.ask(
                "What number of loaves is still on the shelves?",
                "How many loaves are left?",
                f"How many loaves does the {shop} have left?",
                "How many loaves remain at the end of the day?",
            ),
        ]
    )
    return Problem(
        "arith",
        question,
        (
            _pick(
                rng,
                f"The {shop} bakes {morning} + {afternoon} = {total} loaves.",
                f"Altogether {morning} + {afternoon} = {total} loaves are baked.",
            ),
            _pick(
                rng,
                f"It sells or gives away {sold} + {given} = {gone} loaves.",
                f"{sold} + {given} = {gone} loaves leave the {shop}.",
            ),
            _pick(
                rng, f"So {total} - {gone} = {left} loaves are left.", f"That leaves {total} - {gone} = {left} loaves."
            ),
        ),
        left,
    )


def _reading(rng: random.Random, say: Phrasing) -> Problem:
    name, he, _ = _person(rng)
    a, d, b, e = rng.randint(2, 9), rng.randint(2, 9), rng.randint(2, 9), rng.randint(2, 9)
    x, y = a * d, b * e
    question = " ".join(
        [
            say.ask(
                f"{name} keeps a reading log. It shows {a} pages on each of {d} days, "
                f"followed by {b} pages on each of {e} days.",
                f"{name} reads {a} pages a day for {d} days and then {b} pages a day for {e} days.",
                f"For {d} days {name} reads {a} pages each day. "
                f"After that, {he} reads {b} pages each day for {e} days.",
                f"{name} is reading a long novel: {a} pages a day for the first {d} days, "
                f"then {b} pages a day for the next {e} days.",
            ),
            say.ask(
                "Counting every entry, what total does the log show?",
                f"How many pages does {he} read altogether?",
                f"How many pages has {he} read in total?",
                f"What is the total number of pages {he} reads?",
            ),
        ]
    )
    return Problem(
        "arith",
        question,
        (
            _pick(
                rng, f"In the first {d} days {he} reads {a} * {d} = {x} pages.", f"First part: {a} * {d} = {x} pages."
            ),
            _pick(
                rng, f"In the next {e} days {he} reads {b} * {e} = {y} pages.", f"Second part: {b} * {e} = {y} pages."
            ),
            _pick(rng, f"Altogether {he} reads {x} + {y} = {x + y} pages.", f"The total is {x} + {y} = {x + y} pages."),
        ),
        x + y,
    )


def _sharing(rng: random.Random, say: Phrasing) -> Problem:
    name, he, his = _person(rng)
    _, things = rng.choice(THINGS)
    g, f = rng.randint(2, 9), rng.randint(2, 9)
    n = g * f + rng.randint(1, 9)
    x = g * f
    question = " ".join(
        [
            say.ask(
                f"{name} keeps {n} {things} in a jar on {his} desk.",
                f"{name} has {n} {things}.",
                f"{name} starts with {n} {things}.",
                f"There are {n} {things} in {his} collection, {name} says.",
            ),
            say.ask(
                f"{he.capitalize()} hands out {g} apiece to {f} classmates.",
                f"{he.capitalize()} gives {g} {things} to each of {f} friends and keeps the rest.",
                f"{he.capitalize()} shares some with {f} friends, giving each friend {g} {things}.",
                f"{f} friends each get {g} {things} from {name}.",
            ),
            say.ask(
                f"Once that is done, what number of {things} stays in the jar?",
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


def _travel(rng: random.Random, say: Phrasing) -> Problem:
    vehicle = rng.choice(VEHICLES)
    s1, h1, s2, h2 = rng.randint(2, 9) * 10, rng.randint(2, 4), rng.randint(2, 9) * 10, rng.randint(2, 4)
    d1, d2 = s1 * h1, s2 * h2
    question = " ".join(
        [
            say.ask(
                f"On a long journey a {vehicle} holds a steady {s1} km per hour for {h1} hours, then a steady {s2} km "
                f"per hour for {h2} hours.",
                f"A {vehicle} travels at {s1} km per hour for {h1} hours and then at {s2} km per hour for {h2} hours.",
                f"For {h1} hours a {vehicle} moves at {s1} km per hour. Then it changes speed to {s2} km per hour "
                f"for another {h2} hours.",
                f"A {vehicle} covers the first part of a trip at {s1} km per hour, which takes {h1} hours, and the "
                f"second part at {s2} km per hour, which takes {h2} hours.",
            ),
            say.ask(
                "What distance does it cover over the whole journey, measured in kilometres?",
                f"How many kilometres does the {vehicle} travel in total?",
                f"How far does the {vehicle} go altogether, in kilometres?",
                "What is the total distance in kilometres?",
            ),
        ]
    )
    return Problem(
        "arith",
        question,
        (
            _pick(rng, f"First it travels {s1} * {h1} = {d1} km.", f"The first part is {s1} * {h1} = {d1} km."),
            _pick(rng, f"Then it travels {s2} * {h2} = {d2} km.", f"The second part is {s2} * {h2} = {d2} km."),
            _pick(
                rng,
                f"In total the {vehicle} travels {d1} + {d2} = {d1 + d2} km.",
                f"The total distance is {d1} + {d2} = {d1 + d2} km.",
            ),
        ),
        d1 + d2,
    )


def _savings(rng: random.Random, say: Phrasing) -> Problem:
    name, he, _ = _person(rng)
    goal = rng.choice(SAVINGS_GOALS)
    w, n = rng.randint(3, 9), rng.randint(2, 9)
    saved = w * n
    cost = rng.randint(5, saved - 1)
    question = " ".join(
        [
            say.ask(
                f"Week after week, {name} adds {_money(w)} to a piggy bank, for {n} weeks in a row.",
                f"{name} saves {_money(w)} every week for {n} weeks.",
                f"For {n} weeks, {name} puts {_money(w)} into a savings jar each week.",
                f"{name} puts aside {_money(w)} a week, and does this for {n} weeks.",
            ),
            say.ask(
                f"The piggy bank is then opened and {_money(cost)} goes on a new {goal}.",
                f"Then {he} buys a {goal} for {_money(cost)}.",
                f"After that {he} spends {_money(cost)} on a {goal}.",
                f"{he.capitalize()} then uses {_money(cost)} of it to buy a {goal}.",
            ),
            say.ask(
                "What sum remains in the piggy bank afterwards?",
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
    r, k = rng.randint(2, 9), rng.randint(3, 9)
    total = r * k
    x = rng.randint(2, total // 2)
    question = " ".join(
        [
            say.ask(
                f"A vegetable bed belonging to {name} has {r} neat rows, and every row holds {k} young {plant} plants.",
                f"{name} plants {r} rows of {plant} plants with {k} plants in each row.",
                f"In {his} garden, {name} makes {r} rows of {plant} plants, with {k} plants per row.",
                f"{name} sets out {plant} plants in {r} rows of {k}.",
            ),
            say.ask(
                f"A late frost kills {x} of them.",
                f"{x} of the {plant} plants do not grow.",
                f"Later, {x} of the plants die.",
                f"Unfortunately, {x} plants are eaten by rabbits.",
            ),
            say.ask(
                "What number of plants survives the frost?",
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
    c, b = rng.randint(2, 6), rng.randint(2, 9)
    need = c * b
    have = rng.randint(2, need - 1)
    question = " ".join(
        [
            say.ask(
                f"It takes {c} cups of flour to bake a single batch of {baked}.",
                f"One batch of {baked} needs {c} cups of flour.",
                f"A recipe for {baked} uses {c} cups of flour per batch.",
                f"Each batch of {baked} takes {c} cups of flour.",
            ),
            say.ask(
                f"For a school fair {name} is baking {b} batches, but only {have} cups of flour are at home.",
                f"{name} wants to make {b} batches of {baked} and already has {have} cups of flour.",
                f"{name} plans to bake {b} batches and has {have} cups of flour in the cupboard.",
            ),
            say.ask(
                "What quantity of flour, in cups, is still missing?",
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


def _tickets(rng: random.Random, say: Phrasing) -> Problem:
    place = rng.choice(["museum", "zoo", "aquarium", "cinema", "planetarium", "science fair"])
    adult, child = rng.randint(5, 9), rng.randint(2, 6)
    na, nc = rng.randint(1, 4), rng.randint(1, 4)
    a_cost, c_cost = na * adult, nc * child
    question = " ".join(
        [
            say.ask(
                f"Entry to the {place} is {_money(adult)} for grown-ups and {_money(child)} for kids.",
                f"Adult tickets for the {place} cost {_money(adult)} and child tickets cost {_money(child)}.",
                f"At the {place}, an adult ticket is {_money(adult)} and a child ticket is {_money(child)}.",
                f"The {place} charges {_money(adult)} per adult and {_money(child)} per child.",
            ),
            say.ask(
                f"A group arrives made up of {_count(na, 'grown-up')} and {_count(nc, 'kid')}.",
                f"A family buys {_count(na, 'adult ticket')} and {_count(nc, 'child ticket')}.",
                f"A family of {_count(na, 'adult')} and {nc} {'child' if nc == 1 else 'children'} visits.",
            ),
            say.ask(
                "What does the group spend on entry altogether?",
                "How much does the family pay?",
                "How much do they pay in total?",
                "What is the total cost of the tickets?",
            ),
        ]
    )
    return Problem(
        "arith",
        question,
        (
            _pick(
                rng,
                f"The adult tickets cost {na} * {adult} = {_money(a_cost)}.",
                f"Adults: {na} * {adult} = {_money(a_cost)}.",
            ),
            _pick(
                rng,
                f"The child tickets cost {nc} * {child} = {_money(c_cost)}.",
                f"Children: {nc} * {child} = {_money(c_cost)}.",
            ),
            _pick(
                rng,
                f"Together they cost {a_cost} + {c_cost} = {_money(a_cost + c_cost)}.",
                f"The total is {a_cost} + {c_cost} = {_money(a_cost + c_cost)}.",
            ),
        ),
        a_cost + c_cost,
    )


def _ages(rng: random.Random, say: Phrasing) -> Problem:
    name, _, his = _person(rng)
    relative, _ = rng.choice(RELATIVES)
    a, d, y = rng.randint(5, 20), rng.randint(2, 15), rng.randint(2, 9)
    now = a + d
    question = " ".join(
        [
            say.ask(f"At present {name} is aged {a}.", f"{name} is {a} years old.", f"{name} has just turned {a}."),
            say.ask(
                f"{name} has a {relative} whose age is greater by {d} years.",
                f"{his.capitalize()} {relative} is {d} years older than {name}.",
                f"{his.capitalize()} {relative} is {d} years older.",
                f"{name}'s {relative} was born {d} years earlier.",
            ),
            say.ask(
                f"What age will that {relative} reach {y} years from now?",
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


def _boxes(rng: random.Random, say: Phrasing) -> Problem:
    shop = rng.choice(SHOPS)
    _, things = rng.choice(THINGS)
    b, k, loose = rng.randint(2, 9), rng.randint(4, 9), rng.randint(2, 9)
    boxed = b * k
    total = boxed + loose
    sold = rng.randint(2, total - 1)
    question = " ".join(
        [
            say.ask(
                f"In the storeroom of a {shop} sit {b} cartons, each packed with {k} {things}, along with {loose} "
                f"{things} that are not in any carton.",
                f"A {shop} has {b} boxes of {things} with {k} {things} in each box, plus {loose} loose {things}.",
                f"On the shelves of a {shop} there are {b} boxes holding {k} {things} each, and {loose} more {things} "
                f"lie loose on the counter.",
                f"A {shop} stocks {b} full boxes of {things}, {k} to a box, and {loose} single {things}.",
            ),
            say.ask(
                f"By closing time, {sold} {things} have been bought.",
                f"It sells {sold} {things}.",
                f"During the day {sold} {things} are sold.",
                f"Customers buy {sold} {things}.",
            ),
            say.ask(
                f"What number of {things} remains in stock?",
                f"How many {things} are left?",
                f"How many {things} does the {shop} have now?",
            ),
        ]
    )
    return Problem(
        "arith",
        question,
        (
            _pick(
                rng,
                f"The boxes hold {b} * {k} = {boxed} {things}.",
                f"{b} boxes of {k} make {b} * {k} = {boxed} {things}.",
            ),
            _pick(
                rng,
                f"With the loose ones there are {boxed} + {loose} = {total} {things}.",
                f"Adding the loose ones gives {boxed} + {loose} = {total}.",
            ),
            _pick(
                rng,
                f"After selling {sold}, {total} - {sold} = {total - sold} {things} are left.",
                f"{total} - {sold} = {total - sold} {things} remain.",
            ),
        ),
        total - sold,
    )


def _practice(rng: random.Random, say: Phrasing) -> Problem:
    name, he, _ = _person(rng)
    instrument = rng.choice(["piano", "violin", "guitar", "flute", "drums", "cello", "trumpet"])
    minutes = rng.choice([10, 15, 20, 30, 60])
    days = rng.choice([d for d in range(2, 13) if minutes * d % 60 == 0])
    total = minutes * days
    question = " ".join(
        [
            say.ask(
                f"Each day, {name} rehearses on the {instrument} for {minutes} minutes.",
                f"{name} practises the {instrument} for {minutes} minutes every day.",
                f"Every day {name} spends {minutes} minutes practising the {instrument}.",
                f"{name} has {instrument} practice for {minutes} minutes a day.",
            ),
            say.ask(
                f"Across {days} days, what is the total rehearsal time in hours?",
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


def _collecting(rng: random.Random, say: Phrasing) -> Problem:
    name, he, _ = _person(rng)
    _, things = rng.choice(THINGS)
    first, second, third = rng.choice([("Monday", "Tuesday", "Wednesday"), ("Friday", "Saturday", "Sunday")])
    n = rng.randint(3, 12)
    k = rng.randint(2, 2 * n - 2)
    two, three = 2 * n, 2 * n - k
    question = " ".join(
        [
            say.ask(
                f"{name} gathers {things} over three days, starting with {n} of them on {first}.",
                f"{name} collects {n} {things} on {first}.",
                f"On {first}, {name} finds {n} {things}.",
            ),
            say.ask(
                f"The haul on {second} is double that of {first}.",
                f"On {second} {he} collects twice as many {things} as on {first}.",
                f"On {second} {he} collects double that number.",
            ),
            say.ask(
                f"The haul on {third} falls short of {second}'s by {k}.",
                f"On {third} {he} collects {k} fewer {things} than on {second}.",
                f"On {third} {he} gets {k} fewer than on {second}.",
            ),
            say.ask(
                "What is the combined haul for all three days?",
                f"How many {things} does {name} collect over the three days?",
                f"How many {things} does {he} collect in all?",
            ),
        ]
    )
    return Problem(
        "arith",
        question,
        (
            _pick(rng, f"On {second} {he} collects 2 * {n} = {two} {things}.", f"{second}: 2 * {n} = {two}."),
            _pick(rng, f"On {third} {he} collects {two} - {k} = {three} {things}.", f"{third}: {two} - {k} = {three}."),
            _pick(
                rng,
                f"Over the three days that is {n} + {two} + {three} = {n + two + three} {things}.",
                f"Total: {n} + {two} + {three} = {n + two + three}.",
            ),
        ),
        n + two + three,
    )


def _pizza(rng: random.Random, say: Phrasing) -> Problem:
    name, _, _ = _person(rng)
    pizzas, slices = rng.randint(2, 5), rng.choice([4, 6, 8])
    total = pizzas * slices
    friends = rng.randint(2, min(9, total))
    each = rng.randint(1, total // friends)
    eaten = friends * each
    question = " ".join(
        [
            say.ask(
                f"{pizzas} pizzas arrive for a class party, "
                f"and every one of them has been sliced into {slices} pieces.",
                f"At a party there are {pizzas} pizzas, each cut into {slices} slices.",
                f"{name} orders {pizzas} pizzas for a party, and each pizza is cut into {slices} slices.",
                f"There are {pizzas} pizzas with {slices} slices each.",
            ),
            say.ask(
                f"There are {friends} children, and every child takes {_count(each, 'piece')}.",
                f"{friends} friends eat {_count(each, 'slice')} each.",
                f"Each of the {friends} guests eats {_count(each, 'slice')}.",
            ),
            say.ask("What number of pieces is not eaten?", "How many slices are left over?", "How many slices remain?"),
        ]
    )
    return Problem(
        "arith",
        question,
        (
            _pick(
                rng,
                f"There are {pizzas} * {slices} = {total} slices.",
                f"{pizzas} pizzas give {pizzas} * {slices} = {total} slices.",
            ),
            _pick(
                rng,
                f"The friends eat {friends} * {each} = {eaten} slices.",
                f"{friends} * {each} = {eaten} slices are eaten.",
            ),
            _pick(
                rng,
                f"So {total} - {eaten} = {total - eaten} slices are left over.",
                f"{total} - {eaten} = {total - eaten} slices remain.",
            ),
        ),
        total - eaten,
    )


def _pocket_money(rng: random.Random, say: Phrasing) -> Problem:
    name, he, his = _person(rng)
    money = rng.randint(5, 20) * 2
    half = money // 2
    lunch = rng.randint(1, half - 1)
    thing = rng.choice(["book", "board game", "puzzle", "kite", "poster", "football", "paint set"])
    question = " ".join(
        [
            say.ask(
                f"There is {_money(money)} in {name}'s wallet.",
                f"{name} has {_money(money)}.",
                f"{name} gets {_money(money)} for {his} birthday.",
            ),
            say.ask(
                f"Half of that goes on a {thing}, after which lunch costs {_money(lunch)}.",
                f"{he.capitalize()} spends half of it on a {thing} and then {_money(lunch)} on lunch.",
                f"{he.capitalize()} uses half of the money to buy a {thing}, "
                f"and later spends {_money(lunch)} on lunch.",
            ),
            say.ask(
                "What is still in the wallet?", f"How much money does {he} have left?", "How many dollars are left?"
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
    a, b = rng.randint(2, 20), rng.randint(2, 20)
    c = rng.choice([x for x in range(2, 21) if (a + b + x) % 3 == 0])
    total = a + b + c
    question = " ".join(
        [
            say.ask(
                f"Over three rounds of {game}, {name} earns {a}, {b} and {c} points.",
                f"In three {game} games {name} scores {a}, {b} and {c} points.",
                f"{name} plays three {game} games and scores {a}, {b} and {c} points.",
                f"{name}'s scores in three {game} games are {a}, {b} and {c}.",
            ),
            say.ask(
                "Find the mean number of points per round.",
                f"What is {his} average score per game?",
                "What is the mean score?",
            ),
        ]
    )
    return Problem(
        "arith",
        question,
        (
            _pick(rng, f"The total score is {a} + {b} + {c} = {total}.", f"Add the scores: {a} + {b} + {c} = {total}."),
            _pick(
                rng,
                f"The average is {total} / 3 = {total // 3}.",
                f"Divide by the number of games: {total} / 3 = {total // 3}.",
            ),
        ),
        total // 3,
    )


ARITH_TEMPLATES: list[Callable[[random.Random, Phrasing], Problem]] = [
    _shopping,
    _bakery,
    _reading,
    _sharing,
    _travel,
    _savings,
    _garden,
    _baking,
    _tickets,
    _ages,
    _boxes,
    _practice,
    _collecting,
    _pizza,
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
