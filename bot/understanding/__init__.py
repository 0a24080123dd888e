"""Understanding patients' messages: labels from example banks (data), a small model over them, language."""

from bot.understanding import language
from bot.understanding.banks import BankError, load_banks
from bot.understanding.engine import Understander, Understanding, make_understander

__all__ = ["BankError", "Understander", "Understanding", "language", "load_banks", "make_understander"]
