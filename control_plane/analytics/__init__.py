"""Presentation analytics: what each session, and each deck over a time range, did to its
audience (time per slide, questions, content gaps, navigation, escalations, drop-off)."""
