"""The languages Podium presents in, how a deck's language is told from its text, and the
offline presenter's fixed sentences in each language (one table, below).

Detection counts the commonest function words of each language (articles, prepositions,
pronouns, conjunctions): a slide deck's text is short, full of names and numbers, and often
mixes English terms into another language, but its function words say which grammar it is in.
Four languages need no statistical model; a text with too few of them is English, the default.
"""

from __future__ import annotations

import re
from typing import Literal, get_args

Language = Literal["en", "es", "de", "fr"]
LANGUAGES: tuple[Language, ...] = get_args(Language)
DEFAULT: Language = "en"


def _words(text: str) -> frozenset[str]:
    return frozenset(text.split())


_WORDS: dict[Language, frozenset[str]] = {
    "en": _words(
        "the and of to in is are for with that this on our we you it be by from as at or an "
        "will can your how what which their has have not"
    ),
    "es": _words(
        "el la los las de del y en que es son para con por un una unos unas al se su sus "
        "nuestro nuestra nuestros como más pero o este esta estos cuando también muy sin sobre "
        "entre hasta desde cada qué cómo cuál cuánto está"
    ),
    "de": _words(
        "der die das und ist sind für mit von zu den dem des ein eine einen nicht auf im auch "
        "wir unser unsere sie es wie oder bei aus nach über wird werden können"
    ),
    "fr": _words(
        "le la les et des du un une est sont pour avec dans sur que qui nous notre nos vous "
        "votre pas au aux par ce cette ces plus ou en comme mais"
    ),
}
_TOKEN = re.compile(r"[^\W\d_]+", re.UNICODE)
_MIN_HITS = 3  # fewer function words than this: too little text to tell, keep the default


def detect_language(text: str) -> Language:
    """The language most of ``text``'s function words belong to; English when unsure."""
    counts = dict.fromkeys(LANGUAGES, 0)
    for word in _TOKEN.findall(text.lower()):
        for language, words in _WORDS.items():
            if word in words:
                counts[language] += 1
    best = max(LANGUAGES, key=lambda language: counts[language])
    return best if counts[best] >= _MIN_HITS else DEFAULT


def normalise(tag: str | None) -> Language | None:
    """A BCP-47 tag ("es", "es-MX", "ES_es") as one of Podium's languages; None if unsupported."""
    if not tag:
        return None
    primary = tag.replace("_", "-").split("-")[0].lower()
    return next((language for language in LANGUAGES if language == primary), None)


# Postgres text search configurations (stemmer and stop words) for each language.
TEXT_SEARCH_CONFIG: dict[Language, str] = {
    "en": "english",
    "es": "spanish",
    "de": "german",
    "fr": "french",
}

# The offline presenter's fixed sentences. Every language has every key; ``{…}`` fields are
# filled by ``phrase``. German and French fall back to English where a sentence is missing.
PHRASES: dict[Language, dict[str, str]] = {
    "en": {
        "greeting": "Hello, I'm your presenter. Ask me anything about the deck as we go.",
        "greeting_no_deck": "Hello, I'm your presenter. There is no deck for this session yet.",
        "doesnt_cover": "The deck doesn't cover that.",
        "answer": "That's on slide {index}, {title}. {snippet}",
        "answer_untitled": "That's on slide {index}. {snippet}",
        "lead": "Slide {index}: {title}.",
        "lead_untitled": "Slide {index}.",
        "now_on": "Now on slide {index} of {total}: {title}.",
        "offer": "Shall I carry on with the presentation?",
        "end": "That was the last slide. I'm happy to take any questions.",
        "resumed": "Sorry about that, I'm back. Let's carry on.",
        "cannot": "I can't do that here.",
    },
    "es": {
        "greeting": "Hola, soy su presentador. Pregúnteme lo que quiera sobre la presentación.",
        "greeting_no_deck": "Hola, soy su presentador. Esta sesión todavía no tiene presentación.",
        "doesnt_cover": "La presentación no trata ese tema.",
        "answer": "Eso está en la diapositiva {index}, {title}. {snippet}",
        "answer_untitled": "Eso está en la diapositiva {index}. {snippet}",
        "lead": "Diapositiva {index}: {title}.",
        "lead_untitled": "Diapositiva {index}.",
        "now_on": "Ahora en la diapositiva {index} de {total}: {title}.",
        "offer": "¿Sigo con la presentación?",
        "end": "Esa era la última diapositiva. Con gusto respondo sus preguntas.",
        "resumed": "Disculpe la interrupción, ya estoy de vuelta. Sigamos.",
        "cannot": "Eso no lo puedo hacer aquí.",
    },
    "de": {
        "greeting": "Hallo, ich bin Ihr Präsentator. Fragen Sie mich gern alles zu den Folien.",
        "doesnt_cover": "Dazu steht nichts in der Präsentation.",
        "answer": "Das steht auf Folie {index}, {title}. {snippet}",
        "answer_untitled": "Das steht auf Folie {index}. {snippet}",
        "lead": "Folie {index}: {title}.",
        "lead_untitled": "Folie {index}.",
        "now_on": "Jetzt auf Folie {index} von {total}: {title}.",
        "offer": "Soll ich mit der Präsentation weitermachen?",
        "end": "Das war die letzte Folie. Ich beantworte gern Ihre Fragen.",
    },
    "fr": {
        "greeting": "Bonjour, je suis votre présentateur. Posez-moi vos questions sur la "
        "présentation.",
        "doesnt_cover": "La présentation n'en parle pas.",
        "answer": "C'est sur la diapositive {index}, {title}. {snippet}",
        "answer_untitled": "C'est sur la diapositive {index}. {snippet}",
        "lead": "Diapositive {index} : {title}.",
        "lead_untitled": "Diapositive {index}.",
        "now_on": "Nous sommes sur la diapositive {index} sur {total} : {title}.",
        "offer": "Je continue la présentation ?",
        "end": "C'était la dernière diapositive. Je réponds volontiers à vos questions.",
    },
}


def phrase(language: str | None, key: str, **fields: object) -> str:
    """The presenter's sentence ``key`` in ``language`` (English if it has none)."""
    table = PHRASES.get(normalise(language) or DEFAULT, {})
    template = table.get(key) or PHRASES[DEFAULT][key]
    return template.format(**fields).strip()


def language_name(language: str) -> str:
    """For instructions to a cloud LLM: "Spanish"."""
    return {"en": "English", "es": "Spanish", "de": "German", "fr": "French"}.get(
        language, language
    )


def is_supported(tag: str) -> bool:
    return normalise(tag) is not None


__all__ = [
    "DEFAULT",
    "LANGUAGES",
    "PHRASES",
    "TEXT_SEARCH_CONFIG",
    "Language",
    "detect_language",
    "is_supported",
    "language_name",
    "normalise",
    "phrase",
]
