"""The embedded knowledge base: facts the toy model reads in `web`/`acquired` and is quizzed on in
`benchmarks` (facts_mc, MMLU format).

Facts come in two forms. Relational tables (countries, elements, planets, events, people, animals) are
rendered into prose with several templates each, and into questions with distractors drawn from the same
relation. Concepts are short explanations (one list of sentences each) that good pages and book chapters
draw from. Every question has a key ("capital:France"); a fixed half of the keys is held out for the
benchmark (see `common.is_held_out`), and those facts are taught only as prose, never as a quiz.
"""

from __future__ import annotations

import random
from dataclasses import dataclass
from functools import cache

from phi4cli.demo.common import is_held_out

FACTS_HELD_OUT_ONE_IN = 2  # half the facts are benchmark items: ~240, a standard error near 0.03


def cap(text: str) -> str:
    """Capitalise the first letter only ("the Netherlands" -> "The Netherlands")."""
    return text[:1].upper() + text[1:]


# ------------------------------------------------------------------------------------ countries


@dataclass(frozen=True)
class Country:
    name: str  # with the article where English uses one: "the Netherlands"
    capital: str
    continent: str
    language: str | None  # the main spoken language; None where several share that role
    currency: str


COUNTRIES = [
    Country("France", "Paris", "Europe", "French", "euro"),
    Country("Germany", "Berlin", "Europe", "German", "euro"),
    Country("Spain", "Madrid", "Europe", "Spanish", "euro"),
    Country("Italy", "Rome", "Europe", "Italian", "euro"),
    Country("Portugal", "Lisbon", "Europe", "Portuguese", "euro"),
    Country("the Netherlands", "Amsterdam", "Europe", "Dutch", "euro"),
    Country("Greece", "Athens", "Europe", "Greek", "euro"),
    Country("Poland", "Warsaw", "Europe", "Polish", "Polish zloty"),
    Country("Sweden", "Stockholm", "Europe", "Swedish", "Swedish krona"),
    Country("Norway", "Oslo", "Europe", "Norwegian", "Norwegian krone"),
    Country("Denmark", "Copenhagen", "Europe", "Danish", "Danish krone"),
    Country("Finland", "Helsinki", "Europe", "Finnish", "euro"),
    Country("Iceland", "Reykjavik", "Europe", "Icelandic", "Icelandic krona"),
    Country("Austria", "Vienna", "Europe", "German", "euro"),
    Country("Switzerland", "Bern", "Europe", None, "Swiss franc"),
    Country("Belgium", "Brussels", "Europe", None, "euro"),
    Country("the United Kingdom", "London", "Europe", "English", "pound sterling"),
    Country("Ireland", "Dublin", "Europe", None, "euro"),
    Country("Hungary", "Budapest", "Europe", "Hungarian", "Hungarian forint"),
    Country("the Czech Republic", "Prague", "Europe", "Czech", "Czech koruna"),
    Country("Romania", "Bucharest", "Europe", "Romanian", "Romanian leu"),
    Country("Ukraine", "Kyiv", "Europe", "Ukrainian", "Ukrainian hryvnia"),
    Country("Egypt", "Cairo", "Africa", "Arabic", "Egyptian pound"),
    Country("Nigeria", "Abuja", "Africa", None, "Nigerian naira"),
    Country("Kenya", "Nairobi", "Africa", None, "Kenyan shilling"),
    Country("Ethiopia", "Addis Ababa", "Africa", "Amharic", "Ethiopian birr"),
    Country("Morocco", "Rabat", "Africa", None, "Moroccan dirham"),
    Country("Ghana", "Accra", "Africa", "English", "Ghanaian cedi"),
    Country("Senegal", "Dakar", "Africa", None, "West African CFA franc"),
    Country("Algeria", "Algiers", "Africa", "Arabic", "Algerian dinar"),
    Country("Tanzania", "Dodoma", "Africa", "Swahili", "Tanzanian shilling"),
    Country("Japan", "Tokyo", "Asia", "Japanese", "Japanese yen"),
    Country("China", "Beijing", "Asia", "Mandarin Chinese", "Chinese yuan"),
    Country("India", "New Delhi", "Asia", None, "Indian rupee"),
    Country("South Korea", "Seoul", "Asia", "Korean", "South Korean won"),
    Country("Thailand", "Bangkok", "Asia", "Thai", "Thai baht"),
    Country("Vietnam", "Hanoi", "Asia", "Vietnamese", "Vietnamese dong"),
    Country("the Philippines", "Manila", "Asia", None, "Philippine peso"),
    Country("Saudi Arabia", "Riyadh", "Asia", "Arabic", "Saudi riyal"),
    Country("Iran", "Tehran", "Asia", "Persian", "Iranian rial"),
    Country("Pakistan", "Islamabad", "Asia", None, "Pakistani rupee"),
    Country("Mongolia", "Ulaanbaatar", "Asia", "Mongolian", "Mongolian tugrik"),
    Country("Nepal", "Kathmandu", "Asia", "Nepali", "Nepalese rupee"),
    Country("the United States", "Washington, D.C.", "North America", None, "US dollar"),
    Country("Canada", "Ottawa", "North America", None, "Canadian dollar"),
    Country("Mexico", "Mexico City", "North America", "Spanish", "Mexican peso"),
    Country("Cuba", "Havana", "North America", "Spanish", "Cuban peso"),
    Country("Brazil", "Brasília", "South America", "Portuguese", "Brazilian real"),
    Country("Argentina", "Buenos Aires", "South America", "Spanish", "Argentine peso"),
    Country("Chile", "Santiago", "South America", "Spanish", "Chilean peso"),
    Country("Peru", "Lima", "South America", "Spanish", "Peruvian sol"),
    Country("Colombia", "Bogotá", "South America", "Spanish", "Colombian peso"),
    Country("Venezuela", "Caracas", "South America", "Spanish", "Venezuelan bolívar"),
    Country("Australia", "Canberra", "Oceania", "English", "Australian dollar"),
    Country("New Zealand", "Wellington", "Oceania", "English", "New Zealand dollar"),
    Country("Fiji", "Suva", "Oceania", None, "Fijian dollar"),
]
CONTINENTS = ["Europe", "Africa", "Asia", "North America", "South America", "Oceania"]


def country_sentences(c: Country, rng: random.Random) -> list[str]:
    """A few sentences about one country, each fact phrased with one of several templates."""
    name = c.name
    out = [
        rng.choice(
            [
                f"{cap(name)} is a country in {c.continent}.",
                f"{cap(name)} lies in {c.continent}.",
                f"Among the countries of {c.continent} is {name}.",
            ]
        ),
        rng.choice(
            [
                f"Its capital is {c.capital}.",
                f"The capital city of {name} is {c.capital}.",
                f"{c.capital} is the capital of {name}.",
                f"The capital, {c.capital}, is also one of its best-known cities.",
            ]
        ),
    ]
    if c.language:
        out.append(
            rng.choice(
                [
                    f"Most people in {name} speak {c.language}.",
                    f"The most widely spoken language in {name} is {c.language}.",
                    f"{c.language} is the main language of {name}.",
                ]
            )
        )
    out.append(
        rng.choice(
            [
                f"The currency used in {name} is the {c.currency}.",
                f"People in {name} pay with the {c.currency}.",
                f"Prices in {name} are given in the {c.currency}.",
            ]
        )
    )
    return out


# ------------------------------------------------------------------------------------ elements


@dataclass(frozen=True)
class Element:
    name: str
    symbol: str
    number: int
    category: str
    state: str  # at room temperature


ELEMENTS = [
    Element("hydrogen", "H", 1, "nonmetal", "gas"),
    Element("helium", "He", 2, "noble gas", "gas"),
    Element("lithium", "Li", 3, "alkali metal", "solid"),
    Element("beryllium", "Be", 4, "alkaline earth metal", "solid"),
    Element("boron", "B", 5, "metalloid", "solid"),
    Element("carbon", "C", 6, "nonmetal", "solid"),
    Element("nitrogen", "N", 7, "nonmetal", "gas"),
    Element("oxygen", "O", 8, "nonmetal", "gas"),
    Element("fluorine", "F", 9, "halogen", "gas"),
    Element("neon", "Ne", 10, "noble gas", "gas"),
    Element("sodium", "Na", 11, "alkali metal", "solid"),
    Element("magnesium", "Mg", 12, "alkaline earth metal", "solid"),
    Element("aluminium", "Al", 13, "post-transition metal", "solid"),
    Element("silicon", "Si", 14, "metalloid", "solid"),
    Element("phosphorus", "P", 15, "nonmetal", "solid"),
    Element("sulfur", "S", 16, "nonmetal", "solid"),
    Element("chlorine", "Cl", 17, "halogen", "gas"),
    Element("argon", "Ar", 18, "noble gas", "gas"),
    Element("potassium", "K", 19, "alkali metal", "solid"),
    Element("calcium", "Ca", 20, "alkaline earth metal", "solid"),
    Element("iron", "Fe", 26, "transition metal", "solid"),
    Element("cobalt", "Co", 27, "transition metal", "solid"),
    Element("nickel", "Ni", 28, "transition metal", "solid"),
    Element("copper", "Cu", 29, "transition metal", "solid"),
    Element("zinc", "Zn", 30, "transition metal", "solid"),
    Element("bromine", "Br", 35, "halogen", "liquid"),
    Element("krypton", "Kr", 36, "noble gas", "gas"),
    Element("silver", "Ag", 47, "transition metal", "solid"),
    Element("tin", "Sn", 50, "post-transition metal", "solid"),
    Element("iodine", "I", 53, "halogen", "solid"),
    Element("platinum", "Pt", 78, "transition metal", "solid"),
    Element("gold", "Au", 79, "transition metal", "solid"),
    Element("mercury", "Hg", 80, "transition metal", "liquid"),
    Element("lead", "Pb", 82, "post-transition metal", "solid"),
    Element("uranium", "U", 92, "actinide", "solid"),
]


def element_sentences(e: Element, rng: random.Random) -> list[str]:
    article = "an" if e.category[0] in "aeiou" else "a"
    return [
        rng.choice(
            [
                f"{cap(e.name)} has the chemical symbol {e.symbol}.",
                f"The chemical symbol for {e.name} is {e.symbol}.",
                f"Chemists write {e.name} with the symbol {e.symbol}.",
            ]
        ),
        rng.choice(
            [
                f"Its atomic number is {e.number}, so every {e.name} atom has {e.number} protons in its nucleus.",
                f"An atom of {e.name} has {e.number} protons, which gives it the atomic number {e.number}.",
                f"{cap(e.name)} is element number {e.number} in the periodic table.",
            ]
        ),
        rng.choice(
            [
                f"{cap(e.name)} is {article} {e.category}, and at room temperature it is a {e.state}.",
                f"At room temperature {e.name} is a {e.state}; chemists classify it as {article} {e.category}.",
            ]
        ),
    ]


# ------------------------------------------------------------------------------------ planets


@dataclass(frozen=True)
class Planet:
    name: str
    order: int
    kind: str
    note: str  # a predicate: "is the largest planet ..."


PLANETS = [
    Planet("Mercury", 1, "rocky planet", "is the smallest planet in the Solar System and the closest to the Sun"),
    Planet("Venus", 2, "rocky planet", "is the hottest planet, because its thick carbon dioxide atmosphere traps heat"),
    Planet("Earth", 3, "rocky planet", "is the only planet known to support life"),
    Planet(
        "Mars",
        4,
        "rocky planet",
        "is called the Red Planet because iron oxide on its surface gives it a reddish colour",
    ),
    Planet("Jupiter", 5, "gas giant", "is the largest planet in the Solar System"),
    Planet("Saturn", 6, "gas giant", "is famous for its bright rings, which are made of ice and rock"),
    Planet("Uranus", 7, "ice giant", "spins on its side, with its axis tilted by about 98 degrees"),
    Planet("Neptune", 8, "ice giant", "is the farthest planet from the Sun"),
]
ORDINALS = ["first", "second", "third", "fourth", "fifth", "sixth", "seventh", "eighth"]


def planet_sentences(p: Planet, rng: random.Random) -> list[str]:
    nth = ORDINALS[p.order - 1]
    return [
        rng.choice(
            [
                f"{p.name} is the {nth} planet from the Sun.",
                f"Counting outwards from the Sun, {p.name} comes {nth}.",
            ]
        ),
        rng.choice([f"{p.name} is a {p.kind}.", f"Astronomers describe {p.name} as a {p.kind}."]),
        f"{p.name} {p.note}.",
    ]


# ------------------------------------------------------------------------------------ history


@dataclass(frozen=True)
class Event:
    statement: str  # "the Berlin Wall fell"
    question: str  # "did the Berlin Wall fall"
    year: int


EVENTS = [
    Event("the Western Roman Empire came to an end", "did the Western Roman Empire come to an end", 476),
    Event("the Battle of Hastings was fought in England", "was the Battle of Hastings fought", 1066),
    Event("King John of England agreed to the Magna Carta", "did King John agree to the Magna Carta", 1215),
    Event("Constantinople fell to the Ottoman Empire", "did Constantinople fall to the Ottoman Empire", 1453),
    Event("Christopher Columbus first reached the Americas", "did Christopher Columbus first reach the Americas", 1492),
    Event("Martin Luther published his Ninety-five Theses", "did Martin Luther publish his Ninety-five Theses", 1517),
    Event(
        "Galileo Galilei first observed the four largest moons of Jupiter",
        "did Galileo first observe the moons of Jupiter",
        1610,
    ),
    Event("Isaac Newton published the Principia", "did Isaac Newton publish the Principia", 1687),
    Event(
        "the American Declaration of Independence was adopted",
        "was the American Declaration of Independence adopted",
        1776,
    ),
    Event("the French Revolution began with the storming of the Bastille", "was the Bastille stormed", 1789),
    Event("the Battle of Waterloo ended the rule of Napoleon", "was the Battle of Waterloo fought", 1815),
    Event(
        "Charles Darwin published On the Origin of Species", "did Charles Darwin publish On the Origin of Species", 1859
    ),
    Event(
        "Dmitri Mendeleev published his periodic table of the elements",
        "did Mendeleev publish his periodic table",
        1869,
    ),
    Event("the first modern Olympic Games were held in Athens", "were the first modern Olympic Games held", 1896),
    Event(
        "the Wright brothers made the first powered aeroplane flight",
        "did the Wright brothers make the first powered flight",
        1903,
    ),
    Event("the Titanic sank in the North Atlantic", "did the Titanic sink", 1912),
    Event("the First World War began", "did the First World War begin", 1914),
    Event("the First World War ended", "did the First World War end", 1918),
    Event("Alexander Fleming discovered penicillin", "did Alexander Fleming discover penicillin", 1928),
    Event("the Second World War began", "did the Second World War begin", 1939),
    Event("the Second World War ended", "did the Second World War end", 1945),
    Event("India gained independence from British rule", "did India gain independence", 1947),
    Event(
        "James Watson and Francis Crick described the double helix of DNA",
        "was the double-helix structure of DNA described",
        1953,
    ),
    Event("the Soviet Union launched Sputnik 1, the first artificial satellite", "was Sputnik 1 launched", 1957),
    Event("Yuri Gagarin became the first person to travel into space", "did Yuri Gagarin travel into space", 1961),
    Event("Apollo 11 landed the first people on the Moon", "did Apollo 11 land on the Moon", 1969),
    Event("the Berlin Wall fell", "did the Berlin Wall fall", 1989),
    Event(
        "Nelson Mandela was elected President of South Africa",
        "was Nelson Mandela elected President of South Africa",
        1994,
    ),
]


def event_sentence(ev: Event, rng: random.Random) -> str:
    return rng.choice(
        [
            f"In {ev.year}, {ev.statement}.",
            f"{cap(ev.statement)} in {ev.year}.",
            f"The year {ev.year} is remembered because {ev.statement}.",
            f"It was in {ev.year} that {ev.statement}.",
        ]
    )


@dataclass(frozen=True)
class Person:
    name: str
    role: str
    achievement: str  # past-tense verb phrase: "discovered penicillin"


PEOPLE = [
    Person(
        "Isaac Newton", "English physicist and mathematician", "formulated the laws of motion and universal gravitation"
    ),
    Person("Charles Darwin", "English naturalist", "proposed the theory of evolution by natural selection"),
    Person("Albert Einstein", "German-born physicist", "developed the theory of relativity"),
    Person("Marie Curie", "Polish-born physicist and chemist", "discovered the elements polonium and radium"),
    Person("Gregor Mendel", "scientist and monk", "discovered the basic laws of heredity by breeding pea plants"),
    Person("Galileo Galilei", "Italian astronomer", "discovered the four largest moons of Jupiter with a telescope"),
    Person("Nicolaus Copernicus", "Polish astronomer", "proposed that the Earth and the other planets orbit the Sun"),
    Person(
        "Louis Pasteur",
        "French chemist and microbiologist",
        "developed pasteurization to keep milk and wine from spoiling",
    ),
    Person("Alexander Fleming", "Scottish bacteriologist", "discovered penicillin, the first widely used antibiotic"),
    Person(
        "Dmitri Mendeleev", "Russian chemist", "arranged the elements into the first widely accepted periodic table"
    ),
    Person("Michael Faraday", "English scientist", "discovered electromagnetic induction"),
    Person(
        "James Clerk Maxwell", "Scottish physicist", "wrote down the equations that describe electricity and magnetism"
    ),
    Person("Ada Lovelace", "English mathematician", "wrote what is often called the first computer program"),
    Person("Alan Turing", "English mathematician", "described the Turing machine, a mathematical model of computation"),
    Person("Rosalind Franklin", "English chemist", "made the X-ray images that revealed the helical shape of DNA"),
    Person("Antoine Lavoisier", "French chemist", "showed that burning is a reaction with oxygen"),
    Person("William Harvey", "English physician", "showed that the heart pumps blood around the body in a circuit"),
    Person("Edwin Hubble", "American astronomer", "showed that the universe is expanding"),
    Person("Johannes Kepler", "German astronomer", "described the laws of planetary motion"),
    Person("Archimedes", "Greek mathematician", "discovered the principle of buoyancy"),
    Person("Euclid", "Greek mathematician", "wrote the Elements, a famous book on geometry"),
    Person("Niels Bohr", "Danish physicist", "proposed a model of the atom with electrons in fixed orbits"),
    Person("Carl Linnaeus", "Swedish botanist", "created the system of naming each species with two Latin names"),
    Person("Tim Berners-Lee", "English computer scientist", "invented the World Wide Web"),
    Person("Edward Jenner", "English physician", "developed the first vaccine, against smallpox"),
]


def person_sentence(p: Person, rng: random.Random) -> str:
    return rng.choice(
        [
            f"{p.name}, an {p.role}, {p.achievement}."
            if p.role[0] in "AEIOU"
            else f"{p.name}, a {p.role}, {p.achievement}.",
            f"The {p.role} {p.name} {p.achievement}.",
            f"{p.name} {p.achievement}.",
            f"Among other achievements, {p.name} {p.achievement}.",
        ]
    )


# ------------------------------------------------------------------------------------ animals


@dataclass(frozen=True)
class Animal:
    name: str
    plural: str
    group: str  # plural class name: "mammals"
    diet: str | None  # carnivore / herbivore / omnivore; None where it varies


ANIMALS = [
    Animal("dolphin", "dolphins", "mammals", "carnivore"),
    Animal("blue whale", "blue whales", "mammals", "carnivore"),
    Animal("bat", "bats", "mammals", None),
    Animal("elephant", "elephants", "mammals", "herbivore"),
    Animal("lion", "lions", "mammals", "carnivore"),
    Animal("cow", "cows", "mammals", "herbivore"),
    Animal("horse", "horses", "mammals", "herbivore"),
    Animal("brown bear", "brown bears", "mammals", "omnivore"),
    Animal("giraffe", "giraffes", "mammals", "herbivore"),
    Animal("kangaroo", "kangaroos", "mammals", "herbivore"),
    Animal("wolf", "wolves", "mammals", "carnivore"),
    Animal("tiger", "tigers", "mammals", "carnivore"),
    Animal("zebra", "zebras", "mammals", "herbivore"),
    Animal("chimpanzee", "chimpanzees", "mammals", "omnivore"),
    Animal("rabbit", "rabbits", "mammals", "herbivore"),
    Animal("pig", "pigs", "mammals", "omnivore"),
    Animal("penguin", "penguins", "birds", "carnivore"),
    Animal("eagle", "eagles", "birds", "carnivore"),
    Animal("ostrich", "ostriches", "birds", "omnivore"),
    Animal("owl", "owls", "birds", "carnivore"),
    Animal("shark", "sharks", "fish", "carnivore"),
    Animal("salmon", "salmon", "fish", "carnivore"),
    Animal("frog", "frogs", "amphibians", None),
    Animal("salamander", "salamanders", "amphibians", "carnivore"),
    Animal("crocodile", "crocodiles", "reptiles", "carnivore"),
    Animal("snake", "snakes", "reptiles", "carnivore"),
    Animal("tortoise", "tortoises", "reptiles", "herbivore"),
    Animal("octopus", "octopuses", "molluscs", "carnivore"),
    Animal("bee", "bees", "insects", "herbivore"),
    Animal("butterfly", "butterflies", "insects", "herbivore"),
    Animal("ant", "ants", "insects", None),
    Animal("spider", "spiders", "arachnids", None),
    Animal("scorpion", "scorpions", "arachnids", "carnivore"),
]
ANIMAL_GROUPS = ["mammals", "birds", "fish", "amphibians", "reptiles", "insects", "arachnids", "molluscs"]
GROUP_TRAITS = {
    "mammals": "breathe air, have hair or fur at some stage of life and feed their young on milk",
    "birds": "have feathers and beaks and lay eggs with hard shells",
    "fish": "live in water and breathe through gills",
    "amphibians": "usually begin life in water and later live partly on land",
    "reptiles": "have dry, scaly skin and most of them lay eggs on land",
    "insects": "have six legs and a body divided into three parts",
    "arachnids": "have eight legs and no antennae",
    "molluscs": "have soft bodies, and many of them are protected by a shell",
}
DIET_MEANING = {
    "carnivore": "it eats mainly other animals",
    "herbivore": "it eats mainly plants",
    "omnivore": "it eats both plants and animals",
}


def animal_sentences(a: Animal, rng: random.Random) -> list[str]:
    out = [
        rng.choice(
            [
                f"The {a.name} belongs to the {a.group}.",
                f"{cap(a.plural)} are {a.group}.",
                f"Biologists classify the {a.name} among the {a.group}, which {GROUP_TRAITS[a.group]}.",
            ]
        )
    ]
    if a.diet:
        out.append(
            rng.choice(
                [
                    f"The {a.name} is a {a.diet}, which means {DIET_MEANING[a.diet]}.",
                    f"As a {a.diet}, the {a.name} survives because {DIET_MEANING[a.diet]}.",
                ]
            )
        )
    return out


# ------------------------------------------------------------------------------------ single facts

# (key, subject, statement, question, answer, distractors)
SINGLE_FACTS = [
    (
        "boiling",
        "physics",
        "At sea level, pure water boils at 100 degrees Celsius.",
        "At sea level, pure water boils at how many degrees Celsius?",
        "100",
        ["50", "80", "212", "120"],
    ),
    (
        "freezing",
        "physics",
        "Pure water freezes at 0 degrees Celsius.",
        "At how many degrees Celsius does pure water freeze?",
        "0",
        ["10", "32", "-10", "4"],
    ),
    (
        "bones",
        "biology",
        "The skeleton of an adult human has 206 bones.",
        "How many bones are there in the skeleton of an adult human?",
        "206",
        ["106", "186", "306", "250"],
    ),
    (
        "heart_chambers",
        "biology",
        "The human heart has four chambers: two atria and two ventricles.",
        "How many chambers does the human heart have?",
        "four",
        ["two", "three", "five", "six"],
    ),
    (
        "light_speed",
        "physics",
        "In empty space, light travels at about 300,000 kilometres per second.",
        "About how fast does light travel in empty space?",
        "300,000 kilometres per second",
        ["300 kilometres per second", "3,000 kilometres per second", "30 kilometres per second"],
    ),
    (
        "sound_speed",
        "physics",
        "Sound travels through air at about 343 metres per second at 20 degrees Celsius.",
        "About how fast does sound travel through air at 20 degrees Celsius?",
        "343 metres per second",
        ["34 metres per second", "3,430 metres per second", "300,000 kilometres per second"],
    ),
    (
        "water_formula",
        "chemistry",
        "The chemical formula of water is H2O.",
        "What is the chemical formula of water?",
        "H2O",
        ["CO2", "NaCl", "O2", "H2O2"],
    ),
    (
        "salt_formula",
        "chemistry",
        "Table salt is sodium chloride, whose formula is NaCl.",
        "What is the chemical formula of table salt?",
        "NaCl",
        ["KCl", "H2O", "NaOH", "CaCO3"],
    ),
    (
        "co2_formula",
        "chemistry",
        "Carbon dioxide is made of one carbon atom and two oxygen atoms, so its formula is CO2.",
        "What is the chemical formula of carbon dioxide?",
        "CO2",
        ["CO", "O2", "CH4", "C2O"],
    ),
    (
        "chloroplast",
        "biology",
        "In plant cells, photosynthesis takes place in the chloroplasts.",
        "In which part of a plant cell does photosynthesis take place?",
        "the chloroplasts",
        ["the mitochondria", "the nucleus", "the ribosomes", "the cell wall"],
    ),
    (
        "mitochondria",
        "biology",
        "Mitochondria release energy from food in a process called cellular respiration.",
        "Which part of a cell releases energy from food through cellular respiration?",
        "the mitochondria",
        ["the chloroplasts", "the nucleus", "the cell membrane", "the vacuole"],
    ),
    (
        "haemoglobin",
        "biology",
        "Red blood cells carry oxygen around the body using a protein called haemoglobin.",
        "Which protein in red blood cells carries oxygen?",
        "haemoglobin",
        ["insulin", "keratin", "collagen", "pepsin"],
    ),
    (
        "skin",
        "biology",
        "The skin is the largest organ of the human body.",
        "What is the largest organ of the human body?",
        "the skin",
        ["the liver", "the brain", "the lungs", "the heart"],
    ),
    (
        "femur",
        "biology",
        "The femur, in the thigh, is the longest bone in the human body.",
        "What is the longest bone in the human body?",
        "the femur",
        ["the tibia", "the humerus", "the spine", "the radius"],
    ),
    (
        "gravity_accel",
        "physics",
        "Near the Earth's surface, gravity accelerates falling objects at about 9.8 metres per second squared.",
        "Near the Earth's surface, about how fast does gravity accelerate a falling object?",
        "9.8 metres per second squared",
        ["1.6 metres per second squared", "98 metres per second squared", "0.98 metres per second squared"],
    ),
    (
        "neutral_ph",
        "chemistry",
        "Pure water at 25 degrees Celsius is neutral, with a pH of 7.",
        "What is the pH of pure water at 25 degrees Celsius?",
        "7",
        ["0", "5", "14", "10"],
    ),
    (
        "pacific",
        "geography",
        "The Pacific is the largest and deepest ocean on Earth.",
        "What is the largest ocean on Earth?",
        "the Pacific Ocean",
        ["the Atlantic Ocean", "the Indian Ocean", "the Arctic Ocean", "the Southern Ocean"],
    ),
    (
        "everest",
        "geography",
        "Mount Everest, at about 8,849 metres, is the highest mountain above sea level.",
        "What is the highest mountain above sea level?",
        "Mount Everest",
        ["K2", "Kilimanjaro", "Mont Blanc", "Denali"],
    ),
    (
        "sahara",
        "geography",
        "The Sahara in northern Africa is the largest hot desert in the world.",
        "What is the largest hot desert in the world?",
        "the Sahara",
        ["the Gobi", "the Kalahari", "the Atacama", "the Mojave"],
    ),
    (
        "russia_area",
        "geography",
        "Russia is the largest country in the world by area.",
        "Which country is the largest in the world by area?",
        "Russia",
        ["Canada", "China", "Brazil", "Australia"],
    ),
    (
        "asia_area",
        "geography",
        "Asia is the largest continent, both by area and by population.",
        "Which is the largest continent by area?",
        "Asia",
        ["Africa", "Europe", "North America", "Antarctica"],
    ),
    (
        "antarctica_cold",
        "geography",
        "Antarctica is the coldest continent on Earth.",
        "Which is the coldest continent on Earth?",
        "Antarctica",
        ["Europe", "Asia", "North America", "Oceania"],
    ),
    (
        "moon_orbit",
        "astronomy",
        "The Moon takes about 27 days to orbit the Earth once.",
        "About how many days does the Moon take to orbit the Earth once?",
        "27",
        ["7", "14", "90", "365"],
    ),
    (
        "earth_orbit",
        "astronomy",
        "The Earth takes about 365 days to travel once around the Sun.",
        "About how many days does the Earth take to travel once around the Sun?",
        "365",
        ["27", "180", "500", "730"],
    ),
    (
        "triangle_angles",
        "mathematics",
        "The interior angles of any triangle add up to 180 degrees.",
        "What is the sum of the interior angles of a triangle?",
        "180 degrees",
        ["90 degrees", "270 degrees", "360 degrees", "120 degrees"],
    ),
    (
        "hexagon",
        "mathematics",
        "A hexagon is a polygon with six sides.",
        "How many sides does a hexagon have?",
        "six",
        ["five", "seven", "eight", "four"],
    ),
    (
        "octagon",
        "mathematics",
        "An octagon is a polygon with eight sides.",
        "How many sides does an octagon have?",
        "eight",
        ["six", "seven", "ten", "twelve"],
    ),
    (
        "square_angles",
        "mathematics",
        "Each corner of a square is a right angle of 90 degrees.",
        "How large is each angle of a square?",
        "90 degrees",
        ["45 degrees", "60 degrees", "120 degrees", "180 degrees"],
    ),
    (
        "seconds_hour",
        "mathematics",
        "An hour has 60 minutes, and therefore 3,600 seconds.",
        "How many seconds are there in one hour?",
        "3,600",
        ["60", "360", "6,000", "1,000"],
    ),
    (
        "metres_km",
        "mathematics",
        "One kilometre is equal to 1,000 metres.",
        "How many metres are there in one kilometre?",
        "1,000",
        ["10", "100", "10,000", "500"],
    ),
    (
        "leap_year",
        "astronomy",
        "A leap year has 366 days instead of 365.",
        "How many days are there in a leap year?",
        "366",
        ["364", "365", "367", "360"],
    ),
    (
        "photosynthesis_gas",
        "biology",
        "During photosynthesis, plants release oxygen into the air.",
        "Which gas do plants release during photosynthesis?",
        "oxygen",
        ["carbon dioxide", "nitrogen", "hydrogen", "methane"],
    ),
    (
        "nucleus_particles",
        "physics",
        "The nucleus of an atom contains protons and neutrons.",
        "Which particles are found in the nucleus of an atom?",
        "protons and neutrons",
        ["electrons and protons", "electrons only", "electrons and neutrons", "photons"],
    ),
    (
        "electron_charge",
        "physics",
        "Electrons carry a negative electric charge.",
        "What electric charge does an electron carry?",
        "a negative charge",
        ["a positive charge", "no charge", "a charge that changes every second"],
    ),
    (
        "ice_floats",
        "physics",
        "Ice floats on water because it is less dense than liquid water.",
        "Why does ice float on water?",
        "It is less dense than liquid water.",
        [
            "It is denser than liquid water.",
            "It contains more air than salt water.",
            "It is warmer than the water around it.",
        ],
    ),
    (
        "scurvy",
        "biology",
        "A lack of vitamin C in the diet causes the disease scurvy.",
        "A lack of which vitamin causes scurvy?",
        "vitamin C",
        ["vitamin A", "vitamin D", "vitamin K", "vitamin B12"],
    ),
    (
        "insect_legs",
        "biology",
        "All adult insects have six legs.",
        "How many legs does an adult insect have?",
        "six",
        ["four", "eight", "ten", "twelve"],
    ),
    (
        "spider_legs",
        "biology",
        "Spiders have eight legs, which is one way to tell them apart from insects.",
        "How many legs does a spider have?",
        "eight",
        ["six", "ten", "four", "twelve"],
    ),
    (
        "cheetah",
        "biology",
        "The cheetah is the fastest land animal and can run at more than 100 kilometres per hour for short distances.",
        "Which is the fastest land animal?",
        "the cheetah",
        ["the lion", "the horse", "the greyhound", "the ostrich"],
    ),
    (
        "blue_whale_size",
        "biology",
        "The blue whale is the largest animal known to have ever lived.",
        "What is the largest animal known to have ever lived?",
        "the blue whale",
        ["the African elephant", "the whale shark", "the giraffe", "the giant squid"],
    ),
    (
        "diamond_carbon",
        "chemistry",
        "Diamond and graphite are both made of carbon atoms, arranged in different ways.",
        "Diamonds are made of which element?",
        "carbon",
        ["silicon", "iron", "oxygen", "nitrogen"],
    ),
    (
        "largest_planet",
        "astronomy",
        "Jupiter is the largest planet in the Solar System.",
        "Which is the largest planet in the Solar System?",
        "Jupiter",
        ["Saturn", "Neptune", "Earth", "Uranus"],
    ),
    (
        "red_planet",
        "astronomy",
        "Mars is known as the Red Planet because of the iron oxide on its surface.",
        "Which planet is known as the Red Planet?",
        "Mars",
        ["Venus", "Jupiter", "Mercury", "Saturn"],
    ),
    (
        "rings",
        "astronomy",
        "Saturn is best known for its bright system of rings.",
        "Which planet is best known for its bright system of rings?",
        "Saturn",
        ["Jupiter", "Mars", "Neptune", "Venus"],
    ),
    (
        "hottest_planet",
        "astronomy",
        "Venus has the hottest surface of any planet, because its thick atmosphere traps heat.",
        "Which planet has the hottest surface?",
        "Venus",
        ["Mercury", "Mars", "Jupiter", "Earth"],
    ),
    (
        "closest_planet",
        "astronomy",
        "Mercury is the planet closest to the Sun.",
        "Which planet is closest to the Sun?",
        "Mercury",
        ["Venus", "Earth", "Mars", "Neptune"],
    ),
    (
        "sun_light_time",
        "astronomy",
        "Light from the Sun takes about eight minutes to reach the Earth.",
        "About how long does light from the Sun take to reach the Earth?",
        "about eight minutes",
        ["about eight seconds", "about eight hours", "about eight days"],
    ),
    (
        "moon_phases",
        "astronomy",
        "The Moon goes through a full cycle of phases in about 29.5 days.",
        "About how many days does the Moon take to go through a full cycle of phases?",
        "29.5",
        ["7", "14", "60", "365"],
    ),
]


# ------------------------------------------------------------------------------------ questions


@dataclass(frozen=True)
class FactQuestion:
    key: str  # the unit of the held-out split: "capital:France"
    subject: str  # MMLU-style subject
    question: str
    answer: str
    distractors: tuple[str, ...]  # three are drawn for each rendering
    statement: str  # the same fact as a sentence

    @property
    def held_out(self) -> bool:
        return is_held_out(self.key, FACTS_HELD_OUT_ONE_IN)


def _others(values: list[str], answer: str) -> tuple[str, ...]:
    return tuple(sorted({v for v in values if v != answer}))


def _year_distractors(year: int) -> tuple[str, ...]:
    return tuple(str(year + d) for d in (-40, -12, -5, 3, 9, 21, 50))


@cache
def fact_questions() -> tuple[FactQuestion, ...]:
    """Every multiple-choice question the knowledge base can ask, in a fixed order."""
    qs: list[FactQuestion] = []
    capitals = [c.capital for c in COUNTRIES]
    languages = sorted({c.language for c in COUNTRIES if c.language})
    currencies = [c.currency for c in COUNTRIES]
    for c in COUNTRIES:
        nm = c.name
        qs.append(
            FactQuestion(
                f"capital:{nm}",
                "geography",
                f"What is the capital of {nm}?",
                c.capital,
                _others(capitals, c.capital),
                f"The capital of {nm} is {c.capital}.",
            )
        )
        qs.append(
            FactQuestion(
                f"continent:{nm}",
                "geography",
                f"On which continent is {nm}?",
                c.continent,
                _others(CONTINENTS, c.continent),
                f"{cap(nm)} is in {c.continent}.",
            )
        )
        if c.language:
            qs.append(
                FactQuestion(
                    f"language:{nm}",
                    "geography",
                    f"Which language do most people in {nm} speak?",
                    c.language,
                    _others(languages, c.language),
                    f"Most people in {nm} speak {c.language}.",
                )
            )
        qs.append(
            FactQuestion(
                f"currency:{nm}",
                "economics",
                f"Which currency is used in {nm}?",
                c.currency,
                _others(currencies, c.currency),
                f"The currency of {nm} is the {c.currency}.",
            )
        )
    symbols = [e.symbol for e in ELEMENTS]
    for e in ELEMENTS:
        qs.append(
            FactQuestion(
                f"symbol:{e.name}",
                "chemistry",
                f"What is the chemical symbol for {e.name}?",
                e.symbol,
                _others(symbols, e.symbol),
                f"The chemical symbol for {e.name} is {e.symbol}.",
            )
        )
        near = [
            str(n)
            for n in (e.number - 2, e.number - 1, e.number + 1, e.number + 2, e.number + 4, e.number * 2)
            if n > 0
        ]
        qs.append(
            FactQuestion(
                f"atomic_number:{e.name}",
                "chemistry",
                f"What is the atomic number of {e.name}?",
                str(e.number),
                _others(near, str(e.number)),
                f"The atomic number of {e.name} is {e.number}.",
            )
        )
        qs.append(
            FactQuestion(
                f"state:{e.name}",
                "chemistry",
                f"At room temperature, what state is {e.name} in?",
                e.state,
                _others(["solid", "liquid", "gas", "plasma"], e.state),
                f"At room temperature, {e.name} is a {e.state}.",
            )
        )
    planet_names = [p.name for p in PLANETS]
    for p in PLANETS:
        nth = ORDINALS[p.order - 1]
        qs.append(
            FactQuestion(
                f"planet_order:{p.name}",
                "astronomy",
                f"Counting from the Sun, which planet comes {nth}?",
                p.name,
                _others(planet_names, p.name),
                f"{p.name} is the {nth} planet from the Sun.",
            )
        )
    for ev in EVENTS:
        qs.append(
            FactQuestion(
                f"year:{ev.question}",
                "history",
                f"In which year {ev.question}?",
                str(ev.year),
                _year_distractors(ev.year),
                f"In {ev.year}, {ev.statement}.",
            )
        )
    names = [p.name for p in PEOPLE]
    for p in PEOPLE:
        qs.append(
            FactQuestion(
                f"person:{p.name}",
                "history of science",
                f"Who {p.achievement}?",
                p.name,
                _others(names, p.name),
                f"{p.name} {p.achievement}.",
            )
        )
    for a in ANIMALS:
        qs.append(
            FactQuestion(
                f"group:{a.name}",
                "biology",
                f"To which group of animals does the {a.name} belong?",
                a.group,
                _others(ANIMAL_GROUPS, a.group),
                f"The {a.name} belongs to the {a.group}.",
            )
        )
        if a.diet:
            qs.append(
                FactQuestion(
                    f"diet:{a.name}",
                    "biology",
                    f"What kind of eater is the {a.name}?",
                    a.diet,
                    _others(["carnivore", "herbivore", "omnivore", "detritivore"], a.diet),
                    f"The {a.name} is a {a.diet}.",
                )
            )
    for key, subject, statement, question, answer, distractors in SINGLE_FACTS:
        qs.append(FactQuestion(f"fact:{key}", subject, question, answer, tuple(distractors), statement))
    return tuple(qs)


@cache
def training_questions() -> tuple[FactQuestion, ...]:
    """Questions that may be asked in synthetic quizzes and chat."""
    return tuple(q for q in fact_questions() if not q.held_out)


@cache
def held_out_questions() -> tuple[FactQuestion, ...]:
    """Questions reserved for the facts_mc benchmark."""
    return tuple(q for q in fact_questions() if q.held_out)


LETTERS = "ABCD"
# Question wording keeps the entity (country, element, animal ...) within the last dozen words before
# the end of the prompt, so every 13-gram of an MC prompt names it: questions that share a small option
# set (diet, state, continent) then never share a 13-gram by chance.


def render_mc(q: FactQuestion, rng: random.Random) -> tuple[str, str, list[str]]:
    """An MMLU-format item: (prompt ending in 'Answer:', correct letter, the four choices)."""
    choices = [q.answer, *rng.sample(q.distractors, 3)]
    rng.shuffle(choices)
    lines = [q.question, *(f"{LETTERS[i]}. {choice}" for i, choice in enumerate(choices)), "Answer:"]
    return "\n".join(lines), LETTERS[choices.index(q.answer)], choices


# ------------------------------------------------------------------------------------ concepts


@dataclass(frozen=True)
class Concept:
    title: str
    subject: str
    sentences: tuple[str, ...]


CONCEPTS = [
    Concept(
        "Photosynthesis",
        "biology",
        (
            "Photosynthesis is the process by which green plants make their own food.",
            "Plants take in carbon dioxide from the air through tiny pores in their leaves called stomata.",
            "Water is absorbed by the roots and carried up to the leaves through the stem.",
            "Inside the chloroplasts, the green pigment chlorophyll captures energy from sunlight.",
            "This energy is used to turn carbon dioxide and water into glucose, a simple sugar.",
            "Oxygen is released into the air as a by-product of the process.",
            "The glucose can be used right away for energy or stored as starch for later.",
            "Almost every food chain on Earth depends on the energy that plants capture in this way.",
        ),
    ),
    Concept(
        "The water cycle",
        "earth science",
        (
            "The water cycle describes how water moves between the oceans, the air and the land.",
            "Heat from the Sun causes water in oceans, lakes and rivers to evaporate and rise as water vapour.",
            "As the vapour rises, it cools and condenses into tiny droplets that form clouds.",
            "When the droplets join together and become heavy, they fall as rain, snow, sleet or hail.",
            "This falling water is called precipitation.",
            "Some of it runs off the land into rivers and flows back to the sea.",
            "Some soaks into the ground and becomes groundwater, which can stay underground for a very long time.",
            "Plants also return water to the air through their leaves, a process called transpiration.",
        ),
    ),
    Concept(
        "Cells",
        "biology",
        (
            "The cell is the basic unit of life, and every living thing is made of one or more cells.",
            "Most cells are far too small to see without a microscope.",
            "A thin cell membrane surrounds each cell and controls what enters and leaves it.",
            "In plant and animal cells, the nucleus holds the genetic material, DNA.",
            "Mitochondria release energy from food through cellular respiration.",
            "Plant cells also have a rigid cell wall and chloroplasts, which animal cells lack.",
            "Bacteria are single cells without a nucleus; their DNA lies freely inside the cell.",
            "New cells are made when an existing cell divides into two.",
        ),
    ),
    Concept(
        "The scientific method",
        "science",
        (
            "The scientific method is a careful way of finding out how the world works.",
            "It usually begins with an observation that raises a question.",
            "A scientist then proposes a hypothesis, a possible explanation that can be tested.",
            "Next comes an experiment designed so that only one variable changes at a time.",
            "Measurements are recorded carefully, and the experiment is repeated to check the results.",
            "If the results do not support the hypothesis, the hypothesis is changed or rejected.",
            "Scientists share their methods and results so that others can repeat the work.",
            "A theory is an explanation that has been tested many times and is supported by a large body of evidence.",
        ),
    ),
    Concept(
        "Gravity",
        "physics",
        (
            "Gravity is the force that pulls objects with mass towards each other.",
            "Near the surface of the Earth, gravity makes falling objects speed up by about 9.8 metres per second every second.",
            "Isaac Newton described gravity with his law of universal gravitation in the seventeenth century.",
            "The force of gravity grows weaker as the distance between two objects increases.",
            "Gravity keeps the Moon in orbit around the Earth and the planets in orbit around the Sun.",
            "An object's weight is the force of gravity acting on it, while its mass is the amount of matter it contains.",
            "On the Moon, gravity is about one sixth as strong as on Earth, so an astronaut weighs much less there.",
            "Without air resistance, a feather and a hammer fall at the same rate, as an astronaut showed on the Moon in 1971.",
        ),
    ),
    Concept(
        "States of matter",
        "physics",
        (
            "Matter is usually found in one of three states: solid, liquid or gas.",
            "In a solid, the particles are packed closely together and vibrate in fixed positions, so a solid keeps its shape.",
            "In a liquid, the particles are close together but can slide past each other, so a liquid takes the shape of its container.",
            "In a gas, the particles are far apart and move quickly in all directions, filling any container.",
            "Heating a solid can make it melt into a liquid, and heating a liquid can make it boil into a gas.",
            "Cooling reverses these changes: a gas condenses into a liquid, and a liquid freezes into a solid.",
            "Some substances, such as dry ice, change straight from a solid into a gas; this is called sublimation.",
            "The temperature at which a substance melts or boils depends on the substance and on the pressure around it.",
        ),
    ),
    Concept(
        "The Solar System",
        "astronomy",
        (
            "The Solar System is made up of the Sun and everything that orbits it.",
            "The Sun is a star, and it contains more than 99 percent of the mass of the Solar System.",
            "Eight planets orbit the Sun: Mercury, Venus, Earth, Mars, Jupiter, Saturn, Uranus and Neptune.",
            "The four inner planets are small and rocky, while the four outer planets are much larger and made mostly of gas and ice.",
            "Between Mars and Jupiter lies the asteroid belt, a region containing many rocky bodies.",
            "Dwarf planets such as Pluto orbit beyond Neptune.",
            "Light from the Sun takes about eight minutes to reach the Earth.",
            "All the planets travel around the Sun in the same direction.",
        ),
    ),
    Concept(
        "Volcanoes and moving plates",
        "earth science",
        (
            "The outer layer of the Earth is broken into large pieces called tectonic plates.",
            "These plates move very slowly, usually only a few centimetres each year.",
            "Where plates pull apart, hot molten rock called magma rises to fill the gap.",
            "Where plates collide, one plate may slide beneath the other, and mountains or volcanoes can form.",
            "When magma reaches the surface, it is called lava.",
            "Earthquakes happen when plates that are stuck together suddenly slip past each other.",
            "Many volcanoes surround the Pacific Ocean in a zone called the Ring of Fire.",
            "Over millions of years, the movement of the plates has changed the positions of the continents.",
        ),
    ),
    Concept(
        "Weather and climate",
        "earth science",
        (
            "Weather describes the conditions in the atmosphere at a particular place and time.",
            "Climate is the average pattern of weather in a region over many years, usually thirty years or more.",
            "Temperature, rainfall, wind and humidity are all measured to describe the weather.",
            "A thermometer measures temperature, a barometer measures air pressure and a rain gauge measures rainfall.",
            "Places near the equator receive more direct sunlight and are usually warm all year round.",
            "Large bodies of water heat up and cool down slowly, so coastal areas often have milder climates than places far inland.",
            "Scientists use weather records from many years to study how the climate is changing.",
        ),
    ),
    Concept(
        "Food chains",
        "biology",
        (
            "A food chain shows how energy passes from one living thing to another.",
            "Every food chain starts with a producer, usually a green plant that makes food from sunlight.",
            "Animals that eat plants are called herbivores, or primary consumers.",
            "Animals that eat other animals are called carnivores, and those that eat both plants and animals are omnivores.",
            "Decomposers such as fungi and bacteria break down dead plants and animals and return nutrients to the soil.",
            "Only a small part of the energy at each step is passed on to the next, so food chains rarely have more than five links.",
            "In a real ecosystem, many food chains overlap to form a food web.",
        ),
    ),
    Concept(
        "Digestion",
        "biology",
        (
            "The digestive system breaks food down into substances that the body can absorb and use.",
            "Digestion begins in the mouth, where teeth grind food and saliva starts to break down starch.",
            "The food then travels down the oesophagus to the stomach, where acid and enzymes continue the work.",
            "Most nutrients are absorbed into the blood through the walls of the small intestine.",
            "The large intestine absorbs water from the remaining material.",
            "The liver produces bile, which helps the body digest fats.",
            "A healthy diet with plenty of fibre helps the digestive system work well.",
        ),
    ),
    Concept(
        "Electric circuits",
        "physics",
        (
            "An electric current is a flow of electric charge, usually carried by electrons moving through a wire.",
            "A circuit needs a complete loop for the current to flow.",
            "A battery or other power supply pushes the current around the circuit; this push is measured in volts.",
            "Current is measured in amperes, and resistance is measured in ohms.",
            "Ohm's law says that the voltage across a component equals the current through it multiplied by its resistance.",
            "In a series circuit, components are connected one after another, so the same current passes through each of them.",
            "In a parallel circuit, the current splits between branches, and each branch can be switched on or off on its own.",
            "Metals such as copper are good conductors, while plastic and rubber are insulators.",
        ),
    ),
    Concept(
        "Fractions",
        "mathematics",
        (
            "A fraction describes a part of a whole.",
            "The number on the bottom, the denominator, tells how many equal parts the whole is divided into.",
            "The number on the top, the numerator, tells how many of those parts are being counted.",
            "Fractions such as one half and two quarters are called equivalent because they describe the same amount.",
            "To add fractions, first rewrite them so that they have the same denominator, then add the numerators.",
            "To multiply two fractions, multiply the numerators together and the denominators together.",
            "A fraction can be simplified by dividing the numerator and the denominator by the same number.",
        ),
    ),
    Concept(
        "Prime numbers",
        "mathematics",
        (
            "A prime number is a whole number greater than one whose only divisors are one and itself.",
            "The first prime numbers are 2, 3, 5, 7, 11 and 13.",
            "The number 2 is the only even prime number, because every other even number can be divided by 2.",
            "A whole number greater than one that is not prime is called a composite number.",
            "Every composite number can be written as a product of prime numbers in exactly one way, apart from the order of the factors.",
            "Euclid proved more than two thousand years ago that there are infinitely many prime numbers.",
            "To check whether a number is prime, it is enough to test divisors up to its square root.",
        ),
    ),
    Concept(
        "The Pythagorean theorem",
        "mathematics",
        (
            "The Pythagorean theorem describes the sides of a right triangle.",
            "It says that the square of the longest side, the hypotenuse, equals the sum of the squares of the other two sides.",
            "Written as a formula, it says that a squared plus b squared equals c squared.",
            "For example, a triangle with sides 3, 4 and 5 is a right triangle, because 9 plus 16 equals 25.",
            "Builders have long used this fact to check that corners are square.",
            "The theorem is named after the Greek philosopher Pythagoras, although it was known to earlier civilisations.",
        ),
    ),
    Concept(
        "Percentages",
        "mathematics",
        (
            "A percentage is a way of writing a number as a fraction of one hundred.",
            "The word percent means per hundred, so 25 percent means 25 out of every 100.",
            "To find a percentage of an amount, divide the amount by 100 and multiply by the percentage.",
            "Percentages make it easy to compare parts of different wholes.",
            "Shops use percentages to describe discounts, and banks use them to describe interest rates.",
            "An increase of 10 percent followed by a decrease of 10 percent does not return to the starting value.",
        ),
    ),
    Concept(
        "Area and perimeter",
        "mathematics",
        (
            "The perimeter of a shape is the total distance around its edge.",
            "The area of a shape is the amount of flat space it covers, measured in square units.",
            "For a rectangle, the perimeter is twice the length plus twice the width.",
            "The area of a rectangle is its length multiplied by its width.",
            "The area of a triangle is half of its base multiplied by its height.",
            "Two shapes can have the same perimeter but very different areas.",
        ),
    ),
    Concept(
        "The Roman Empire",
        "history",
        (
            "According to tradition, the city of Rome was founded in 753 BC.",
            "Rome grew from a small city into a republic and later into an empire that surrounded the Mediterranean Sea.",
            "Augustus became the first Roman emperor in 27 BC.",
            "The Romans built roads, bridges and aqueducts, some of which are still standing today.",
            "Latin, the language of the Romans, developed into Italian, French, Spanish, Portuguese and Romanian.",
            "The Western Roman Empire came to an end in 476, while the Eastern Roman Empire lasted until 1453.",
        ),
    ),
    Concept(
        "The printing press",
        "history",
        (
            "Around 1440, Johannes Gutenberg developed a printing press with movable metal type in Germany.",
            "Before this, most books in Europe were copied by hand, which was slow and expensive.",
            "The printing press made books cheaper and allowed ideas to spread much faster.",
            "The Gutenberg Bible, printed in the 1450s, is one of the earliest major books printed with movable type.",
            "Printing helped spread the ideas of the Renaissance and the Reformation across Europe.",
            "Movable type had been invented earlier in China, where Bi Sheng used clay type in the eleventh century.",
        ),
    ),
    Concept(
        "The Industrial Revolution",
        "history",
        (
            "The Industrial Revolution began in Britain in the second half of the eighteenth century.",
            "Machines powered by water and later by steam began to replace work that had been done by hand.",
            "James Watt's improvements to the steam engine made it far more efficient.",
            "Factories grew up in towns, and many people moved from the countryside to work in them.",
            "Railways spread rapidly in the nineteenth century and made travel and trade much faster.",
            "The changes brought new wealth but also crowded cities and hard working conditions, including child labour.",
        ),
    ),
    Concept(
        "Ancient Egypt",
        "history",
        (
            "Ancient Egyptian civilisation grew up along the River Nile more than five thousand years ago.",
            "The yearly flooding of the Nile left rich soil that allowed farmers to grow wheat and barley.",
            "The Egyptians built the pyramids at Giza as tombs for their kings, who were called pharaohs.",
            "They wrote with hieroglyphs, a script made of pictures and symbols.",
            "The Rosetta Stone, found in 1799, helped scholars learn to read hieroglyphs.",
            "The Egyptians also made advances in medicine, mathematics and astronomy.",
        ),
    ),
    Concept(
        "Atoms",
        "chemistry",
        (
            "All matter is made of tiny particles called atoms.",
            "An atom has a small, dense nucleus made of protons and neutrons, surrounded by electrons.",
            "Protons carry a positive charge, electrons carry a negative charge and neutrons have no charge.",
            "The number of protons in the nucleus is called the atomic number, and it decides which element the atom belongs to.",
            "Atoms of the same element can have different numbers of neutrons; these forms are called isotopes.",
            "Atoms join together by sharing or transferring electrons to form molecules and compounds.",
            "The periodic table arranges the elements in order of increasing atomic number.",
        ),
    ),
    Concept(
        "Chemical reactions",
        "chemistry",
        (
            "In a chemical reaction, substances called reactants change into new substances called products.",
            "Signs of a chemical reaction include a change of colour, the release of a gas, or a change in temperature.",
            "During a reaction, atoms are rearranged but not created or destroyed, so the total mass stays the same.",
            "Burning is a reaction in which a fuel combines with oxygen and releases heat and light.",
            "Rusting is a slow reaction between iron, oxygen and water.",
            "Acids and bases react with each other in a process called neutralisation, producing a salt and water.",
            "Catalysts speed up reactions without being used up themselves.",
        ),
    ),
    Concept(
        "The seasons",
        "astronomy",
        (
            "The Earth's axis is tilted by about 23.5 degrees compared with its path around the Sun.",
            "Because of this tilt, each hemisphere leans towards the Sun for part of the year and away from it for another part.",
            "When a hemisphere leans towards the Sun, it receives more direct sunlight and longer days, and it has summer.",
            "When it leans away, sunlight arrives at a lower angle, days are shorter, and it has winter.",
            "This is why summer in the Northern Hemisphere happens at the same time as winter in the Southern Hemisphere.",
            "The seasons are not caused by changes in the Earth's distance from the Sun.",
        ),
    ),
    Concept(
        "Phases of the Moon",
        "astronomy",
        (
            "The Moon does not make its own light; it reflects light from the Sun.",
            "As the Moon orbits the Earth, we see different amounts of its sunlit side.",
            "These changing shapes are called the phases of the Moon.",
            "At new moon, the sunlit side faces away from us, and at full moon we see the whole sunlit side.",
            "A full cycle of phases takes about 29.5 days.",
            "The Moon always keeps the same side facing the Earth.",
        ),
    ),
    Concept(
        "The immune system",
        "biology",
        (
            "The immune system protects the body against germs such as bacteria and viruses.",
            "The skin and the lining of the nose and throat form the first barrier against infection.",
            "White blood cells find and destroy germs that get inside the body.",
            "Some white blood cells make antibodies, proteins that recognise a particular germ.",
            "After an infection, the body often remembers the germ and can fight it faster the next time.",
            "Vaccines work by training the immune system to recognise a germ without causing the disease.",
        ),
    ),
    Concept(
        "Energy",
        "physics",
        (
            "Energy is the ability to do work or cause change.",
            "It comes in many forms, including kinetic energy, the energy of movement, and potential energy, which is stored.",
            "Energy can change from one form to another, but it cannot be created or destroyed.",
            "When a ball is dropped, its potential energy changes into kinetic energy as it falls.",
            "A power station turns the chemical energy of fuel, or the energy of wind, water or sunlight, into electrical energy.",
            "Energy is measured in joules.",
        ),
    ),
    Concept(
        "Binary numbers and algorithms",
        "computer science",
        (
            "Computers store all information as binary numbers, which use only the digits 0 and 1.",
            "Each binary digit is called a bit, and a group of eight bits is called a byte.",
            "In binary, each place is worth twice the place to its right, so 101 in binary means four plus zero plus one, which is five.",
            "An algorithm is a precise list of steps for solving a problem.",
            "A recipe and a set of directions to a friend's house are everyday examples of algorithms.",
            "Programmers write algorithms in programming languages such as Python so that a computer can carry them out.",
            "A good algorithm gives the right answer for every valid input and finishes in a reasonable time.",
        ),
    ),
    Concept(
        "Sound",
        "physics",
        (
            "Sound is a vibration that travels through a material such as air, water or a solid.",
            "Sound cannot travel through a vacuum, because there are no particles to carry the vibration.",
            "In air at room temperature, sound travels at about 343 metres per second.",
            "Sound travels faster in water than in air, and faster still in most solids.",
            "The pitch of a sound depends on its frequency, which is measured in hertz.",
            "The loudness of a sound depends on the size of the vibrations and is often measured in decibels.",
        ),
    ),
    Concept(
        "Light and colour",
        "physics",
        (
            "Light travels in straight lines at about 300,000 kilometres per second in empty space.",
            "White light is a mixture of all the colours of the rainbow.",
            "A prism splits white light into its colours because each colour bends by a slightly different amount.",
            "We see an object when light from it enters our eyes.",
            "A mirror reflects light, and a lens bends light to form an image.",
            "Rainbows appear when sunlight is bent and reflected inside raindrops.",
        ),
    ),
]


def concept_paragraph(concept: Concept, rng: random.Random, min_sentences: int = 3) -> str:
    """A paragraph from a concept: a random, order-preserving subset of its sentences."""
    n = rng.randint(min(min_sentences, len(concept.sentences)), len(concept.sentences))
    keep = sorted(rng.sample(range(len(concept.sentences)), n))
    return " ".join(concept.sentences[i] for i in keep)
