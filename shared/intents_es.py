"""Spanish navigation and control requests for the offline presenter (the English rules and
their reasons are in ``shared.intents``). A smaller set: slide numbers, next/previous,
first/last, a topic ("llévame a los precios"), pause, resume and a hand-over; anything else is a
question searched in the deck."""

from __future__ import annotations

import re
import unicodedata

from shared.intents import ASKED_FOR_A_PERSON, Reply, ToolRequest

_NUMBER_WORDS = (
    "una dos tres cuatro cinco seis siete ocho nueve diez once doce trece catorce quince "
    "dieciseis diecisiete dieciocho diecinueve veinte"
)
_NUMBERS = {w: n for n, w in enumerate(_NUMBER_WORDS.split(), start=1)} | {
    "uno": 1,
    "primera": 1,
    "segunda": 2,
    "tercera": 3,
    "cuarta": 4,
    "quinta": 5,
}
_N = r"(?P<n>\d+|" + "|".join(sorted(_NUMBERS, key=len, reverse=True)) + ")"
_SLIDE = r"(?:diapositivas?|transparencias?|laminas?|paginas?|slides?)"
_GOTO = re.compile(rf"\b{_SLIDE}(?: (?:numero|n))? {_N}\b")
_NEXT = re.compile(
    rf"\b(?:siguiente|proxima)(?: {_SLIDE})?\b|^(?:adelante|avanza|sigue adelante)$|\bpasa a la"
    r" siguiente\b"
)
_PREVIOUS = re.compile(rf"\banterior\b|^(?:atras|vuelve atras|regresa)$|\b{_SLIDE} de antes\b")
_FIRST = re.compile(rf"\b(?:primera {_SLIDE}|al (?:principio|inicio)|desde el principio)\b")
_LAST = re.compile(rf"\b(?:ultima {_SLIDE}|al final)\b")
_TOPIC = re.compile(
    r"^(?:(?:puedes|podrias|por favor) )?(?:llevame|llevanos|ve|vamos|vuelve|volvamos|regresa"
    r"|pasa|salta|muestrame|muestranos|ensename|ensenanos|pon)(?: otra vez)?(?: a| hasta)?"
    r"(?: (?:la|el|los|las))?(?: (?:diapositiva|parte|seccion|pagina)s?)?"
    r"(?: (?:de|del|sobre|con))?(?: (?:la|el|los|las))? (?P<topic>.+)$"
)
_PAUSE = re.compile(r"^(?:por favor )?(?:pausa|para|espera|detente|un momento)(?: por favor)?$")
_RESUME = re.compile(r"^(?:si|vale|claro|de acuerdo|continua|sigue|adelante con la presentacion)"
                     r"(?: (?:por favor|continua|sigue|gracias))*$")  # fmt: skip
_ESCALATE = re.compile(r"\bhablar con (?:una|un|alguien|algun)(?: persona| humano| agente)?\b")


def normalise(text: str) -> str:
    """Lower case, accents and punctuation off ("¿Cuál?" → "cual"): Whisper's accents vary."""
    stripped = "".join(
        c for c in unicodedata.normalize("NFD", text.lower()) if unicodedata.category(c) != "Mn"
    )
    return " ".join(re.sub(r"[^\w\s]", " ", stripped).split())


def intent_for(utterance: str) -> Reply:
    text = normalise(utterance)
    if not text:
        return "Perdone, no le he entendido."
    if match := _GOTO.search(text):
        n = match["n"]
        return ToolRequest("goto_slide", {"slide_number": int(n) if n.isdigit() else _NUMBERS[n]})
    if _FIRST.search(text):
        return ToolRequest("goto_slide", {"slide_number": 1})
    if _LAST.search(text):
        return ToolRequest("last_slide")
    if _ESCALATE.search(text):
        return ToolRequest("escalate_to_human", {"reason": ASKED_FOR_A_PERSON})
    if _NEXT.search(text):
        return ToolRequest("next_slide")
    if _PREVIOUS.search(text):
        return ToolRequest("previous_slide")
    if (match := _TOPIC.match(text)) is not None:
        return ToolRequest("goto_slide", {"topic": match["topic"]})
    if _PAUSE.match(text):
        return ToolRequest("pause_presentation")
    if _RESUME.match(text):
        return ToolRequest("resume_presentation")
    return ToolRequest("search_slides", {"query": utterance.strip()})
