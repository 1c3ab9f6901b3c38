"""What durable_rules can take, checked when a pack is loaded (never a runtime surprise).

The C core of durable-rules 2.0.28 has fixed-size tables and reports overflowing them
with bare numbers, an endless loop or a wrong answer. The loader calls
:func:`check_limits` on every compiled RuleSet and shows each problem as a diagnostic
with its own code, at file:line, before any case can run into it.

Most table sizes are per C ruleset, and the compiler (core.rules.durable_compiler) cuts
a RuleSet into C rulesets that stay inside them whatever the number of rules — so
"more than 64 rules match one fact", "more than 255 rules share one condition" and
"too many `unset` checks across rules" cannot happen. What remains are single rules that
are too wide or too deep by themselves, and properties of the whole ruleset (field
names, numbers, size). Each check below compiles the rules exactly as the runtime does
and analyses the alpha network the C core would build, so both always agree.

This module never imports the C module: it runs on Python 3.13+, where durable_rules
cannot be built, and in the API process, which must never load the C core.

Codes (stable; K301-K319 are reserved for engine limits):

====  =========================================================================
K301  the rules test more fields than one engine fact may carry
K302  too many different conditions at one point of a rule (one long ``or``)
K303  too many parts of one rule can hold for a case at once (error 303)
K304  too many ``is not set`` tests / ``or`` groups at one point of a rule (107)
K305  too many nested and/or groups in one rule (error 113)
K306  chained ``or`` groups multiply: one case would fire a rule too many times
K307  a number the engine cannot compare exactly (not finite, beyond ±2**53)
K308  two field names with the same engine hash (the core would mix them up)
K309  a condition too large to analyse
K310  too many rules in one ruleset
K311  not a valid condition (a compiler bug, never a rule author's)
====  =========================================================================
"""

from __future__ import annotations

from dataclasses import dataclass

# -- measured on this machine, durable-rules 2.0.28, Python 3.11, C module driven directly
# (probe scripts: one C ruleset plus the sentinel rule, each case in a fresh process).

#: Properties per asserted fact, ``id`` and ``sid`` included: 254 work, 255 give
#: "error code: 302" on a single assert_fact (MAX_OBJECT_PROPERTIES 255 in state.h).
#: A batch assert (assert_facts) crashes from 253 properties; the runtime asserts one fact
#: at a time. Margin.
MEASURED_MAX_PROPERTIES = 254
MAX_FACT_PROPERTIES = 240

#: The match stack (handleAlpha, MAX_STACK_SIZE 64): 64 rules matching one fact fire,
#: 65 give error 303 and nothing fires. The session's own state fact (created with the
#: session, lacking every property) matches every rule made only of absence tests: with
#: 70 such rules every new session fails with 303, and touching that session afterwards
#: (delete_state, get_state) SIGSEGVs. The adapter keeps each C ruleset, and K303 each
#: rule, at or under STACK_BUDGET.
MEASURED_STACK = 64
STACK_BUDGET = 60

#: Conditions directly under one alpha node share a 512-slot open-addressing table
#: (NEXT_BUCKET_LENGTH): 510 + the sentinel evaluate in 0.04 s; with 511 + the sentinel
#: every evaluation loops forever in C holding the GIL; from 512 compiling does.
#: Half the table is a safe cap.
MEASURED_NODE_CHILDREN_HANG = 511
MAX_NODE_CHILDREN = 256

#: Absence tests (``$nex``; also each ``$or``'s forward node) under one node: a 128-slot
#: list (NEXT_LIST_LENGTH). 129 give error 107 at create_ruleset; 128 compile but fill
#: the list without its terminating zero (rete.c), like the beta list below at 256.
MEASURED_NODE_ABSENCE = 128
MAX_NODE_ABSENCE = 120

#: Rules ending on one alpha node (identical condition): 255 fire correctly; 256 fire
#: all 256 *and the sentinel rule* (the list overruns into the next one — a quiet wrong
#: answer; the "error 108" for too many rules on one condition only comes at 257).
SAFE_BETA_LIST = 255

#: and/or groups in one rule (MAX_SEQUENCE_EXPRESSIONS 32, two entries per group):
#: 15 work, 16 give error 113 at create_ruleset.
MEASURED_MAX_GROUPS = 15
MAX_GROUPS_PER_RULE = 15

#: Each ``$or`` followed by more conditions makes the core re-run the rest once per
#: alternative that holds, and the rule fire once per path: ``(a1 or b1) and ... and
#: (a10 or b10)`` fired 1,024 times (20 ms) for one fact. Cap the paths of one rule
#: (above the stack budget, so K303 and K306 stay separate diagnoses).
MAX_FIRINGS_PER_RULE = 64

#: The brief's cap on rules per C ruleset; with the stack budget it also keeps the
#: beta lists (SAFE_BETA_LIST) and absence lists out of reach across rules.
MAX_RULES_PER_CHUNK = 60

#: Integers compare as 64-bit ints, int against float as doubles: exact within ±2**53.
MAX_EXACT_NUMBER = 2**53

#: Alpha nodes the analysis of one rule may build (a cost bound of this module).
MAX_MODEL_NODES = 20_000

#: Rules per RuleSet: cost grows with them. Measured with bench-like rules: 2,000 rules
#: became 34 C rulesets, ~1.4 ms per evaluation in-process (~1.9 ms isolated) and ~1 s
#: to compile — still far inside the engine's 2 s timeout; beyond, a procedure should
#: be split.
MAX_RULES_PER_RULESET = 2000

#: Properties the adapter adds to every asserted fact (``id`` and ``sid``).
RESERVED_FACT_PROPERTIES = 2


@dataclass(frozen=True)
class LimitProblem:
    """One engine limit a ruleset exceeds; ``rule_id`` is None for the whole ruleset."""

    code: str
    rule_id: str | None
    message: str
    hint: str | None = None
