"""Built-in validators, each a class whose keyword arguments are its ``--param`` options.

    ratifier validator run ratifier.validators.builtin:RegexRule --id no-secrets \
        --param 'deny=["(?i)api[_-]?key\\s*[:=]"]'

See ``docs/validators.md`` for every parameter.
"""

from __future__ import annotations

from ratifier.validators.builtin.llm_judge import LLMJudge
from ratifier.validators.builtin.rules import JsonSchemaRule, LengthBounds, RegexRule
from ratifier.validators.builtin.simulated import SimulatedValidator

__all__ = ["JsonSchemaRule", "LLMJudge", "LengthBounds", "RegexRule", "SimulatedValidator"]
