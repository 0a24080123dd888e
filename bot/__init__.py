"""Clinic chatbot: answers patients only from the clinic's own articles."""

__version__ = "0.1.0"
