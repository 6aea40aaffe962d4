"""Natural-language understanding: text in, Parse(intent, confidence, entities, ranking) out."""
from nlu.parse import NLU, Entity, IntentScore, Parse

__all__ = ["NLU", "Entity", "IntentScore", "Parse"]
