"""A Spanish sales deck with speaker notes, written for Podium's language tests and the Spanish
grounding measurement (scripts/bench_languages.py). Self-written, not a third-party deck: its
figures are for a small labelled set in another language, not a claim about real decks."""

from __future__ import annotations

import io
from pathlib import Path

from pptx import Presentation

QUESTIONS = Path(__file__).with_name("questions_es.jsonl")

# (title, body, notes)
SLIDES: list[tuple[str, str, str]] = [
    (
        "Rutalia: logística sin sorpresas",
        "Plataforma de seguimiento de envíos para tiendas en línea",
        "Bienvenidos. Rutalia ayuda a las tiendas en línea a saber en todo momento dónde está "
        "cada pedido y a avisar al cliente antes de que pregunte.",
    ),
    (
        "El problema",
        "Un tercio de las llamadas al servicio de atención son para preguntar dónde está un "
        "pedido\nLos transportistas usan formatos distintos",
        "Las tiendas pierden horas contestando la misma pregunta. Cada transportista envía los "
        "datos de seguimiento en un formato diferente y nadie los une.",
    ),
    (
        "Cómo funciona",
        "Conectamos con más de cuarenta transportistas\nUn panel único con todos los envíos\n"
        "Avisos automáticos por correo y SMS",
        "La tienda conecta su cuenta en diez minutos. Rutalia lee los eventos de cada "
        "transportista y los traduce a un solo estado que el cliente entiende.",
    ),
    (
        "Precios",
        "Plan Básico: 49 euros al mes, hasta 1.000 envíos\nPlan Profesional: 149 euros al mes, "
        "hasta 10.000 envíos\nEmpresa: precio a medida",
        "No cobramos por instalación. El primer mes es gratis en cualquier plan y se puede "
        "cancelar cuando se quiera.",
    ),
    (
        "Seguridad y privacidad",
        "Datos cifrados en tránsito y en reposo\nServidores en Fráncfort, dentro de la Unión "
        "Europea\nCumplimos el RGPD",
        "Los datos personales de los compradores nunca salen de Europa y se borran noventa días "
        "después de la entrega.",
    ),
    (
        "Integraciones",
        "Shopify, WooCommerce y PrestaShop\nAPI abierta con webhooks",
        "Para tiendas con sistema propio ofrecemos una API documentada y webhooks firmados.",
    ),
    (
        "Resultados de clientes",
        "Un 38 % menos de llamadas de seguimiento\nValoración media de 4,7 sobre 5",
        "Una cadena de librerías de Valencia redujo sus llamadas a la mitad en tres meses.",
    ),
    (
        "El equipo",
        "Lucía Moreno, directora general\nJavier Ortega, director técnico",
        "Lucía dirigió operaciones en una empresa de paquetería durante diez años; Javier "
        "construyó la plataforma de pagos de una tienda con millones de clientes.",
    ),
    (
        "Hoja de ruta",
        "Segundo trimestre: devoluciones gestionadas\nCuarto trimestre: entregas en Portugal e "
        "Italia",
        "Las devoluciones son la función que más nos piden los clientes.",
    ),
    (
        "Próximos pasos",
        "Prueba gratuita de treinta días\nContacto: hola@rutalia.es",
        "Gracias por su atención. Estaré encantada de responder a sus preguntas.",
    ),
]


def make_spanish_deck() -> bytes:
    """The deck as a PPTX (title and content layout, notes on every slide)."""
    prs = Presentation()
    layout = prs.slide_layouts[1]
    for title, body, notes in SLIDES:
        slide = prs.slides.add_slide(layout)
        slide.shapes.title.text = title
        slide.placeholders[1].text_frame.text = body
        slide.notes_slide.notes_text_frame.text = notes
    out = io.BytesIO()
    prs.save(out)
    return out.getvalue()
