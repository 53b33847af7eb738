"""What deck search reads out of a listener's words before it searches: the question without its
spoken lead-in, a topic widened to the names decks give that section, the kind of fact asked
for (a price, a number, a date, a contact) and the names and numbers it uses."""

from __future__ import annotations

import re

from shared.intents import normalise

# Spoken lead-ins that carry no content ("so, um, can you tell me ...") embed as noise.
_LEAD_IN = re.compile(
    r"^(?:(?:so|um+|uh+|er+|hmm+|ok(?:ay)?|right|well|yeah|and|but|hey|hi|oh|sorry|quick question"
    r"|one more thing|actually|wait|alright|basically|just|like|now|then|also)\b[\s,]*)*"
    r"(?:(?:can|could|would|will) you (?:please )?(?:tell|remind|explain to|show) (?:me|us)"
    r"(?: again)?(?: about)?|(?:i|we) (?:was|were|am|are) (?:wondering|curious)(?: about)?"
    r"|(?:i'd|i would|we'd) (?:like|love) to know|do you (?:happen to )?know|remind me"
    r"|tell me(?: more)?(?: about)?|i (?:want|need) to know)?[\s,]*",
    re.I,
)

# Section names that decks title in many ways; a topic naming one also searches the others.
_SECTIONS = [
    "summary conclusion conclusions recap wrap takeaways closing thoughts final thank thanks"
    " questions",
    "agenda outline overview contents today plan",
    "team founders people leadership about who",
    "contact questions reach touch email",
    "pricing price cost costs plans packages fees",
    "competition competitors comparison compare landscape alternatives versus",
    "roadmap timeline future next steps plans milestones",
    "problem challenge pain issue",
    "solution product approach how works",
    "market opportunity size",
    "traction growth results customers metrics",
    "funding ask investment raise use funds",
    "demo example walkthrough",
    "architecture design diagram components overview",
    "benchmark benchmarks performance results evaluation",
    "introduction intro welcome title start",
]
_SECTION_OF = {word: group for group in _SECTIONS for word in group.split()}


def spoken_query(text: str) -> str:
    """The question without its spoken lead-in; the words as said when nothing is left."""
    stripped = _LEAD_IN.sub("", text.strip()).strip(" ,")
    return stripped if len(stripped.split()) >= 2 else text.strip()


def topic_query(topic: str) -> str:
    words = normalise(topic).split()
    extra = {w for word in words if (group := _SECTION_OF.get(word)) for w in group.split()}
    return " ".join([*words, *sorted(extra - set(words))])


_ASKS = [
    (
        "price",
        re.compile(
            r"\b(?:how much|cost|costs|price|prices|pricing|pay|charge|fee|fees"
            r"|expensive|cheap|afford)\b"
        ),
    ),
    (
        "date",
        re.compile(r"\b(?:when|what year|what date|how long ago|since when|deadline|by when)\b"),
    ),
    (
        "contact",
        re.compile(
            r"\b(?:contact|reach|email|e mail|phone|call you|website|get in touch"
            r"|address)\b"
        ),
    ),
    (
        "number",
        re.compile(
            r"\b(?:how many|how much|how big|how large|how fast|how long|how often"
            r"|what percentage|what percent|what share|what number|how far)\b"
        ),
    ),
]


WORD = re.compile(r"[\w][\w.+#-]*[\w+#]|\w")
# Spanish opens a question or exclamation with its own mark: "¿Qué …" starts a sentence too.
_SENTENCE_START = re.compile(r"(?:^|[.!?]\s+)[¿¡\"'(]?$")


def names_in(question: str) -> set[str]:
    """What a question names: capitalised words past the first (Coursera, Mellon, Xilinx),
    acronyms (SEBI, TSX), mixed case (PyPy, edX) and numbers (2022, 3.13). A name the deck
    never uses is strong evidence that the deck does not answer the question."""
    names = set()
    for match in WORD.finditer(question):
        word = match.group()
        if word.lower() in _COMMON or (len(word) < 2 and not word.isdigit()):
            continue
        first = _SENTENCE_START.search(question[: match.start()]) is not None
        if (
            any(c.isdigit() for c in word)
            or (word[0].isupper() and not first)
            or (sum(c.isupper() for c in word) >= 2)
            or (word[0].islower() and any(c.isupper() for c in word[1:]))
        ):
            names.add(word.lower().rstrip("."))
    return names


_COMMON_WORDS = (
    "i i'm i'd i've ok okay so um uh the a an and or but what who how why when where which is are "
    "do does did can could would will you your they their it its this that slide slides"
)
_COMMON = frozenset(_COMMON_WORDS.split())


def asks_for(question: str) -> str | None:
    """The kind of fact a question asks for, when a slide must state one to answer it."""
    text = normalise(question)
    return next((kind for kind, pattern in _ASKS if pattern.search(text)), None)
