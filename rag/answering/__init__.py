"""Answers: extractive sentence selection, the LLM path with verification, follow-up questions."""
