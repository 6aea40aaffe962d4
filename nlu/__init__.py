"""Natural-language understanding: text in, Parse(intent, confidence, entities, ranking) out."""
from nlu.parse import NLU, OUT_OF_SCOPE, Entity, IntentScore, Parse

__all__ = ["NLU", "OUT_OF_SCOPE", "Entity", "IntentScore", "Parse"]
