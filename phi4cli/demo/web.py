"""`web`: crawled-looking pages — good educational pages mixed with the junk real crawls are full of.

Every page says what it is in `meta["label"]`, so a filter's precision and recall can be measured:

| label            | what the page is                                                        | caught by          |
|------------------|-------------------------------------------------------------------------|--------------------|
| `good`           | educational prose from the knowledge base, worked examples              | (kept)             |
| `spam`           | keyword stuffing, ALL CAPS offers, "buy now", link farms                | quality heuristics |
| `boilerplate`    | menus, cookie banners, policy lines, JavaScript, lorem ipsum, 404 pages | C4/Gopher rules    |
| `repeated_lines` | one line or paragraph repeated many times                               | Gopher repetition  |
| `near_duplicate` | a good page with a few words changed (`duplicate_of` names it)           | MinHash dedup      |
| `non_english`    | German, Spanish, French, Italian, Portuguese, Dutch, Russian, Japanese  | language id        |
| `contaminated`   | a good page with a benchmark item planted in it (`benchmark_id`)         | decontamination    |

`meta` also carries `lang` (ISO 639-1), `kind` (the junk sub-kind), `topic` for good pages and, for
contaminated pages, `perturbation`: "none" (the item verbatim), "lowercase", "punctuation" (removed)
or "whitespace" (line breaks and spacing changed).
"""

from __future__ import annotations

import random
import re
from collections.abc import Iterator

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
    SINGLE_FACTS,
    animal_sentences,
    concept_paragraph,
    country_sentences,
    element_sentences,
    event_sentence,
    person_sentence,
    planet_sentences,
)
from phi4cli.demo.problems import MATH_FAMILIES, Problem, arith_problem
from phi4cli.demo.words import (
    COOKIE_BANNERS,
    ERROR_PAGES,
    FOREIGN_CITIES,
    FOREIGN_NAMES,
    FOREIGN_SENTENCES,
    FOREIGN_TEMPLATES,
    FOREIGN_TITLES,
    JAVASCRIPT_LINES,
    LOREM_IPSUM,
    NAV_ITEMS,
    NEAR_DUPLICATE_NOTES,
    NEAR_DUPLICATE_SWAPS,
    POLICY_LINES,
    REPEATED_LINE_POOL,
    SPAM_DOMAINS,
    SPAM_PRODUCTS,
    SPAM_SHOUTS,
)

PAGES = 3000  # at scale 1: about 5.6 MB
# share of pages per label; junk (everything but good and contaminated) is about 35%
LABEL_SHARES = {
    "good": 0.62,
    "spam": 0.07,
    "boilerplate": 0.08,
    "repeated_lines": 0.05,
    "near_duplicate": 0.07,
    "non_english": 0.08,
    "contaminated": 0.03,
}
PERTURBATIONS = ("none", "lowercase", "punctuation", "whitespace")
PLANT_TASKS = ("arith", "facts_mc", "pyfunc")  # kv_recall items are too long to hide in a page


def _label_plan(rng: random.Random, scale: float) -> list[str]:
    labels = []
    for label, share in LABEL_SHARES.items():
        minimum = len(PERTURBATIONS) if label == "contaminated" else 2
        labels += [label] * scaled(round(PAGES * share), scale, minimum)
    rng.shuffle(labels)
    labels.remove("good")  # a good page first, so every near-duplicate has an original to copy
    return ["good", *labels]


# ------------------------------------------------------------------------------------ good pages

INTROS = [
    "This page collects some basic facts about {topic} for students and curious readers.",
    "Here is a short overview of {topic}, written for anyone who wants to refresh the basics.",
    "Learning about {topic} helps us understand the world around us.",
    "Many readers have asked us to explain {topic} in plain language, so here it is.",
    "Our class spent this week studying {topic}, and these are the notes we wrote together.",
    "If you are new to {topic}, start with the short summary below.",
]
CLOSINGS = [
    "Try to remember these facts, and test yourself with a friend.",
    "Teachers can use this summary as a starting point for a class discussion about {topic}.",
    "If you want to learn more about {topic}, your local library is a good place to start.",
    "Write down one question you still have about {topic} and look for the answer next week.",
    "We hope this short guide to {topic} was useful.",
]


def _countries(rng: random.Random) -> tuple[str, str, list[str]]:
    continent = rng.choice(CONTINENTS)
    pool = [c for c in COUNTRIES if c.continent == continent]
    chosen = rng.sample(pool, min(len(pool), rng.randint(2, 5)))
    names = [c.name for c in chosen]
    title = rng.choice(
        [
            f"Countries of {continent}",
            f"A short guide to {continent}",
            f"Facts about {', '.join(names[:-1])} and {names[-1]}",
            f"Geography notes: {continent}",
        ]
    )
    return title, f"the countries of {continent}", [" ".join(country_sentences(c, rng)) for c in chosen]


def _elements(rng: random.Random) -> tuple[str, str, list[str]]:
    chosen = rng.sample(ELEMENTS, rng.randint(3, 6))
    title = rng.choice(
        ["Meet the elements", "Chemistry notes: " + ", ".join(e.name for e in chosen), "Elements you should know"]
    )
    return title, "the chemical elements", [" ".join(element_sentences(e, rng)) for e in chosen]


def _planets(rng: random.Random) -> tuple[str, str, list[str]]:
    chosen = sorted(rng.sample(PLANETS, rng.randint(3, 6)), key=lambda p: p.order)
    title = rng.choice(["The planets", "A tour of the Solar System", "Our planetary neighbours"])
    return title, "the planets", [" ".join(planet_sentences(p, rng)) for p in chosen]


def _history(rng: random.Random) -> tuple[str, str, list[str]]:
    chosen = sorted(rng.sample(EVENTS, rng.randint(4, 8)), key=lambda e: e.year)
    title = rng.choice(
        ["A timeline of history", f"From {chosen[0].year} to {chosen[-1].year}", "Important dates to remember"]
    )
    split = len(chosen) // 2
    paragraphs = [" ".join(event_sentence(e, rng) for e in part) for part in (chosen[:split], chosen[split:])]
    return title, "history", paragraphs


def _scientists(rng: random.Random) -> tuple[str, str, list[str]]:
    chosen = rng.sample(PEOPLE, rng.randint(3, 6))
    title = rng.choice(["Great scientists", "People who changed science", "Discoveries and their discoverers"])
    return title, "the history of science", [" ".join(person_sentence(p, rng) for p in chosen)]


def _animals(rng: random.Random) -> tuple[str, str, list[str]]:
    chosen = rng.sample(ANIMALS, rng.randint(4, 8))
    title = rng.choice(["Animal groups", "How biologists sort animals", "Animals and what they eat"])
    return title, "animals", [" ".join(s for a in chosen for s in animal_sentences(a, rng))]


def _did_you_know(rng: random.Random) -> tuple[str, str, list[str]]:
    facts = [f[2] for f in rng.sample(SINGLE_FACTS, rng.randint(5, 10))]
    return rng.choice(["Did you know?", "Ten quick facts", "Science trivia"]), "science", [" ".join(facts)]


def worked_example(problem: Problem, rng: random.Random) -> str:
    """A problem written as prose: the question, the working, the answer."""
    lead = rng.choice(["Example:", "Worked example.", "Let us try one.", "Here is a typical problem."])
    return f"{lead} {problem.question} {' '.join(problem.steps)} So the answer is {problem.answer}."


def _math(rng: random.Random) -> tuple[str, str, list[str]]:
    family = rng.choice([*MATH_FAMILIES, "arith"])
    examples = []
    for _ in range(rng.randint(1, 3)):
        problem = arith_problem(rng, held_out=False) if family == "arith" else MATH_FAMILIES[family](rng)
        examples.append(worked_example(problem, rng))
    topic = {
        "arith": "word problems",
        "units": "units of measurement",
        "algebra": "simple equations",
        "percent": "percentages",
        "fractions": "fractions",
        "geometry": "area and perimeter",
    }[family]
    return rng.choice([f"Practice with {topic}", f"How to solve {topic}", f"Maths help: {topic}"]), topic, examples


TOPICS = [_countries, _elements, _planets, _history, _scientists, _animals, _did_you_know, _math]


def good_page(rng: random.Random) -> tuple[str, str]:
    """(text, topic): a title, an introduction, knowledge-base sections, related concepts, a closing."""
    main, extra = rng.sample(TOPICS, 2)
    title, topic, sections = main(rng)
    if rng.random() < 0.5:
        sections += extra(rng)[2]
    paragraphs = [rng.choice(INTROS).format(topic=topic), *sections]
    for concept in rng.sample(CONCEPTS, rng.randint(2, 4)):
        paragraphs.insert(rng.randint(1, len(paragraphs)), concept_paragraph(concept, rng))
    if rng.random() < 0.7:
        paragraphs.append(rng.choice(CLOSINGS).format(topic=topic))
    return f"{title}\n\n" + "\n\n".join(paragraphs), topic


# ------------------------------------------------------------------------------------ junk


def _url(rng: random.Random) -> str:
    slug = rng.choice(SPAM_PRODUCTS).replace(" ", "-")
    return f"http://www.{rng.choice(SPAM_DOMAINS)}.com/{slug}?ref={rng.randint(1000, 99999)}"


def spam_page(rng: random.Random) -> tuple[str, str]:
    product = rng.choice(SPAM_PRODUCTS)
    kind = rng.choice(["keyword_stuffing", "all_caps", "seo_filler", "link_farm"])
    if kind == "keyword_stuffing":
        variants = [f"{adj} {product}" for adj in ("cheap", "best", "buy", "discount", "top", "online", "free")]
        lines = [" ".join(rng.choice(variants) for _ in range(rng.randint(15, 40))) for _ in range(rng.randint(2, 6))]
    elif kind == "all_caps":
        lines = [
            f"{rng.choice(SPAM_SHOUTS)}!!! {product.upper()} ONLY ${rng.randint(1, 99)}.99 "
            f"{rng.randint(50, 95)}% OFF!!!"
            for _ in range(rng.randint(5, 15))
        ]
    elif kind == "seo_filler":
        sentences = [
            f"Are you looking for the best {product}?",
            "Then you are in the right place.",
            f"Our {product} is the best {product} you can buy.",
            f"Buy {product} now and get the best {product} at the lowest price.",
            f"Everyone wants {product}, and {product} is what we sell.",
            f"{product} {product} {product}.",
        ]
        lines = [" ".join(rng.choice(sentences) for _ in range(rng.randint(4, 9))) for _ in range(rng.randint(2, 5))]
    else:
        lines = [_url(rng) for _ in range(rng.randint(10, 30))]
    lines.insert(rng.randint(0, len(lines)), f"{rng.choice(SPAM_SHOUTS)} >>> {_url(rng)}")
    return "\n".join(lines), kind


def _menu(rng: random.Random) -> list[str]:
    return rng.sample(NAV_ITEMS, rng.randint(5, 12))


def boilerplate_page(rng: random.Random) -> tuple[str, str]:
    kind = rng.choice(["navigation", "cookie_policy", "javascript", "lorem_ipsum", "error_page"])
    if kind == "navigation":
        body = [*_menu(rng), " > ".join(rng.sample(NAV_ITEMS, 3)), "Login | Register", *_menu(rng)]
    elif kind == "cookie_policy":
        body = [*rng.sample(COOKIE_BANNERS, 2), *rng.sample(POLICY_LINES, 5)]
    elif kind == "javascript":
        body = rng.sample(JAVASCRIPT_LINES, rng.randint(3, len(JAVASCRIPT_LINES)))
    elif kind == "lorem_ipsum":
        body = [LOREM_IPSUM] * rng.randint(1, 4)
    else:
        body = list(ERROR_PAGES)
    menu, policy, year = _menu(rng), rng.sample(POLICY_LINES, 3), rng.randint(2005, 2024)
    owner = rng.choice(["Example Media", "WebWorks Ltd", "City News Group", "ShopSmart Inc"])
    lines = [*menu, *body, *policy, f"© {year} {owner}. All rights reserved."]
    return "\n".join(lines), kind


def repeated_lines_page(rng: random.Random) -> tuple[str, str]:
    text, _ = good_page(rng)
    paragraphs = text.split("\n\n")
    if rng.random() < 0.5:
        line = rng.choice(REPEATED_LINE_POOL)
        lines = [paragraphs[0], *(line for _ in range(rng.randint(15, 40))), paragraphs[1]]
        return "\n".join(lines), "repeated_line"
    paragraph = rng.choice(paragraphs[1:])
    return "\n\n".join([paragraphs[0], *([paragraph] * rng.randint(4, 8))]), "repeated_paragraph"


def near_duplicate(text: str, rng: random.Random) -> str:
    """A copy with small edits — about one word in eighty swapped or dropped, and a note added — so that
    about 90% of its word 5-grams are shared with the original."""
    words = text.split(" ")
    for i in rng.sample(range(len(words)), max(1, len(words) // 80)):
        core = words[i].strip(".,;:")
        swap = NEAR_DUPLICATE_SWAPS.get(core.lower())
        if swap:
            words[i] = words[i].replace(core, swap)
        elif core.isalpha():
            words[i] = ""
    edited = re.sub(r" {2,}", " ", " ".join(words))
    note = rng.choice(NEAR_DUPLICATE_NOTES)
    return f"{note}\n\n{edited}" if rng.random() < 0.5 else f"{edited}\n\n{note}"


def non_english_page(rng: random.Random) -> tuple[str, str]:
    lang = rng.choice(sorted(FOREIGN_SENTENCES))
    bank = FOREIGN_SENTENCES[lang]
    sentences = rng.sample(bank, min(len(bank), rng.randint(6, 14)))
    for _ in range(rng.randint(1, 3)):
        sentence = rng.choice(FOREIGN_TEMPLATES[lang]).format(
            name=rng.choice(FOREIGN_NAMES[lang]), city=rng.choice(FOREIGN_CITIES[lang]), n=rng.randint(2, 30)
        )
        sentences.insert(rng.randint(0, len(sentences)), sentence)
    sep = "" if lang == "ja" else " "
    cut = len(sentences) // 2
    body = sep.join(sentences[:cut]) + "\n\n" + sep.join(sentences[cut:])
    return f"{rng.choice(FOREIGN_TITLES[lang])}\n\n{body}", lang


# ------------------------------------------------------------------------------------ contamination


def perturb(text: str, how: str) -> str:
    """The changes decontamination must see through: case, punctuation, whitespace."""
    if how == "lowercase":
        return text.lower()
    if how == "punctuation":
        return re.sub(r"[.,?!:;'\"]", "", text)
    if how == "whitespace":
        return re.sub(r"\s+", "  ", text).strip()
    return text


def contaminated_page(rng: random.Random, item: dict, how: str) -> tuple[str, str]:
    text, topic = good_page(rng)
    paragraphs = text.split("\n\n")
    lead = rng.choice(
        [
            "Practice question:",
            "Here is a question from last year's test.",
            "Try this one yourself:",
            "A reader sent us this problem:",
        ]
    )
    paragraphs.insert(rng.randint(1, len(paragraphs)), f"{lead}\n{perturb(item['text'], how)}")
    return "\n\n".join(paragraphs), topic


# ------------------------------------------------------------------------------------ the source


def generate(seed: int, scale: float, benchmark_rows: list[dict]) -> Iterator[dict]:
    rng = source_rng(seed, "web")
    labels = _label_plan(rng, scale)
    candidates = [row for row in benchmark_rows if row["task"] in PLANT_TASKS]
    plants = rng.sample(candidates, len(candidates))  # planted in this order, cycling if pages outnumber items
    planted = 0
    good: list[tuple[str, str]] = []  # (id, text) of the good pages so far: originals for near-duplicates
    for i, label in enumerate(labels):
        doc_id = f"web-{i:06d}"
        if label == "good":
            text, topic = good_page(rng)
            good.append((doc_id, text))
            yield document(doc_id, text, "web", label=label, lang="en", topic=topic)
        elif label == "near_duplicate":
            original_id, original = rng.choice(good)
            yield document(
                doc_id, near_duplicate(original, rng), "web", label=label, lang="en", duplicate_of=original_id
            )
        elif label == "contaminated":
            item, how = plants[planted % len(plants)], PERTURBATIONS[planted % len(PERTURBATIONS)]
            planted += 1
            text, topic = contaminated_page(rng, item, how)
            yield document(
                doc_id, text, "web", label=label, lang="en", topic=topic, benchmark_id=item["id"], perturbation=how
            )
        elif label == "non_english":
            text, lang = non_english_page(rng)
            yield document(doc_id, text, "web", label=label, lang=lang)
        else:
            make = {"spam": spam_page, "boilerplate": boilerplate_page, "repeated_lines": repeated_lines_page}[label]
            text, kind = make(rng)
            yield document(doc_id, text, "web", label=label, lang="en", kind=kind)
